"""takedown: drop samples (by source or predicate) and every descendant, naming the root taken down."""

from __future__ import annotations

import pyarrow as pa
from pydantic import field_validator, model_validator

from lineage.core.catalog import with_descendants
from lineage.core.readonly import lock_down, predicate, run
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, mark, register, slug

# Roots, then every descendant; each target keeps the smallest root id that reaches it.
TARGETS_SQL = with_descendants("SELECT sample_id, sample_id FROM samples WHERE ({where})")


class TakedownParams(FilterParams):
    where: str | None = None  # a predicate over samples
    source: str | None = None  # or every sample of a source (bound as a value, never spliced into SQL)
    reason: str

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        return None if value is None else predicate(value)

    @model_validator(mode="after")
    def _one(self) -> TakedownParams:
        if (self.source is None) == (self.where is None):
            raise ValueError("give exactly one of --source or --where")
        return self

    def roots(self) -> tuple[str, list[object]]:
        """The predicate selecting the roots, and its bound values."""
        return ("source = ?", [self.source]) if self.source is not None else (str(self.where), [])

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not slug(value):
            raise ValueError("must contain letters or digits")
        return value


@register
class TakedownFilter(SelectionFilter):
    """Drop the matching samples and all their descendants; related_id is the root taken down."""

    name = "takedown"
    Params = TakedownParams
    columns = ()

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        p: TakedownParams = self.params  # type: ignore[assignment]
        with context.store.reader() as con:
            lock_down(con, context.store.data)
            where, values = p.roots()
            roots = run(con, TARGETS_SQL.format(where=where), values)
        hits = roots.rename_columns(["sample_id", "related"])
        return mark(features, hits, decision="drop", reason=f"takedown:{slug(p.reason)}")
