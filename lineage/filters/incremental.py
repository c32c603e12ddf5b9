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
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.core import readonly
from lineage.core.sqlutil import sql_string

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.features.cache import FeatureCache

# A commit summary's field (summaries of filter runs are JSON; some older commits' are plain text).
def summary_field(key: str) -> str:
    return f"CASE WHEN json_valid(c.summary) THEN json_extract_string(c.summary, '$.{key}') END"


# The latest decision of each sample among the runs of one filter with one set of params.
PRIOR_SQL = """
SELECT e.sample_id, e.decision, e.score, e.reason, e.related_id, e.cluster_id
FROM _events e JOIN runs r USING (run_id)
WHERE r.filter = $filter AND r.filter_version = $fv AND r.params_hash = $ph
QUALIFY row_number() OVER (PARTITION BY e.sample_id ORDER BY e.version DESC) = 1
"""

@contextmanager
def locked_reader(store: StoreCore) -> Iterator[duckdb.DuckDBPyConnection]:
    with store.reader() as con:
        readonly.lock_down(con, store.data)
        yield con


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

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The reader connection (locked down) the prior's queries run on, open until `close`."""
        if self._con is None:
            self._con = self._stack.enter_context(locked_reader(self.store))
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
        wanted_table = pa.table({"sample_id": wanted})
        table = self._decisions("SELECT sample_id FROM _wanted", _wanted=wanted_table)
        self._remember(table, wanted.to_pylist())
        return table

    def in_clusters(self, clusters: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The latest decisions of the samples whose latest cluster (their own id when none) is one of `clusters`."""
        wanted = pa.array(clusters.to_pylist() if isinstance(clusters, pa.ChunkedArray) else clusters, pa.string())
        # A union of two semi-joins, not an OR of them: DuckDB runs the OR as a slower mark join.
        table = self._decisions(
            f"SELECT sample_id FROM (SELECT sample_id, cluster_id FROM {self._events}) SEMI JOIN _clusters "
            "ON cluster_id = c UNION ALL SELECT c FROM _clusters",
            _clusters=pa.table({"c": wanted}),
        )
        self._remember(table, [])
        return table.filter(pc.is_in(pc.coalesce(table["cluster_id"], table["sample_id"]), value_set=wanted))

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
        rows = self.query(
            "SELECT max(r.version) AS v FROM runs r JOIN commits c ON c.version = r.version "
            f"WHERE r.run_id IN ({runs}) AND r.selection IS NULL "
            f"AND coalesce({summary_field('incremental')}, 'false') <> 'true'"
        )
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

    def query(self, sql: str, params: dict[str, str] | None = None, **tables: pa.Table) -> pa.Table:
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
