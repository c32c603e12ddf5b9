"""exact-dedup: samples with the same content_hash (normalised text) keep one copy by the keep policy."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.filters.base import KEEP_ORDER_SQL, SelectionContext, SelectionFilter, register
from lineage.filters.incremental import Prior

DEDUP_SQL = f"""
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
ORDER BY sample_id
"""


@register
class ExactDedupFilter(SelectionFilter):
    """Drop exact duplicates (same normalised text); keep real, then lower generation, then earliest."""

    name = "exact-dedup"
    columns = ("content_hash",)

    def decide_new(self, features: pa.Table, prior: Prior, context: SelectionContext) -> pa.Table:
        """A group (content_hash) is decided by its members only: re-decide the groups of the new samples, with
        their members decided before (the cluster of an exact-dedup decision is its content_hash, so the prior's
        index finds them without a pass over every sample's hash)."""
        decided = prior.in_clusters(pc.unique(features["content_hash"]))["sample_id"]
        old = prior.samples(list(features.column_names), decided)
        return prior.query(DEDUP_SQL, features=pa.concat_tables([features, old.cast(features.schema)]))

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        con = duckdb.connect()
        try:
            con.register("features", features)
            return con.sql(DEDUP_SQL).to_arrow_table()
        finally:
            con.close()
