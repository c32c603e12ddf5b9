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

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.core import catalog, readonly
from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, QueryError, first_line
from lineage.features.decisionindex import DecisionIndex, keys_of

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.features.cache import FeatureCache

# Not tracked: a takedown names its targets; imported decisions and reviews are not filters that can run again.
UNTRACKED = ("takedown",)

# A commit summary's field (summaries of filter runs are JSON; some older commits' are plain text).
def _summary(key: str) -> str:
    return f"CASE WHEN json_valid(c.summary) THEN json_extract_string(c.summary, '$.{key}') END"


# The latest run of each filter, and the `module:Class` it was loaded from when it is a user filter.
LATEST_RUNS_SQL = """
SELECT r.filter, r.filter_version, r.params, r.params_hash, r.run_id, r.version,
    {module} AS module
FROM runs r JOIN commits c ON c.version = r.version
WHERE list_contains($names, r.filter) OR ($users AND {module} IS NOT NULL)
QUALIFY row_number() OVER (PARTITION BY r.filter ORDER BY r.version DESC) = 1
ORDER BY filter
""".replace("{module}", _summary("module"))

SCOPE_SQL = """
SELECT DISTINCT selection, selection IS NULL AS everything FROM runs
WHERE filter = $filter AND filter_version = $fv AND params_hash = $ph ORDER BY selection
"""

# A run that decided every sample (no selection, not incremental): its version is the floor below which the
# filter, with its params, has decided every sample, and the runs before it are superseded for every sample.
FULL_RUN = f"r.selection IS NULL AND coalesce({_summary('incremental')}, 'false') <> 'true'"

# The runs of one filter with one set of params since its latest full run (all of them when none), and that run's
# version (0: none).
RUNS_SINCE_SQL = f"""
WITH runs_of AS (
    SELECT r.run_id, r.version, {FULL_RUN} AS is_full FROM runs r JOIN commits c ON c.version = r.version
    WHERE r.filter = $filter AND r.filter_version = $fv AND r.params_hash = $ph
), floor AS (SELECT coalesce(max(version) FILTER (WHERE is_full), 0) AS v FROM runs_of)
SELECT run_id, floor.v AS floor FROM runs_of, floor WHERE version >= floor.v ORDER BY run_id
"""

