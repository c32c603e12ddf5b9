"""Seeded sampling within cells: the first `take` samples of each cell in a seeded hash order.

Where a diversity floor is set, the order first spreads picks across near-duplicate clusters (the
latest near-dedup run's cluster ids, else exact-duplicate groups): every cluster gives one sample
before any gives a second.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from lineage.build.allocate import Allocation
from lineage.build.pool import Pool

CLUSTERS_SQL = """
CREATE OR REPLACE TEMP TABLE pool_clusters AS
SELECT p.sample_id, coalesce(n.cluster_id, p.content_hash) AS cluster
FROM pool p LEFT JOIN (SELECT sample_id, cluster_id FROM status WHERE filter = 'near-dedup') n USING (sample_id)
"""

MEMBERS_SQL = """
SELECT sample_id, cell FROM (
    SELECT p.sample_id, p.cell, row_number() OVER (PARTITION BY p.cell ORDER BY {order}) AS rank
    FROM {source} p
) JOIN _alloc USING (cell)
WHERE rank <= take
ORDER BY sample_id
"""


def select_members(
    con: duckdb.DuckDBPyConnection, pool: Pool, allocation: Allocation, *, seed: int, spread: bool
) -> pa.Table:
    """The members (sample_id, cell), deterministic for a pool, allocation and seed."""
    cells = [json_key for json_key in _cell_keys(con)]
    con.register("_alloc", pa.table({"cell": cells, "take": allocation.takes}))
    order = "md5(p.sample_id || $seed)"
    source = "pool"
    if spread:
        con.execute(CLUSTERS_SQL)
        source = (
            "(SELECT pool.*, row_number() OVER (PARTITION BY pool.cell, c.cluster "
            "ORDER BY md5(pool.sample_id || $seed)) AS spread FROM pool JOIN pool_clusters c USING (sample_id))"
        )
        order = f"p.spread, {order}"
    return con.sql(MEMBERS_SQL.format(order=order, source=source), params={"seed": f":{seed}"}).to_arrow_table()


def _cell_keys(con: duckdb.DuckDBPyConnection) -> list[str]:
    # Same order as Pool.cells (both sorted by the cell's JSON key).
    return [r[0] for r in con.execute("SELECT DISTINCT cell FROM pool ORDER BY cell").fetchall()]
