"""takedown: drop samples (by source or predicate) and every descendant, naming the root taken down."""

from __future__ import annotations

import pyarrow as pa
from pydantic import field_validator

from lineage.core.readonly import lock_down, predicate, run
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, mark, register, slug

# Roots, then every descendant; each target keeps the smallest root id that reaches it.
TARGETS_SQL = """
WITH RECURSIVE t(sample_id, root) AS (
    SELECT sample_id, sample_id FROM samples WHERE ({where})
    UNION
    SELECT e.child_id, t.root FROM lineage_edges e JOIN t ON e.parent_id = t.sample_id
)
SELECT sample_id, min(root) AS root FROM t GROUP BY sample_id
"""


class TakedownParams(FilterParams):
    where: str
    reason: str

    @field_validator("where")
    @classmethod
    def _where(cls, value: str) -> str:
        return predicate(value)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not slug(value):
            raise ValueError("must contain letters or digits")
        return value


def targets_where(where: str) -> str:
    """A predicate selecting the roots and all their descendants (the run's selection)."""
    return f"sample_id IN (SELECT sample_id FROM ({TARGETS_SQL.format(where=where)}))"


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
            roots = run(con, TARGETS_SQL.format(where=p.where))
        hits = roots.rename_columns(["sample_id", "related"])
        return mark(features, hits, decision="drop", reason=f"takedown:{slug(p.reason)}")
