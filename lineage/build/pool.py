"""The candidate pool of a build: the spec's predicate, minus drops, protected sets and their taint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from lineage.build.spec import BuildSpec
from lineage.core import catalog
from lineage.core.sqlutil import quote_ident
from lineage.errors import QueryError, first_line

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

# Always honoured, whatever `exclude_dropped_by` says: leaked held-out data never enters a build.
ALWAYS_EXCLUDED_FILTERS = ("contamination", "takedown")

# What no build may take, whatever its spec says: protected samples and their descendants (by id), their texts
# (by content hash: a copy under another id), and what a takedown or the contamination filter dropped. One row
# per excluded id or text (the other column NULL).
EXCLUDED_SQL = """
SELECT sample_id, NULL::VARCHAR AS content_hash FROM tainted_samples($protected)
UNION ALL
SELECT DISTINCT sample_id, NULL FROM status WHERE decision = 'drop' AND list_contains($always, filter)
UNION ALL
SELECT NULL, content_hash FROM samples WHERE sample_id IN (SELECT sample_id FROM protected_samples($protected))
"""


# The pool: the spec's `where` and limits, minus what is excluded (`{excluded}`: EXCLUDED_SQL, at the version drawn
# from) and what the spec's `exclude_dropped_by` filters dropped. A build drawn from an earlier version (`--as-of`,
# a policy's rollback) also leaves out what is excluded at the latest version (`{excluded_now}`: EXCLUDED_NOW_CLAUSE
# over EXCLUDED_SQL's rows there, given as `_excluded_now`): a set protected, a sample taken down or found
# contaminated since. Such builds once took them.
POOL_SQL = """
WITH excluded AS ({excluded}), dropped AS (
    SELECT DISTINCT sample_id FROM status
    WHERE decision = 'drop' AND ($filters IS NULL OR list_contains($filters, filter))
)
SELECT {columns} FROM samples
WHERE ({where}) AND generation <= $max_generation
  AND ($licenses IS NULL OR list_contains($licenses, lower(coalesce(nullif(trim(license), ''), 'unknown'))))
  AND sample_id NOT IN (SELECT sample_id FROM dropped)
  AND sample_id NOT IN (SELECT sample_id FROM excluded WHERE sample_id IS NOT NULL)
  AND content_hash NOT IN (SELECT content_hash FROM excluded WHERE content_hash IS NOT NULL){excluded_now}
"""
EXCLUDED_NOW_CLAUSE = """
  AND sample_id NOT IN (SELECT sample_id FROM _excluded_now WHERE sample_id IS NOT NULL)
  AND content_hash NOT IN (SELECT content_hash FROM _excluded_now WHERE content_hash IS NOT NULL)"""

CELLS_SQL = "SELECT cell, count(*) AS available FROM pool GROUP BY cell ORDER BY cell"


@dataclass(frozen=True)
class Pool:
    """The pool lives in the build's connection as temp table `pool(sample_id, content_hash, cell, ...)`."""

    matched: int  # samples the spec's `where` selects, before exclusions
    size: int
    cells: list[tuple[dict[str, object], int]]  # (dimension values, available samples) per cell


def pool_views(spec: BuildSpec) -> set[str] | None:
    """The views a build's reader needs for its pool and its draw (`create_pool`, `select_members`, which reads
    `status` for near-duplicate clusters): those POOL_SQL and EXCLUDED_SQL name, `runs`, and what the spec's
    `where` and `expr` name; None (all) when they list the catalog's contents. Creating every view costs each
    build ~60-80 ms."""
    texts = [POOL_SQL, EXCLUDED_SQL, "runs status", spec.pool.where or "", *(q.sql for q in spec.expr)]
    return catalog.views_named(" ".join(texts))


def pool_dimensions(spec: BuildSpec) -> list[str]:
    # Each once: two floors by one dimension once named it twice, and DuckDB refused the pool's struct_pack.
    return list(dict.fromkeys([*spec.quotas, *(f.by for f in spec.floors if f.by)]))


