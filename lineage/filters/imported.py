"""Decisions made elsewhere (human review, datatrove exclusions, Data-Juicer stats) joining the log."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter


class ImportedParams(FilterParams):
    source_file: str
    sha256: str
    reviewer: str | None = None


class ImportedDecisions(SelectionFilter):
    """Not registered: instantiated per import with the decisions it will record and its filter name."""

    name = "imported"
    Params = ImportedParams
    columns = ()

    def __init__(self, params: FilterParams, *, name: str, table: pa.Table) -> None:
        super().__init__(params)
        self.name = name  # type: ignore[misc]
        self.table = table

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        return self.table.sort_by("sample_id")


def decision_rows(rows: list[dict[str, Any]]) -> pa.Table:
    from lineage.schemas import DECISIONS

    return pa.Table.from_pylist(rows, schema=DECISIONS)
