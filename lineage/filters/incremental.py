"""Which samples each filter has decided, which it has not seen yet, and what an incremental run starts from.

No table of its own: the `runs` and `events` tables already say which samples a run of a filter with given
params decided. For each built-in filter (takedowns excepted: they target samples, they do not judge them)
the *current params* are those of its latest run, and its *scope* is what its runs with those params
selected: the OR of their `--where` predicates, or every sample when one of them had none. A sample in the
scope that no run with the current params decided is *unseen*: a build honouring that filter would take it
without the filter ever having looked at it. `lineage status` lists them; a build refuses them (see
`lineage.build`), and `--refresh` decides them with `run_new`.

An incremental run selects the unseen samples only, and the filter decides them against everything already
decided with the same params (`SelectionFilter.decide_new` receives a `Prior`): a new exact duplicate of an
old sample is dropped naming the old one, a new sample that joins an old near-duplicate cluster re-decides
that cluster, a child of an old contaminated sample is contaminated. Old samples whose decision changes
(e.g. a new real sample outranks the synthetic copy kept so far) get a new event too, so the latest
decisions equal those of a full run over the same store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage import readonly
from lineage.errors import QueryError, first_line

if TYPE_CHECKING:
    from lineage.store import Store

# Not tracked: a takedown names its targets; imported decisions and reviews are not filters that can run again.
UNTRACKED = ("takedown",)

LATEST_RUNS_SQL = """
SELECT filter, filter_version, params, params_hash, run_id, version FROM runs
WHERE list_contains($names, filter)
QUALIFY row_number() OVER (PARTITION BY filter ORDER BY version DESC) = 1
ORDER BY filter
"""

SCOPE_SQL = """
SELECT DISTINCT selection, selection IS NULL AS everything FROM runs
WHERE filter = $filter AND filter_version = $fv AND params_hash = $ph ORDER BY selection
"""

# The latest decision of each sample among the runs of one filter with one set of params.
PRIOR_SQL = """
SELECT e.sample_id, e.decision, e.score, e.reason, e.related_id, e.cluster_id
FROM _events e JOIN runs r USING (run_id)
WHERE r.filter = $filter AND r.filter_version = $fv AND r.params_hash = $ph
QUALIFY row_number() OVER (PARTITION BY e.sample_id ORDER BY e.version DESC) = 1
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
    from lineage.filters.base import REGISTRY, load_builtins

    load_builtins()
    return sorted(name for name in REGISTRY if name not in UNTRACKED)


PROTECTED_SQL = (
    "sample_id NOT IN (SELECT m.sample_id FROM set_members m JOIN sets t ON t.name = m.set_name WHERE t.protected)"
)


def filter_states(
    store: Store,
    *,
    names: list[str] | None = None,
    where: str | None = None,
    max_generation: int | None = None,
    exclude_protected: bool = False,
) -> list[FilterState]:
    """The state of each tracked filter that has run (of `names` only, when given); unseen samples are
    counted among those matching `where` and `max_generation`, outside protected sets when `exclude_protected`
    (a build's pool), by source."""
    wanted = [n for n in (names if names is not None else tracked_filters()) if n in tracked_filters()]
    if not wanted:
        return []
    predicate = readonly.check_predicate(where, what="where") if where else "true"
    if max_generation is not None:
        predicate = f"({predicate}) AND generation <= {int(max_generation)}"
    if exclude_protected:
        predicate = f"({predicate}) AND {PROTECTED_SQL}"
    with _reader(store) as con:
        latest = con.sql(LATEST_RUNS_SQL, params={"names": wanted}).to_arrow_table().to_pylist()
        return [_state(store, con, run, predicate) for run in latest]


