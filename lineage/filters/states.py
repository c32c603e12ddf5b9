"""Which samples each filter has decided and which it has not seen yet (`lineage status`, a build's stale
filters), and what an incremental run starts from (`load_prior`); see `lineage.filters.incremental`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage.core import readonly
from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, QueryError, first_line
from lineage.filters.builtin import filter_class, registry
from lineage.filters.incremental import PRIOR_SQL, Prior, locked_reader, summary_field

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

# Not tracked: a takedown names its targets; imported decisions and reviews are not filters that can run again.
UNTRACKED = ("takedown",)


# The latest run of each filter, and the `module:Class` it was loaded from when it is a user filter.
LATEST_RUNS_SQL = """
SELECT r.filter, r.filter_version, r.params, r.params_hash, r.run_id, r.version,
    {module} AS module
FROM runs r JOIN commits c ON c.version = r.version
WHERE list_contains($names, r.filter) OR ($users AND {module} IS NOT NULL)
QUALIFY row_number() OVER (PARTITION BY r.filter ORDER BY r.version DESC) = 1
ORDER BY filter
""".replace("{module}", summary_field("module"))

SCOPE_SQL = """
SELECT DISTINCT selection, selection IS NULL AS everything FROM runs
WHERE filter = $filter AND filter_version = $fv AND params_hash = $ph ORDER BY selection
"""

UNSEEN_SQL = """
SELECT source, count(*) AS n FROM samples s
WHERE ({scope}) AND ({where})
  AND NOT EXISTS (SELECT 1 FROM _decided d WHERE d.sample_id = s.sample_id)