def excluded_now(store: StoreCore, spec: BuildSpec) -> pa.Table:
    """(sample_id, content_hash) rows of what no build may take at `store`'s version (EXCLUDED_SQL)."""
    params = {"protected": spec.protected, "always": list(ALWAYS_EXCLUDED_FILTERS)}
    return store.query(EXCLUDED_SQL, params=params)


def create_pool(con: duckdb.DuckDBPyConnection, spec: BuildSpec, excluded: pa.Table | None = None) -> Pool:
    """Materialise the pool; `con` is a read-only, locked-down reader connection. `excluded`: what the store
    excludes at its latest version (`excluded_now`), for a pool drawn from an earlier one."""
    # The spec validated `where` and each `expr` as exactly one expression (readonly.check_predicate).
    where = spec.pool.where or "true"
    _check_filters(con, spec.pool.exclude_dropped_by)
    if excluded is not None:
        con.register("_excluded_now", excluded)
    sql = POOL_SQL.format(columns=_columns(spec), where=where, excluded=EXCLUDED_SQL,
                          excluded_now=EXCLUDED_NOW_CLAUSE if excluded is not None else "")
    try:
        con.execute(f"CREATE TEMP TABLE pool AS {sql}", _params(spec))
        matched = con.execute(f"SELECT count(*) FROM samples WHERE ({where})").fetchall()[0][0]
    except duckdb.Error as exc:
        raise QueryError(f"spec pool.where or expr: {first_line(exc)}") from None
    cells = [(json.loads(key), n) for key, n in con.execute(CELLS_SQL).fetchall()]
    return Pool(matched, sum(n for _, n in cells), cells)


def _check_filters(con: duckdb.DuckDBPyConnection, names: list[str] | None) -> None:
    """A misspelt filter would silently honour nobody's drops: every name must be a filter lineage knows (built
    in) or one that has run in this store (user filters, imported decisions, human review)."""
    from lineage.errors import SpecError
    from lineage.filters.base import BUILTINS, REGISTRY  # names only: no filter module is imported

    ran = con.execute("SELECT DISTINCT filter FROM runs").fetchall()
    known = {*BUILTINS, *REGISTRY, *ALWAYS_EXCLUDED_FILTERS, *(r[0] for r in ran)}
    for name in names or []:
        if name not in known:
            raise SpecError(f"spec pool.exclude_dropped_by: unknown filter `{name}`; known: {', '.join(sorted(known))}")


def check_protected(store: StoreCore, names: list[str] | None) -> None:
    """A misspelt set would protect nothing: its items would enter the build, and the build's check would say
    there is no protected set. Every name must be a protected set of the store as it is now (a build `--as-of`
    an earlier version is checked against the sets of now, as `excluded_now` excludes them)."""
    from lineage.errors import SpecError

    if not names:
        return
    found = {r["name"]: r["protected"] for r in store.query("SELECT name, protected FROM sets").to_pylist()}
    known = ", ".join(sorted(n for n, p in found.items() if p)) or "none; `lineage set create NAME --protected`"
    for name in names:
        if name not in found:
            raise SpecError(f"spec protected: no set `{name}` (protected sets: {known})")
        if not found[name]:
            raise SpecError(f"spec protected: set `{name}` is not protected (protected sets: {known})")


def _columns(spec: BuildSpec) -> str:
    parts = [f"{quote_ident(d)} := {quote_ident(d)}" for d in pool_dimensions(spec)]
    parts += [f"{quote_ident(q.name)} := coalesce(CAST(({q.sql}) AS BOOLEAN), false)" for q in spec.expr]
    cell = f"to_json(struct_pack({', '.join(parts)}))::VARCHAR" if parts else "'{}'"
    return f"sample_id, content_hash, {cell} AS cell"


def _params(spec: BuildSpec) -> dict[str, object]:
    return {
        "protected": spec.protected,
        "filters": spec.pool.exclude_dropped_by,
        "always": list(ALWAYS_EXCLUDED_FILTERS),
        "licenses": [x.strip().lower() for x in spec.pool.licenses] if spec.pool.licenses is not None else None,
        "max_generation": spec.pool.max_generation if spec.pool.max_generation is not None else 2**31 - 1,
    }
