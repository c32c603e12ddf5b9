"""exact-dedup: samples with the same content_hash (normalised text) keep one copy by the keep policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.filters.base import BASE_COLUMNS, KEEP_ORDER_SQL, SelectionContext, SelectionFilter, register
from lineage.filters.bounded import BoundedRun, stage_events
from lineage.filters.incremental import Prior
from lineage.filters.spill import Spill

if TYPE_CHECKING:
    from lineage.core.selection import Selection
    from lineage.filters.events import Decided

DEDUP_SELECT = f"""
SELECT sample_id,
    CASE WHEN rank = 1 THEN 'keep' ELSE 'drop' END AS decision,
    CAST(group_size AS DOUBLE) AS score,
    CASE WHEN rank = 1 THEN NULL ELSE 'exact_duplicate' END AS reason,
    CASE WHEN rank = 1 THEN NULL ELSE kept END AS related_id,
    content_hash AS cluster_id
FROM (
    SELECT sample_id, content_hash,
        row_number() OVER w AS rank,
        first_value(sample_id) OVER w AS kept,
        count(*) OVER (PARTITION BY content_hash) AS group_size
    FROM features
    WINDOW w AS (PARTITION BY content_hash ORDER BY {KEEP_ORDER_SQL})
)
"""
DEDUP_SQL = DEDUP_SELECT + "ORDER BY sample_id"
# Out of core: the same decisions with each sample's source, from a table of the scratch database.
DEDUP_BOUNDED_SQL = f"""
SELECT d.*, f.source FROM ({DEDUP_SELECT}) d JOIN features f USING (sample_id)
"""


@register
class ExactDedupFilter(SelectionFilter):
    """Drop exact duplicates (same normalised text); keep real, then lower generation, then earliest."""

    name = "exact-dedup"
    spills = True
    columns = ("content_hash",)

    def decide_new(self, features: pa.Table, prior: Prior, context: SelectionContext) -> pa.Table:
        """A group (content_hash) is decided by its members only: re-decide the groups of the new samples, with
        their members decided before (the cluster of an exact-dedup decision is its content_hash, so the prior's
        index finds them without a pass over every sample's hash)."""
        decided = prior.in_clusters(pc.unique(features["content_hash"]))["sample_id"]
        old = prior.samples(list(features.column_names), decided)
        return prior.query(DEDUP_SQL, features=pa.concat_tables([features, old.cast(features.schema)]))

    def decide_bounded(self, selection: Selection, run: BoundedRun) -> Decided:
        """`decide_all`'s decisions in memory bounded by `run.memory_limit`: the selection's columns (no text) are
        streamed into a scratch DuckDB database, whose window over content_hash spills past the limit, and the
        decisions are staged from there in batches (`lineage.filters.bounded`)."""
        spill = Spill(run.store, run.run_id, run.memory_limit, self.name)
        try:
            with spill.errors():
                con, n = spill.con, 0
                columns = [*BASE_COLUMNS, "source"]
                con.execute(
                    "CREATE TABLE features (sample_id VARCHAR, origin VARCHAR, generation BIGINT, version BIGINT, "
                    "input_row BIGINT, content_hash VARCHAR, source VARCHAR)"
                )
                for batch in selection.batches(columns, ordered=False):
                    con.register("_batch", batch)
                    con.execute(f"INSERT INTO features SELECT {', '.join(columns)} FROM _batch")
                    con.unregister("_batch")
                    n += batch.num_rows
                    if run.progress:
                        run.progress(n, selection.count)
                con.execute(f"CREATE TABLE decided AS {DEDUP_BOUNDED_SQL}")
                decided = stage_events(con, run, "decided", n)
                spill.measure()
        finally:
            spill.close()
        self._note = f"out of core within {run.memory_limit}"
        return decided

    def note(self) -> str:
        return getattr(self, "_note", "")

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        con = duckdb.connect()
        try:
            con.register("features", features)
            return con.sql(DEDUP_SQL).to_arrow_table()
        finally:
            con.close()
