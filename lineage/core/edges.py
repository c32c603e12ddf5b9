"""Lineage edges: the samples' parent links, materialised once at ingest, walked by point lookups.

`samples.parent_ids` answers "who are my parents" only by unnesting every sample's list: at 10,000,000 samples a
walk of five generations that way reads the whole store at each step (16-24 s). So each ingest also writes an
`edges` segment (schema `lineage.schemas.EDGES`) in the same commit as its samples segment: every link twice,
(child, `parent`, parent) and (parent, `child`, child), sorted by sample_id in small row groups with Bloom filters
on sample_id. A lookup `sample_id = ANY($ids)` then reads only the few row groups whose min/max and Bloom filter
admit one of the ids, in both directions; `walk` repeats it once per generation, so its cost follows the size of
the family, not of the store.

The segments are derived from the samples segment just written (edges are exactly unnest(parent_ids)); they are
registered, compacted (`lineage.compaction`), retired and removed by `gc` like any segment, so a read --as-of a
version sees the edges of exactly the samples it sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from lineage.core.segments import Segment, write_parquet
from lineage.schemas import EDGES

if TYPE_CHECKING:
    from lineage.core.handle import Transaction

ROW_GROUP = 8_192  # rows per row group: a lookup reads ~one per id asked for, so small keeps it cheap
BLOOM = ("sample_id",)
PARENT, CHILD = "parent", "child"
RELATIONS = {"ancestors": PARENT, "descendants": CHILD}
LOOKUP_MAX = 4_096  # ids per pushed-down lookup; a larger frontier is joined against a scan instead
MAX_DEPTH = 10_000  # as the SQL macros: generations are bounded, this only stops a runaway walk

# Both ends of every link in `{src}` (a relation with sample_id and parent_ids), sorted for point lookups.
EDGES_OF_SQL = """
WITH links AS (SELECT sample_id AS child, unnest(parent_ids) AS parent FROM {src})
SELECT sample_id, relation, related_id FROM (
    SELECT child AS sample_id, 'parent' AS relation, parent AS related_id FROM links
    UNION ALL
    SELECT parent, 'child', child FROM links
) ORDER BY sample_id, relation, related_id
"""


def write_edges(
    con: duckdb.DuckDBPyConnection, txn: Transaction, segment_id: str, src: str
) -> Segment | None:
    """Write the edges of the samples `src` selects (a table expression) as one segment of `txn`; None when they
    have no parents. `con` bounds the sort's memory (it spills to its temp_directory)."""
    links = con.execute(f"SELECT count(*) FROM (SELECT unnest(parent_ids) FROM {src})").fetchall()[0][0]
    if not links:
        return None
    sql = EDGES_OF_SQL.format(src=src)

    def write(draft: object) -> None:
        write_parquet(draft, EDGES, con.sql(sql).to_arrow_reader(ROW_GROUP), bloom=BLOOM, bloom_rows=ROW_GROUP)

    return txn.write_segment("edges", segment_id, write)


def walk(
    con: duckdb.DuckDBPyConnection, start: Sequence[str], which: str, *, edges: str = "_edges"
) -> pa.Table:
    """The `which` ("ancestors" or "descendants") of the samples `start`, each with its depth (1 = parent or
    child), nearest first; `edges` is a view of the edges segments (`catalog.create_views` makes `_edges`).

    Breadth first, one lookup per generation: a sample reached at depth d is never looked up again, so each
    id is read once however many paths lead to it."""
    relation = RELATIONS[which]
    _cache_footers(con)
    depth_of: dict[str, int] = {}
    seen, frontier, depth = set(start), sorted(set(start)), 0
    while frontier and depth < MAX_DEPTH:
        depth += 1
        found = _step(con, edges, relation, frontier)
        frontier = sorted(found - seen)
        seen.update(frontier)
        depth_of.update((sample_id, depth) for sample_id in frontier)
    ids = sorted(depth_of, key=lambda s: (depth_of[s], s))
    return pa.table(
        {"sample_id": pa.array(ids, pa.string()), "depth": pa.array([depth_of[s] for s in ids], pa.int64())}
    )


def reach(
    con: duckdb.DuckDBPyConnection, seeds: dict[str, str], *, edges: str = "_edges"
) -> dict[str, str]:
    """The seeds and every descendant of theirs, each with the smallest root (a seed's value) that reaches it: what
    a takedown drops and lineage-aware contamination flags. Breadth first like `walk`; a sample is looked up again
    only when a smaller root reaches it later, so the walk ends when no root improves."""
    _cache_footers(con)
    best = dict(seeds)
    frontier, depth = dict(seeds), 0
    while frontier and depth < MAX_DEPTH:
        depth += 1
        improved: dict[str, str] = {}
        for parent, child in _pairs(con, edges, CHILD, sorted(frontier)):
            root = frontier[parent]
            if child not in best or root < best[child]:
                best[child] = improved[child] = root
        frontier = improved
    return best


def _cache_footers(con: duckdb.DuckDBPyConnection) -> None:
    """Parse each segment's footer once per walk, not once per generation: at 10M samples the footers of the
    edges segments (thousands of small row groups) cost as much as the lookups (0.67 -> 0.30 CPU-s for the
    ancestors of a generation-5 sample). Segments never change, so a cached footer is never stale. A
    locked-down connection keeps its settings: it walks without the cache."""
    with contextlib.suppress(duckdb.Error):
        con.execute("SET parquet_metadata_cache = true")


def _step(con: duckdb.DuckDBPyConnection, edges: str, relation: str, frontier: list[str]) -> set[str]:
    return {related for _, related in _pairs(con, edges, relation, frontier)}


def _pairs(
    con: duckdb.DuckDBPyConnection, edges: str, relation: str, ids: list[str]
) -> list[tuple[str, str]]:
    """(sample_id, related_id) of `ids`: pushed-down lookups by id, or past LOOKUP_MAX ids one hash join (the ids
    unnested from a parameter: no table to register on a locked-down connection)."""
    if len(ids) <= LOOKUP_MAX:
        sql = f"SELECT DISTINCT sample_id, related_id FROM {edges} WHERE sample_id = ANY($ids) AND relation = $rel"
    else:
        sql = (f"SELECT DISTINCT e.sample_id, e.related_id FROM {edges} e "
               "SEMI JOIN (SELECT unnest($ids) AS sample_id) f USING (sample_id) WHERE e.relation = $rel")
    return [(r[0], r[1]) for r in con.execute(sql, {"ids": ids, "rel": relation}).fetchall()]