def filter_state(store: Store, name: str, params_hash: str, filter_version: str) -> FilterState | None:
    """The state of filter `name` with the given params (None: it never ran with them)."""
    with _reader(store) as con:
        rows = con.sql(
            "SELECT filter, filter_version, params, params_hash, run_id, version FROM runs WHERE filter = ? "
            "AND filter_version = ? AND params_hash = ? ORDER BY version DESC LIMIT 1",
            params=[name, filter_version, params_hash],
        ).to_arrow_table().to_pylist()
        return _state(store, con, rows[0], "true") if rows else None


def _state(store: Store, con: duckdb.DuckDBPyConnection, run: dict[str, Any], predicate: str) -> FilterState:
    key = {"filter": run["filter"], "fv": run["filter_version"], "ph": run["params_hash"]}
    scope = _scope(con, key)
    everything = _context_changed(store, con, run)
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
        run["version"], count, unseen, everything,
    )


def _scope(con: duckdb.DuckDBPyConnection, key: dict[str, str]) -> str | None:
    rows = con.execute(SCOPE_SQL, key).fetchall()
    if any(everything for _, everything in rows):
        return None
    return " OR ".join(f"({readonly.check_predicate(sel, what='a run selection')})" for sel, _ in rows) or None


def _context_changed(store: Store, con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> bool:
    """Whether the filter's decisions depend on store state that changed after its latest run."""
    from lineage.filters.base import filter_class

    since = getattr(filter_class(run["filter"]), "context_changed_since", None)
    return bool(since and since(con, run["version"]))


@contextmanager
def _reader(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    with store.reader() as con:
        readonly.lock_down(con, store.data)
        yield con


@dataclass(frozen=True)
class Prior:
    """What a filter decided before an incremental run, with the same params: the latest decision of each
    sample it decided (`table`, DECISIONS columns, in sample_id order), and a way to read those samples."""

    store: Store
    table: pa.Table

    @classmethod
    def load(cls, store: Store, state: FilterState | None) -> Prior:
        from lineage.schemas import DECISIONS

        if state is None or state.everything_stale:
            return cls(store, DECISIONS.empty_table())
        key = {"filter": state.filter, "fv": state.filter_version, "ph": state.params_hash}
        with _reader(store) as con:
            return cls(store, con.sql(f"{PRIOR_SQL} ORDER BY e.sample_id", params=key).to_arrow_table().cast(DECISIONS))

    def query(self, sql: str, **tables: pa.Table) -> pa.Table:
        """A query over the store's views with the prior decisions as `_prior` and `tables` registered."""
        with _reader(self.store) as con:
            con.register("_prior", self.table)
            for name, table in tables.items():
                con.register(name, table)
            return con.sql(sql).to_arrow_table()

    def samples(self, columns: list[str] | tuple[str, ...], ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        """Columns of the samples `ids` (in sample_id order)."""
        from lineage.sqlutil import quote_ident

        cols = ", ".join(f"s.{quote_ident(c)}" for c in columns)
        wanted = pa.table({"sample_id": ids})
        return self.query(f"SELECT {cols} FROM samples s SEMI JOIN _wanted USING (sample_id) ORDER BY s.sample_id",
                          _wanted=wanted)


def changed_only(decisions: pa.Table, prior: pa.Table, new_ids: pa.Array) -> pa.Table:
    """The decisions of the new samples, and of old ones only where they differ from their prior decision."""
    con = duckdb.connect()
    try:
        con.register("_d", decisions)
        con.register("_p", prior)
        con.register("_new", pa.table({"sample_id": new_ids}))
        return con.sql(
            "SELECT d.* FROM _d d LEFT JOIN _p p USING (sample_id) "
            "WHERE d.sample_id IN (SELECT sample_id FROM _new) OR p.sample_id IS NULL "
            "OR (d.decision, d.score, d.reason, d.related_id, d.cluster_id) "
            "IS DISTINCT FROM (p.decision, p.score, p.reason, p.related_id, p.cluster_id) ORDER BY d.sample_id"
        ).to_arrow_table()
    finally:
        con.close()
