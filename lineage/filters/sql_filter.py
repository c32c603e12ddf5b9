"""sql: drop (or flag) the samples matching any SQL predicate over the samples view."""

from __future__ import annotations

import re

import pyarrow as pa
from pydantic import field_validator

from lineage.core.readonly import predicate, run
from lineage.errors import LineageError, QueryError
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, mark, register


class SqlParams(FilterParams):
    where: str
    reason: str = "sql_predicate"
    decision: str = "drop"

    @field_validator("where")
    @classmethod
    def _where(cls, value: str) -> str:
        return predicate(value)

    @field_validator("reason")
    @classmethod
    def _snake(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError("must be short snake_case")
        return value

    @field_validator("decision")
    @classmethod
    def _decision(cls, value: str) -> str:
        if value not in ("drop", "flag"):
            raise ValueError("must be drop or flag")
        return value


@register
class SqlFilter(SelectionFilter):
    """Drop or flag samples matching `where` (any SQL predicate over `samples`), with your `reason`."""

    name = "sql"
    Params = SqlParams
    columns = ()

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        p: SqlParams = self.params  # type: ignore[assignment]
        store = context.store
        with store.reader(locked=True) as con:
            try:
                hits = run(con, f"SELECT sample_id FROM samples WHERE ({p.where})")
            except QueryError as exc:
                raise LineageError(f"param `where` of filter sql: {exc}") from None
        return mark(features, hits, decision=p.decision, reason=p.reason)
