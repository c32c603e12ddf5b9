"""takedown: drop samples (by source or predicate) and every descendant, naming the root taken down."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import field_validator, model_validator

from lineage.core.edges import Graph, reach_table
from lineage.core.readonly import predicate, run
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, mark, register, slug

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


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
            raise ValueError("give exactly one of source or where")
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

    _found: pa.Table | None = None  # the targets `targets` found, for `decide_all` in the same run

    def targets(self, store: StoreCore) -> pa.Array:
        """The roots and all their descendants, each with the smallest root that reaches it: the run's selection
        (`lineage.takedown` passes this to `execute`, which calls it under the writer lock)."""
        self._found = self._reach(store)
        return self._found["sample_id"].combine_chunks()  # sorted

    def _reach(self, store: StoreCore) -> pa.Table:
        p: TakedownParams = self.params  # type: ignore[assignment]
        with store.reader(views={"samples", "_edges"}, locked=True) as con:
            where, values = p.roots()
            roots = run(con, f"SELECT sample_id FROM samples WHERE ({where})", values)["sample_id"].to_pylist()
            # Searches over the edges (`lineage.core.edges`): (sample_id, root), sorted by sample_id.
            return reach_table(Graph(store, con), {r: r for r in roots})

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        found = self._found if self._found is not None else self._reach(context.store)
        hits = pa.table({"sample_id": found["sample_id"], "related": found["root"]},
                        schema=pa.schema([("sample_id", pa.string()), ("related", pa.string())]))
        reason = self.params.reason  # type: ignore[attr-defined]
        return mark(features, hits, decision="drop", reason=f"takedown:{slug(reason)}")
