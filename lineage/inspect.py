"""Look at samples: one sample's provenance and relatives, and grouped statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.sqlutil import quote_ident
from lineage.dimensions import GROUP_DIMENSIONS
from lineage.errors import LineageError, NotFound

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

STAT_DIMENSIONS = GROUP_DIMENSIONS

RELATIVES_SQL = """
SELECT r.depth, s.sample_id, s.origin, s.source, s.method, s.generator, s.generation, s.external_id,
       left(s.text, 80) AS text
FROM {fn}(?) r LEFT JOIN samples s USING (sample_id)
ORDER BY r.depth, r.sample_id
"""


def resolve_id(store: StoreCore, ref: str) -> str:
    """A full sample id from a full sample id, an exact external id or `source:external_id`, or a unique prefix
    of a sample id (tried last: a short external id such as `a2` is often also a prefix of some hex id)."""
    with store.reader() as con:
        rows = con.execute(
            "SELECT DISTINCT sample_id, source FROM samples WHERE sample_id = ? OR external_id = ? "
            "OR source || ':' || external_id = ? ORDER BY source LIMIT 3",
            [ref, ref, ref],
        ).fetchall()
        if not rows:
            rows = con.execute(
                "SELECT DISTINCT sample_id, source FROM samples WHERE starts_with(sample_id, ?) LIMIT 2", [ref]
            ).fetchall()
    if not rows:
        raise NotFound("sample", ref, f"no sample with id, id prefix or external id `{ref}`")
    if len(rows) > 1:
        sources = sorted({r[1] for r in rows})
        if len(sources) > 1:
            in_sources = f"`{ref}` is an id in sources {', '.join(sources)}; write it as `SOURCE:{ref}`"
            raise NotFound("sample", ref, in_sources)
        raise NotFound("sample", ref, f"`{ref}` matches several samples; give more of the id")
    return rows[0][0]


def sample(store: StoreCore, ref: str) -> dict[str, Any]:
    """Provenance, ancestors, descendants and batch of one sample."""
    sample_id = resolve_id(store, ref)
    with store.reader() as con:
        row = con.sql("SELECT * FROM samples WHERE sample_id = ?", params=[sample_id]).to_arrow_table().to_pylist()[0]
        batch = (
            con.sql(
                "SELECT batch_id, input_uri, input_sha256, input_format, rows_read, rows_stored, finished_at, version "
                "FROM batches WHERE batch_id = ?",
                params=[row["batch_id"]],
            )
            .to_arrow_table()
            .to_pylist()
        )
        ancestors = con.sql(RELATIVES_SQL.format(fn="ancestors"), params=[sample_id]).to_arrow_table().to_pylist()
        descendants = con.sql(RELATIVES_SQL.format(fn="descendants"), params=[sample_id]).to_arrow_table().to_pylist()
        history = (
            con.sql(
                "SELECT e.filter, e.decision, e.reason, e.score, e.related_id, r.external_id AS related_external_id, "
                "e.cluster_id, e.run_id, e.version FROM events e "
                "LEFT JOIN (SELECT sample_id, external_id FROM samples) r ON r.sample_id = e.related_id "
                "WHERE e.sample_id = ? ORDER BY e.version, e.filter",
                params=[sample_id],
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
    sample_id = resolve_id(store, ref)
    with store.reader() as con:
        return con.sql(RELATIVES_SQL.format(fn=which), params=[sample_id]).to_arrow_table()


def stats(store: StoreCore, *, by: list[str]) -> pa.Table:
    """Counts, shares and text-length statistics per group of `by`."""
    unknown = [d for d in by if d not in STAT_DIMENSIONS]
    if unknown:
        raise LineageError(f"cannot group by `{unknown[0]}`; choose from {', '.join(STAT_DIMENSIONS)}")
    dims = ", ".join(quote_ident(d) for d in by)
    select = f"{dims}, " if by else ""
    group = "GROUP BY ALL ORDER BY ALL" if by else ""
    sql = f"""
        SELECT {select}count(*) AS samples, round(count(*) / sum(count(*)) OVER (), 4) AS share,
               round(avg(length(text)), 1) AS mean_chars, min(length(text)) AS min_chars,
               CAST(median(length(text)) AS BIGINT) AS median_chars, max(length(text)) AS max_chars
        FROM samples {group}"""
    with store.reader() as con:
        return con.sql(sql).to_arrow_table()