# The samples in scope that no run since the floor decided: only those ingested after it can be.
UNSEEN_SQL = """
SELECT source, count(*) AS n FROM samples s
WHERE ({scope}) AND ({where}) AND s.version > {floor}
  AND NOT EXISTS (SELECT 1 FROM {events} d WHERE d.sample_id = s.sample_id)
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
    from lineage.filters.base import BUILTINS, REGISTRY  # the built-in filters by name: none of them imported

    return sorted(name for name in {*BUILTINS, *REGISTRY} if name not in UNTRACKED)


# A sample's licence as a pool's `licenses` matches it (lineage.build.pool): lower case, none is `unknown`.
LICENSE_SQL = "lower(coalesce(nullif(trim(license), ''), 'unknown'))"

PROTECTED_SQL = "sample_id NOT IN (SELECT sample_id FROM protected_samples(NULL))"

# What `filter_states` reads besides the predicates (a pool's `where`, the runs' recorded selections): the runs and
# their commits, the events of the runs, the samples, the protected sets (PROTECTED_SQL, and the contamination
# filter's `context_changed_since`).
STATE_SQL = " ".join(
    [LATEST_RUNS_SQL, SCOPE_SQL, RUNS_SINCE_SQL, UNSEEN_SQL, PROTECTED_SQL, "_events sets set_members"]
)
SELECTIONS_SQL = "SELECT DISTINCT selection FROM runs WHERE selection IS NOT NULL"


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
    # Only the views these queries name (a reader making every view costs ~80 ms more: every build, doctor and
    # status pays it): the recorded selections are read first, as the scopes `_scope` makes of them.
    selections = store.query(SELECTIONS_SQL)["selection"].to_pylist()
    views = catalog.views_named(" ".join([STATE_SQL, predicate, *selections]))
    with store.reader(views=views, locked=True) as con:
        latest = con.sql(LATEST_RUNS_SQL, params={"names": wanted, "users": users}).to_arrow_table().to_pylist()
        latest = [r for r in latest if r["filter"] in tracked or r["module"]]  # not imported decisions
        return [_state(store, con, run, predicate, every_view=views is None) for run in latest]


def filter_state(
    store: StoreCore, name: str, params_hash: str, filter_version: str, *, counts: bool = True
) -> FilterState | None:
    """The state of filter `name` with the given params (None: it never ran with them); without `counts`,
    its scope and context only (decided 0, nothing unseen), which costs no pass over the decisions."""
    with store.reader(locked=True) as con:
        return _filter_state(store, con, name, params_hash, filter_version, counts)


def _filter_state(
    store: StoreCore, con: duckdb.DuckDBPyConnection, name: str, params_hash: str, filter_version: str, counts: bool
) -> FilterState | None:
    rows = con.sql(
        "SELECT r.filter, r.filter_version, r.params, r.params_hash, r.run_id, r.version, "
            f"{_summary('module')} AS module FROM runs r JOIN commits c ON c.version = r.version "
        "WHERE r.filter = ? AND r.filter_version = ? AND r.params_hash = ? ORDER BY r.version DESC LIMIT 1",
        params=[name, filter_version, params_hash],
    ).to_arrow_table().to_pylist()
    return _state(store, con, rows[0], "true", counts) if rows else None


def _state(
    store: StoreCore, con: duckdb.DuckDBPyConnection, run: dict[str, Any], predicate: str, counts: bool = True,
    *, every_view: bool = True,
) -> FilterState:
    """`every_view`: `con` has all the views (else those `filter_states` names)."""
    key = {"filter": run["filter"], "fv": run["filter_version"], "ph": run["params_hash"]}
    scope = _scope(con, key)
    everything = _context_changed(store, con, run, every_view=every_view)
    if not counts:
        return FilterState(
            run["filter"], run["filter_version"], run["params"], run["params_hash"], scope, run["run_id"],
            run["version"], 0, {}, everything, run["module"],
        )
    runs, floor = runs_since_floor(con, key) if not everything else ([], 0)
    # Decided: what the runs since the floor decided (the full run at the floor decided every sample before it).
    of_runs = f"SELECT sample_id FROM _events WHERE run_id IN ({', '.join(map(sql_string, runs)) or 'NULL'})"
    count = con.execute(f"SELECT count(DISTINCT sample_id) FROM ({of_runs})").fetchall()[0][0]
    after = f"({of_runs} AND version > {int(floor)})"
    query = UNSEEN_SQL.format(scope=scope or "true", where=predicate, floor=int(floor), events=after)
    try:
        unseen = {str(s): n for s, n in con.execute(query).fetchall()}
    except duckdb.Error as exc:  # the predicate is the user's (a pool's where): one line naming it
        raise QueryError(f"where: {first_line(exc)}") from None
    return FilterState(
        run["filter"], run["filter_version"], run["params"], run["params_hash"], scope, run["run_id"],
        run["version"], count, unseen, everything, run["module"],
    )


def runs_since_floor(con: duckdb.DuckDBPyConnection, key: dict[str, str]) -> tuple[list[str], int]:
    """The runs of filter `key` (filter, fv, ph) that can hold a sample's latest decision: its latest full run and
    those after it (all when none), and that run's version (0: none)."""
    rows = con.execute(RUNS_SINCE_SQL, key).fetchall()
    return [r[0] for r in rows], int(rows[0][1]) if rows else 0


def _scope(con: duckdb.DuckDBPyConnection, key: dict[str, str]) -> str | None:
    rows = con.execute(SCOPE_SQL, key).fetchall()
    if any(everything for _, everything in rows):
        return None
    return " OR ".join(f"({readonly.check_predicate(sel, what='a run selection')})" for sel, _ in rows) or None


