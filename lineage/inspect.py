"""Look at samples: one sample's provenance and relatives, and grouped statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.edges import Graph, walk
from lineage.core.sqlutil import quote_ident
from lineage.dimensions import GROUP_DIMENSIONS
from lineage.errors import LineageError, NotFound

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

STAT_DIMENSIONS = GROUP_DIMENSIONS

# What `show` prints of each relative `walk` found (`_walk`: sample_id, depth), read by `Graph.rows`. The text
# whole: `show --json` has everything (it had the first 80 characters); the table shortens it for display.
RELATIVE_COLUMNS = "origin, source, method, generator, generation, external_id, text"
RELATIVES_SQL = """
SELECT r.depth, r.sample_id, s.origin, s.source, s.method, s.generator, s.generation, s.external_id, s.text
FROM _walk r LEFT JOIN _rows s USING (sample_id)
ORDER BY r.depth, r.sample_id
"""


def resolve_id(store: StoreCore, ref: str) -> str:
    """A full sample id from a full sample id, an exact external id or `source:external_id`, or a unique prefix
    of a sample id (tried last: a short external id such as `a2` is often also a prefix of some hex id)."""
    with store.reader(views={"samples"}) as con:
        rows = _matches(con, ref)
    if not rows:
        raise NotFound("sample", ref, f"no sample with id, id prefix or external id `{ref}`")
    if len(rows) > 1:
        sources = sorted({r[1] for r in rows})
        if len(sources) > 1:
            in_sources = f"`{ref}` is an id in sources {', '.join(sources)}; write it as `SOURCE:{ref}`"
            raise NotFound("sample", ref, in_sources)
        raise NotFound("sample", ref, f"`{ref}` matches several samples; give more of the id")
    return rows[0][0]


def _matches(con: Any, ref: str) -> list[tuple[str, str]]:
    """(sample_id, source) of the samples `ref` names, as `resolve_id` ranks them. Each test is one equality (a
    disjunction would read every row; an equality is pushed into the scan and prunes row groups): a sample id,
    an external id or SOURCE:ID split at each `:`; else a prefix."""
    def where(cond: str, params: list[object]) -> list[tuple[str, str]]:
        sql = f"SELECT DISTINCT sample_id, source FROM samples WHERE {cond} ORDER BY source LIMIT 3"
        return [(r[0], r[1]) for r in con.execute(sql, params).fetchall()]

    rows = where("sample_id = ?", [ref]) + where("external_id = ?", [ref])
    for i, ch in enumerate(ref):
        if ch == ":":
            rows += where("external_id = ? AND source = ?", [ref[i + 1:], ref[:i]])
    if not rows:
        rows = where("starts_with(sample_id, ?)", [ref])[:2]
    return sorted(set(rows), key=lambda r: (r[1], r[0]))[:3]


def sample(store: StoreCore, ref: str) -> dict[str, Any]:
    """Provenance, ancestors, descendants and batch of one sample."""
    sample_id = resolve_id(store, ref)
    with store.reader() as con:
        row = con.sql("SELECT * FROM samples WHERE sample_id = ?", params=[sample_id]).to_arrow_table().to_pylist()[0]
        graph = Graph(store, con)
        ancestors = _relatives(graph, sample_id, "ancestors").to_pylist()
        descendants = _relatives(graph, sample_id, "descendants").to_pylist()
        batch = (
            con.sql(
                "SELECT batch_id, input_uri, input_sha256, input_format, rows_read, rows_stored, finished_at, version "
                "FROM batches WHERE batch_id = ?",
                params=[row["batch_id"]],
            )
            .to_arrow_table()
            .to_pylist()
        )
        history = (
            con.sql(
                "SELECT e.filter, e.decision, e.reason, e.score, e.related_id, r.external_id AS related_external_id, "
                "e.cluster_id, e.run_id, e.version FROM events e "
                "LEFT JOIN (SELECT sample_id, external_id FROM samples WHERE sample_id = ANY($related)) r "
                "ON r.sample_id = e.related_id WHERE e.sample_id = $id ORDER BY e.version, e.filter",
                params={"id": sample_id, "related": _related_ids(con, sample_id)},
            )
            .to_arrow_table()
            .to_pylist()
        )
        sets = [
            r[0]
            for r in con.execute(
                "SELECT set_name FROM set_members WHERE sample_id = ? ORDER BY 1", [sample_id]
            ).fetchall()
        ]
    return {
        "sample": row,
        "ancestors": ancestors,
        "descendants": descendants,
        "batch": batch[0] if batch else None,
        "filters": history,
        "sets": sets,
    }


def relatives(store: StoreCore, ref: str, which: str) -> pa.Table:
    """`which` ("ancestors" or "descendants") of one sample, nearest first, with their provenance."""
    sample_id = resolve_id(store, ref)
    with store.reader(views={"samples", "_edges"}) as con:
        return _relatives(Graph(store, con), sample_id, which)


def _relatives(graph: Graph, sample_id: str, which: str) -> pa.Table:
    found = walk(graph, [sample_id], which)
    rows = graph.rows(found["sample_id"].to_pylist(), RELATIVE_COLUMNS)
    con = graph.con
    con.register("_walk", found)
    con.register("_rows", rows)
    try:
        return con.sql(RELATIVES_SQL).to_arrow_table()
    finally:
        con.unregister("_walk")
        con.unregister("_rows")


def _related_ids(con: Any, sample_id: str) -> list[str]:
    """The related ids of a sample's filter decisions (the samples kept instead of it, ...)."""
    rows = con.execute(
        "SELECT DISTINCT related_id FROM events WHERE sample_id = ? AND related_id IS NOT NULL", [sample_id]
    ).fetchall()
    return [r[0] for r in rows]


def stats(store: StoreCore, *, by: list[str]) -> pa.Table:
    """Counts, shares and text-length statistics per group of `by`, exact (the table, CSV and TSV formats round
    them for display; JSON keeps them, as the CLI's help says)."""
    unknown = [d for d in by if d not in STAT_DIMENSIONS]
    if unknown:
        raise LineageError(f"cannot group by `{unknown[0]}`; choose from {', '.join(STAT_DIMENSIONS)}")
    dims = ", ".join(quote_ident(d) for d in by)
    select = f"{dims}, " if by else ""
    group = "GROUP BY ALL ORDER BY ALL" if by else ""
    sql = f"""
        SELECT {select}count(*) AS samples, count(*) / sum(count(*)) OVER () AS share,
               avg(length(text)) AS mean_chars, min(length(text)) AS min_chars,
               CAST(median(length(text)) AS BIGINT) AS median_chars, max(length(text)) AS max_chars
        FROM samples {group}"""
    with store.reader() as con:
        return con.sql(sql).to_arrow_table()