GROUP BY source ORDER BY source
"""


@dataclass(frozen=True)
class FilterState:
    """What one filter has decided with its current params, and what it has not seen."""

    filter: str
    filter_version: str
    params: str  # canonical JSON of the current (latest) params
    params_hash: str
    scope: str | None  # SQL predicate over samples; None: every sample
    last_run: str
    last_version: int
    decided: int
    unseen_by_source: dict[str, int] = field(default_factory=dict)
    everything_stale: bool = False  # the filter's context changed (e.g. a protected set grew): decide all again
    module: str | None = None  # a user filter's `module:Class` (its runs record it), to run it again

    @property
    def unseen(self) -> int:
        return sum(self.unseen_by_source.values())

    @property
    def params_dict(self) -> dict[str, Any]:
        import json

        return json.loads(self.params)

    def describe(self) -> str:
        if not self.unseen:
            return f"{self.filter}: up to date ({self.decided:,} decided)"
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.unseen_by_source.items(), key=lambda kv: -kv[1]))
        why = " (its context changed since it ran)" if self.everything_stale else ""
        return f"{self.filter}: {self.unseen:,} samples not seen{why} ({sources})"


def tracked_filters() -> list[str]:
    return sorted(name for name in registry() if name not in UNTRACKED)


# A sample's licence as a pool's `licenses` matches it (lineage.build.pool): lower case, none is `unknown`.
LICENSE_SQL = "lower(coalesce(nullif(trim(license), ''), 'unknown'))"

PROTECTED_SQL = "sample_id NOT IN (SELECT sample_id FROM protected_samples(NULL))"


def filter_states(
    store: StoreCore,
    *,
    names: list[str] | None = None,
    where: str | None = None,
    max_generation: int | None = None,
    exclude_protected: bool = False,
    licenses: list[str] | None = None,
) -> list[FilterState]:
    """The state of each tracked filter that has run (of `names` only, when given); unseen samples are
    counted among those matching `where`, `max_generation` and `licenses` (as a build's pool reads them), outside
    protected sets when `exclude_protected` (a build's pool), by source."""
    # Built-in filters, and user filters (`--module`) whose runs recorded where they came from.
    tracked = tracked_filters()
    users = names is None
    wanted = [n for n in (names if names is not None else tracked) if n not in UNTRACKED]
    predicate = readonly.check_predicate(where, what="where") if where else "true"
    if max_generation is not None:
        predicate = f"({predicate}) AND generation <= {int(max_generation)}"
    if exclude_protected:
        predicate = f"({predicate}) AND {PROTECTED_SQL}"
    if licenses is not None:
        allowed = ", ".join(sql_string(x.strip().lower()) for x in licenses) or "NULL"
        predicate = f"({predicate}) AND {LICENSE_SQL} IN ({allowed})"
    with locked_reader(store) as con:
        latest = con.sql(LATEST_RUNS_SQL, params={"names": wanted, "users": users}).to_arrow_table().to_pylist()
        latest = [r for r in latest if r["filter"] in tracked or r["module"]]  # not imported decisions
        return [_state(store, con, run, predicate) for run in latest]


def filter_state(
    store: StoreCore, name: str, params_hash: str, filter_version: str, *, counts: bool = True
) -> FilterState | None:
    """The state of filter `name` with the given params (None: it never ran with them); without `counts`,
    its scope and context only (decided 0, nothing unseen), which costs no pass over the decisions."""
    with locked_reader(store) as con:
        return _filter_state(store, con, name, params_hash, filter_version, counts)


def _filter_state(
    store: StoreCore, con: duckdb.DuckDBPyConnection, name: str, params_hash: str, filter_version: str, counts: bool
) -> FilterState | None:
    rows = con.sql(
        "SELECT r.filter, r.filter_version, r.params, r.params_hash, r.run_id, r.version, "
            f"{summary_field('module')} AS module FROM runs r JOIN commits c ON c.version = r.version "
        "WHERE r.filter = ? AND r.filter_version = ? AND r.params_hash = ? ORDER BY r.version DESC LIMIT 1",
        params=[name, filter_version, params_hash],
    ).to_arrow_table().to_pylist()
    return _state(store, con, rows[0], "true", counts) if rows else None


def _state(
    store: StoreCore, con: duckdb.DuckDBPyConnection, run: dict[str, Any], predicate: str, counts: bool = True
) -> FilterState:
    key = {"filter": run["filter"], "fv": run["filter_version"], "ph": run["params_hash"]}
    scope = _scope(con, key)
    everything = _context_changed(store, con, run)
    if not counts:
        return FilterState(
            run["filter"], run["filter_version"], run["params"], run["params_hash"], scope, run["run_id"],
            run["version"], 0, {}, everything, run["module"],
        )
    decided = pa.table({"sample_id": pa.array([], pa.string())})
    if not everything:
        query = PRIOR_SQL.replace("e.decision, e.score, e.reason, e.related_id, e.cluster_id", "1 AS one")
        decided = con.sql(query, params=key).to_arrow_table().select(["sample_id"])
    con.register("_decided", decided)
    count = con.execute("SELECT count(*) FROM _decided").fetchall()[0][0]
    query = UNSEEN_SQL.format(scope=scope or "true", where=predicate)
    try:
        unseen = {str(s): n for s, n in con.execute(query).fetchall()}
    except duckdb.Error as exc:  # the predicate is the user's (a pool's where): one line naming it
        raise QueryError(f"where: {first_line(exc)}") from None
    con.unregister("_decided")
    return FilterState(
        run["filter"], run["filter_version"], run["params"], run["params_hash"], scope, run["run_id"],
        run["version"], count, unseen, everything, run["module"],
    )


def _scope(con: duckdb.DuckDBPyConnection, key: dict[str, str]) -> str | None:
    rows = con.execute(SCOPE_SQL, key).fetchall()
    if any(everything for _, everything in rows):
        return None
    return " OR ".join(f"({readonly.check_predicate(sel, what='a run selection')})" for sel, _ in rows) or None


def _context_changed(store: StoreCore, con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> bool:
    """Whether the filter's decisions depend on store state that changed after its latest run."""
    try:
        cls = filter_class(run["filter"], run.get("module"))
    except LineageError:  # a user filter that cannot be imported now: nothing says its context changed
        return False
    since = getattr(cls, "context_changed_since", None)
    return bool(since and since(con, run["version"]))


def load_prior(
    store: StoreCore, name: str, params_hash: str, filter_version: str
) -> tuple[Prior, FilterState | None]:
    """What filter `name` decided with these params, and its state (None: it never ran with them). The
    state is read on the connection the prior then keeps, which the run's selection shares."""
    prior = Prior(store, None)
    state = _filter_state(store, prior.connection(), name, params_hash, filter_version, counts=False)
    if state is None or state.everything_stale:
        return prior, state
    key = {"filter": state.filter, "fv": state.filter_version, "ph": state.params_hash}
    runs = prior.query(
        "SELECT run_id FROM runs WHERE filter = $filter AND filter_version = $fv AND params_hash = $ph "
        "ORDER BY run_id", params=key,
    )
    prior.run_ids = runs["run_id"].to_pylist()
    return prior, state