def _context_changed(
    store: StoreCore, con: duckdb.DuckDBPyConnection, run: dict[str, Any], *, every_view: bool = True
) -> bool:
    """Whether the filter's decisions depend on store state that changed after its latest run. A user filter's
    hook may read any view: unless `con` has them all, it gets a reader that has."""
    from lineage.filters.base import filter_class

    try:
        cls = filter_class(run["filter"], run.get("module"))
    except LineageError:  # a user filter that cannot be imported now: nothing says its context changed
        return False
    since = getattr(cls, "context_changed_since", None)
    if not since:
        return False
    if every_view or cls.__module__.startswith("lineage."):  # a built-in's hook reads what STATE_SQL names
        return bool(since(con, run["version"]))
    with store.reader(locked=True) as every:
        return bool(since(every, run["version"]))


class Prior:
    """What a filter decided before an incremental run, with the same params (None: nothing counts as
    decided), read on demand: the latest decisions of given samples or clusters, the samples themselves, and
    (`table`) all of them, for filters that need everything.

    Queries take only what they need, over one reader connection held until `close`, and read only the event
    segments of the filter's runs (a constant `run_id IN (...)` lets DuckDB skip the others by their
    statistics): an incremental run costs a pass over sample ids, not a read of every earlier decision.
    """

    def __init__(self, store: StoreCore, run_ids: list[str] | None) -> None:
        self.store, self.run_ids = store, run_ids
        self._table: pa.Table | None = None
        # Decisions read so far, and the ids whose decision (or lack of one) they settle: asked again, they
        # are answered without another pass over the events.
        self._known: list[pa.Table] = []
        self._settled: set[str] = set()
        self._stack = ExitStack()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._index: list[DecisionIndex] | None = None  # see `_indexes`

    @classmethod
    def load(
        cls, store: StoreCore, name: str, params_hash: str, filter_version: str
    ) -> tuple[Prior, FilterState | None]:
        """What filter `name` decided with these params, and its state (None: it never ran with them). The
        state is read on the connection the prior then keeps, which the run's selection shares."""
        prior = cls(store, None)
        state = _filter_state(store, prior.connection(), name, params_hash, filter_version, counts=False)
        if state is None or state.everything_stale:
            return prior, state
        key = {"filter": state.filter, "fv": state.filter_version, "ph": state.params_hash}
        prior.run_ids = runs_since_floor(prior.connection(), key)[0]
        return prior, state

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The reader connection (locked down) the prior's queries run on, open until `close`."""
        if self._con is None:
            self._con = self._stack.enter_context(self.store.reader(locked=True))
        return self._con

    def close(self) -> None:
        self._stack.close()
        self._con = None

    @property
    def _events(self) -> str:
        runs = ", ".join(sql_string(r) for r in self.run_ids or [])
        return f"(SELECT * FROM _events WHERE run_id IN ({runs}))" if runs else "(SELECT * FROM _events WHERE false)"

    @property
    def table(self) -> pa.Table:
        """The latest decision of every sample decided before (DECISIONS columns, in sample_id order)."""
        if self._table is None:
            self._table = self._decisions(None)
        return self._table

    def decisions(self, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The latest decisions of those of `ids` decided before, in sample_id order."""
        wanted = pa.array(ids.to_pylist() if isinstance(ids, pa.ChunkedArray) else ids, pa.string())
        if self._known and self._settled.issuperset(wanted.to_pylist()):
            known = pa.concat_tables(self._known)
            first = pc.index_in(wanted, value_set=known["sample_id"].combine_chunks()).drop_null()
            return known.take(pc.unique(first)).sort_by("sample_id")
        indexes = self._indexes()
        if indexes is not None:
            table = self._latest(_by_sample(indexes, wanted))
        else:
            table = self._decisions("SELECT sample_id FROM _wanted", _wanted=pa.table({"sample_id": wanted}))
        self._remember(table, wanted.to_pylist())
        return table

    def in_clusters(self, clusters: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The latest decisions of the samples whose latest cluster (their own id when none) is one of `clusters`."""
        wanted = pa.array(clusters.to_pylist() if isinstance(clusters, pa.ChunkedArray) else clusters, pa.string())
        indexes = self._indexes()
        if indexes is not None:
            # The samples any of whose decisions was in one of the clusters, and the clusters' own ids; then their
            # latest decisions, as the query below does.
            found = [i.by_cluster(keys_of(wanted))["sample_id"] for i in indexes]
            candidates = pc.unique(pa.chunked_array([*found, wanted], pa.string()))
            table = self._latest(_by_sample(indexes, candidates))
        else:
            # A union of two semi-joins, not an OR of them: DuckDB runs the OR as a slower mark join.
            table = self._decisions(
                f"SELECT sample_id FROM (SELECT sample_id, cluster_id FROM {self._events}) SEMI JOIN _clusters "
                "ON cluster_id = c UNION ALL SELECT c FROM _clusters",
                _clusters=pa.table({"c": wanted}),
            )
        self._remember(table, [])
        return table.filter(pc.is_in(pc.coalesce(table["cluster_id"], table["sample_id"]), value_set=wanted))

    def _indexes(self) -> list[DecisionIndex] | None:
        """The decision index of each events segment of the prior runs (`lineage.features.decisionindex`), or None
        when a run's decisions are in a segment of several runs (compacted) or the data location is remote: then
        lookups are queries."""
        if self._index is None:
            self._index = self._open_indexes() if self.run_ids and self.store.data.posix else []
        return self._index or None

    def _open_indexes(self) -> list[DecisionIndex]:
        runs = self.query(
            "SELECT ref_id, path FROM segments WHERE kind = 'events' AND list_contains($runs, ref_id) ORDER BY path",
            params={"runs": self.run_ids},
        )
        if set(runs["ref_id"].to_pylist()) != set(self.run_ids or []):
            return []
        return [i for path in runs["path"].to_pylist() if (i := DecisionIndex.open(self.store.data, path))]

    @staticmethod
    def _latest(rows: pa.Table) -> pa.Table:
        """Of index rows (several runs' decisions of a sample), each one's latest, as DECISIONS in sample_id order."""
        from lineage.schemas import DECISIONS

        rows = rows.take(pc.sort_indices(rows, [("sample_id", "ascending"), ("version", "descending")]))
        ids = rows["sample_id"].combine_chunks()
        if len(ids) > 1:
            first = pc.invert(pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)))
            rows = rows.filter(pa.concat_arrays([pa.array([True]), first.fill_null(True)]))
        return rows.select(list(DECISIONS.names)).cast(DECISIONS)

    def _remember(self, table: pa.Table, asked: list[str]) -> None:
        self._known.append(table)
        self._settled.update(asked)
        self._settled.update(table["sample_id"].to_pylist())

    def _decisions(self, candidates_sql: str | None, **tables: pa.Table) -> pa.Table:
        """The latest decisions of the samples `candidates_sql` selects (None: of every decided sample)."""
        from lineage.schemas import DECISIONS

        if not self.run_ids:
            return DECISIONS.empty_table()
        candidates = f"WHERE e.sample_id IN ({candidates_sql})" if candidates_sql else ""
        sql = (
            f"SELECT e.sample_id, e.decision, e.score, e.reason, e.related_id, e.cluster_id FROM {self._events} e "
            f"{candidates} QUALIFY row_number() OVER (PARTITION BY e.sample_id ORDER BY e.version DESC) = 1 "
            "ORDER BY e.sample_id"
        )
        return self.query(sql, **tables).cast(DECISIONS)

    def undecided(self, predicate: str) -> pa.Table:
        """sample_id and version of the samples matching `predicate` (checked SQL) not decided before, by id.

        Only samples newer than the last full run over every sample need looking at (it decided all older
        ones), and only the events since: both bounds are on `version`, which DuckDB prunes segments by.
        """
        floor = self._decided_through()
        scope = f"(SELECT sample_id, version FROM samples WHERE ({predicate}) AND version > {floor})"
        events = f"(SELECT sample_id FROM {self._events} WHERE version > {floor})"
        return self.query(f"SELECT s.* FROM {scope} s ANTI JOIN {events} e USING (sample_id) ORDER BY sample_id")

    def _decided_through(self) -> int:
        """The version of the latest full (not incremental) run over every sample (0: none)."""
        if not self.run_ids:
            return 0
        runs = ", ".join(sql_string(r) for r in self.run_ids)
        rows = self.query(f"SELECT max(r.version) AS v FROM runs r JOIN commits c ON c.version = r.version "
                          f"WHERE r.run_id IN ({runs}) AND {FULL_RUN}")
        return int(rows["v"][0].as_py() or 0)

    def uncached(self, cache: FeatureCache) -> pa.Array:
        """The ids of the samples decided before that may have no row in `cache`.

        A run on the driver caches what it hashes before it commits, so only the samples of runs on Ray
        (which hash on the workers and cache nothing) are looked up in the cache, unless the cache has no
        part at all (removed by hand): then every decided sample is.
        """
        if not self.run_ids:
            return pa.array([], pa.string())
        parts = cache.sql_parts()
        runs = self.query("SELECT run_id FROM runs WHERE engine = 'ray'")["run_id"].to_pylist() if parts else []
        ray = [r for r in self.run_ids if r in set(runs)]
        if parts and not ray:
            return pa.array([], pa.string())
        events = self._events
        if parts:
            events = f"(SELECT * FROM _events WHERE run_id IN ({', '.join(sql_string(r) for r in ray)}))"
        files = ", ".join(sql_string(p) for p in parts)
        cached = f"ANTI JOIN read_parquet([{files}]) c USING (sample_id)" if parts else ""
        sql = f"SELECT DISTINCT e.sample_id FROM {events} e {cached} ORDER BY e.sample_id"
        return self.query(sql)["sample_id"].combine_chunks()

    def query(self, sql: str, params: dict[str, Any] | None = None, **tables: pa.Table) -> pa.Table:
        """A query over the store's views with `tables` registered (and `_prior`, all prior decisions, when
        the query names it)."""
        if "_prior" in sql:
            tables = {"_prior": self.table, **tables}
        con = self.connection()
        for name, table in tables.items():
            con.register(name, table)
        try:
            return con.sql(sql, params=params).to_arrow_table()
        finally:
            for name in tables:
                con.unregister(name)

    def samples(self, columns: list[str] | tuple[str, ...], ids: pa.Array | pa.ChunkedArray) -> pa.Table:
        """Columns of the samples `ids` (in sample_id order)."""
        from lineage.core.sqlutil import quote_ident

        cols = ", ".join(f"s.{quote_ident(c)}" for c in columns)
        wanted = pa.table({"sample_id": ids})
        return self.query(f"SELECT {cols} FROM samples s SEMI JOIN _wanted USING (sample_id) ORDER BY s.sample_id",
                          _wanted=wanted)


def changed_only(decisions: pa.Table, prior: pa.Table, new_ids: pa.Array, on: Prior) -> pa.Table:
    """The decisions of the new samples, and of old ones only where they differ from their prior decision (a query
    on the connection of `on`, the run's `Prior`)."""
    return on.query(
        "SELECT d.* FROM _d d LEFT JOIN _p p USING (sample_id) "
        "WHERE d.sample_id IN (SELECT sample_id FROM _new) OR p.sample_id IS NULL "
        "OR (d.decision, d.score, d.reason, d.related_id, d.cluster_id) "
        "IS DISTINCT FROM (p.decision, p.score, p.reason, p.related_id, p.cluster_id) ORDER BY d.sample_id",
        _d=decisions, _p=prior, _new=pa.table({"sample_id": new_ids}),
    )


def _by_sample(indexes: list[DecisionIndex], ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The decisions of `ids` in each of the decision indexes, together. Promoted: an index written before every
    column was made nullable (`DecisionIndex.write`) differs from a newer one in that alone."""
    return pa.concat_tables([i.by_sample(keys_of(ids)) for i in indexes], promote_options="default")
