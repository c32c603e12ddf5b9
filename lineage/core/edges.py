"""Lineage edges: the samples' parent links, materialised once at ingest, walked by point lookups.

`samples.parent_ids` answers "who are my parents" only by unnesting every sample's list: at 10,000,000 samples a
walk of five generations that way reads the whole store at each step (16-24 s). So each ingest also writes an
`edges` segment (schema `lineage.schemas.EDGES`) in the same commit as its samples segment: every link twice,
(child, `parent`, parent) and (parent, `child`, child), sorted by sample_id in small row groups with Bloom filters
on sample_id. A lookup `sample_id = ANY($ids)` then reads only the few row groups whose min/max and Bloom filter
admit one of the ids, in both directions; `walk` repeats it once per generation, so its cost follows the size of
the family, not of the store. On a local data location each step is a binary search in memory-mapped indexes of
the segments instead (`lineage.core.edgeindex`: 58 descendants of a sample among 10,000,000 in milliseconds, where
the DuckDB lookups took 0.3-0.8 s); on a remote one, the SQL lookups above (`Graph`).

The segments are derived from the samples segment just written (edges are exactly unnest(parent_ids)); they are
registered, compacted (`lineage.compaction`), retired and removed by `gc` like any segment, so a read --as-of a
version sees the edges of exactly the samples it sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.catalog import segment_paths
from lineage.core.edgeindex import EdgeIndex, RowIndex, ids_array, ids_of, keys, unique_keys
from lineage.core.segments import Segment, write_parquet
from lineage.core.sqlutil import sql_string
from lineage.schemas import EDGES

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore, Transaction

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


class Graph:
    """The lineage edges of a store as of its version (`store.at(v)` sees the segments live at v): the indexes of
    its edges and samples segments on a local data location, SQL over the reader's `_edges` and `samples` views
    on a remote one. `con` is a reader of the store with those views (`store.reader(views=Graph.VIEWS)`)."""

    VIEWS: ClassVar[frozenset[str]] = frozenset({"samples", "_edges"})  # what a reader for a Graph needs

    def __init__(self, store: StoreCore, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.data = con, store.data
        self.indexed = store.data.posix
        self._edges: list[EdgeIndex] | None = None
        self._samples = segment_paths(con, "samples", store.as_of) if self.indexed else []
        self._edge_paths = segment_paths(con, "edges", store.as_of) if self.indexed else []

    def pairs(self, wanted: np.ndarray, relation: str) -> tuple[np.ndarray, np.ndarray]:
        """For unique keys `wanted` (`edgeindex.keys`): (index into `wanted`, related key) of each link of
        `relation` ("parent" or "child") from one of them."""
        if not self.indexed:
            return self._sql_pairs(wanted, relation)
        if self._edges is None:
            try:
                self._edges = [EdgeIndex.open(self.data, rel) for rel in self._edge_paths]
            except OSError:  # a segment this reader cannot index (a read-only copy of the store): SQL
                self.indexed = False
                return self._sql_pairs(wanted, relation)
        found = [index.pairs(wanted, relation) for index in self._edges]
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, "S1")
        return np.concatenate([w for w, _ in found]), np.concatenate([r for _, r in found])

    def _sql_pairs(self, wanted: np.ndarray, relation: str) -> tuple[np.ndarray, np.ndarray]:
        _cache_footers(self.con)
        ids = ids_of(wanted)
        at = {sample_id: i for i, sample_id in enumerate(ids)}
        found = _pairs(self.con, "_edges", relation, ids)
        which = np.array([at[s] for s, _ in found], np.int64)
        return which, keys(pa.array([r for _, r in found], pa.string()))

    def rows(self, ids: Sequence[str], select: str) -> pa.Table:
        """`sample_id`, then `select` (a SELECT list over the samples' other columns) of the samples `ids`, in no
        particular order. Local: each segment's rows by number, which DuckDB prunes to the row groups that hold
        them, and their ids from the index (the id column would cost half the read); remote: by id (`sample_id =
        ANY`, which reads every row group whose min/max admit one of the ids)."""
        if not self.indexed or not ids:
            return self.con.sql(f"SELECT sample_id, {select} FROM samples WHERE sample_id = ANY($ids)",
                                params={"ids": list(ids)}).to_arrow_table()
        try:
            indexes = [RowIndex.open(self.data, rel) for rel in self._samples]
        except OSError:  # as in `pairs`
            self.indexed = False
            return self.rows(ids, select)
        wanted, parts = unique_keys(ids), []
        for rel, index in zip(self._samples, indexes, strict=True):
            rows, found = index.rows(wanted)
            if len(rows):
                sql = (f"SELECT file_row_number AS _row, {select} "
                       f"FROM read_parquet({sql_string(self.data.sql_path(rel))}, file_row_number = true) "
                       "WHERE file_row_number = ANY($rows)")
                part = self.con.sql(sql, params={"rows": rows.tolist()}).to_arrow_table()
                at = pc.index_in(part["_row"], value_set=pa.array(rows))
                parts.append(part.drop_columns(["_row"]).add_column(0, "sample_id", ids_array(found).take(at)))
        if not parts:
            return self.con.sql(f"SELECT sample_id, {select} FROM samples WHERE false").to_arrow_table()
        return pa.concat_tables(parts)


def walk(graph: Graph, start: Sequence[str], which: str) -> pa.Table:
    """The `which` ("ancestors" or "descendants") of the samples `start`, each with its depth (1 = parent or
    child), nearest first (then by id).

    Breadth first, one lookup per generation: a sample reached at depth d is never looked up again, so each
    id is read once however many paths lead to it."""
    relation = RELATIONS[which]
    seen = unique_keys(start)
    frontier, depth = seen, 0
    found: list[np.ndarray] = []
    while len(frontier) and depth < MAX_DEPTH:
        depth += 1
        _, related = graph.pairs(frontier, relation)
        related = np.unique(related)
        frontier = related[~np.isin(related, seen)]
        seen = np.union1d(seen, frontier)
        found.append(frontier)
    ids = pa.concat_arrays([ids_array(level) for level in found]) if found else pa.array([], pa.string())
    depths = np.repeat(np.arange(1, len(found) + 1), [len(level) for level in found])
    return pa.table({"sample_id": ids, "depth": pa.array(depths, pa.int64())})


def reach(graph: Graph, seeds: dict[str, str]) -> dict[str, str]:
    """The seeds and every descendant of theirs, each with the smallest root (a seed's value) that reaches it: what
    lineage-aware contamination flags (`reach_table`)."""
    found = reach_table(graph, seeds)
    return dict(zip(found["sample_id"].to_pylist(), found["root"].to_pylist(), strict=True))


def reach_table(graph: Graph, seeds: dict[str, str]) -> pa.Table:
    """The seeds and every descendant of theirs (`sample_id`, sorted), each with the smallest `root` (a seed's
    value) that reaches it: what a takedown drops. Breadth first like `walk`; a sample is looked up again only
    when a smaller root reaches it later, so the walk ends when no root improves. Vectorised, the roots as their
    ranks: a takedown of one source among 10,000,000 samples reaches a million in ~2 CPU-s."""
    names, codes = np.unique(keys(pa.array(list(seeds.values()), pa.string())), return_inverse=True)
    best, roots = _smallest(keys(pa.array(list(seeds), pa.string())), codes.astype(np.int64))
    frontier, frontier_roots, depth = best, roots, 0
    while len(frontier) and depth < MAX_DEPTH:
        depth += 1
        which, children = graph.pairs(frontier, CHILD)
        children, offered = _smallest(children, frontier_roots[which])
        best, children = _same_width(best, children)
        at = np.searchsorted(best, children)
        known = at < len(best)
        known[known] = best[at[known]] == children[known]
        improves = ~known
        improves[known] = offered[known] < roots[at[known]]
        better = known & improves
        roots[at[better]] = offered[better]
        new = improves & ~known
        if new.any():
            best, roots = np.concatenate([best, children[new]]), np.concatenate([roots, offered[new]])
            order = np.argsort(best, kind="stable")
            best, roots = best[order], roots[order]
        frontier, frontier_roots = children[improves], offered[improves]
    return pa.table({"sample_id": ids_array(best), "root": ids_array(names).take(pa.array(roots))})


def _smallest(ids: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each id once, sorted, with the smallest of its roots."""
    order = np.lexsort((roots, ids))
    ids, roots = ids[order], roots[order]
    first = np.ones(len(ids), bool)
    first[1:] = ids[1:] != ids[:-1]
    return ids[first], roots[first]


def _same_width(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of two widths as keys of the wider one (a search between widths would cut the longer keys)."""
    width = max(a.dtype.itemsize, b.dtype.itemsize)
    return a.astype(f"S{width}", copy=False), b.astype(f"S{width}", copy=False)


def _cache_footers(con: duckdb.DuckDBPyConnection) -> None:
    """Parse each segment's footer once per walk, not once per generation: at 10M samples the footers of the
    edges segments (thousands of small row groups) cost as much as the lookups (0.67 -> 0.30 CPU-s for the
    ancestors of a generation-5 sample). Segments never change, so a cached footer is never stale. A
    locked-down connection keeps its settings: it walks without the cache."""
    with contextlib.suppress(duckdb.Error):
        con.execute("SET parquet_metadata_cache = true")


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
