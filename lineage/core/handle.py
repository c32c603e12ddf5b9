"""The store handle: open a store directory, hold the writer lock, commit atomically, read as of a version.

Capabilities (ingest, filters, builds, ...) take a `StoreCore`; `lineage.store.Store` adds one method per user verb."""

from __future__ import annotations

import os
import shutil
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb
import pyarrow as pa

from lineage.core import catalog, readonly
from lineage.core.faults import crash_point
from lineage.core.location import Location
from lineage.core.lock import WriterLock
from lineage.core.segments import Segment, write_segment
from lineage.errors import StoreError, StoreNotFound, first_line, option

if TYPE_CHECKING:
    import polars as pl

CATALOG_FILE = "lineage.duckdb"
LOCK_FILE = "lineage.lock"
LAYOUT = ("data/samples", "data/events", "data/edges", "data/features", "builds", "tmp")
LOCAL_LAYOUT = ("builds", "tmp")  # what stays in the store directory when the data lives elsewhere
DATA_FOLDERS = ("data/", "tmp/")  # relative paths the data location holds
INIT_FILE = f".{CATALOG_FILE}.init"
COMMIT_WAIT = 600.0  # seconds a finished write waits for the catalog file (see `_commit_connection`)
INIT_WAIT = 30.0  # seconds an `init` waits for another `init` of the same path
AUTO_COMPACT_AFTER = ("ingest", "filter")  # commits that add sample or events segments


def _check_empty(path: Path) -> None:
    """Refuse a folder holding anything but what an interrupted `init` leaves (its lock, its draft, empty
    layout folders): `gc` must never find a user's files inside a store."""
    left = {LOCK_FILE, INIT_FILE, *(sub.split("/")[0] for sub in LAYOUT)}
    for entry in sorted(path.iterdir()):
        if entry.name not in left or (entry.is_dir() and any(p.is_file() for p in entry.rglob("*"))):
            raise StoreError(
                f"`{path}` is not empty and not a lineage store (it holds `{entry.name}`): "
                "give a new or empty directory"
            )


class Transaction:
    """What one commit will register: segments written so far and catalog rows to insert."""

    def __init__(self, store: StoreCore, version: int) -> None:
        self.store, self.version = store, version
        self.segments: list[Segment] = []
        self.rows: dict[str, pa.Table] = {}
        self.retired: list[str] = []  # ids of live segments this commit replaces (compaction)

    def write_segment(
        self, kind: str, segment_id: str, write: Callable[[Path], None], *, folder: str | None = None,
        filename: str | None = None,
    ) -> Segment:
        # Build folders (`folder`) stay beside the catalog; data goes to the data location.
        location = self.store.files if folder else self.store.data
        segment = write_segment(location, kind, segment_id, write, folder=folder, filename=filename)
        self.segments.append(segment)
        return segment

    def adopt_segment(self, kind: str, segment_id: str, staged: str, rows: int, sha256: str) -> Segment:
        """Move a file a worker staged under tmp/ of the data location (`staged`, relative) into data/<kind>/."""
        rel = f"data/{kind}/{segment_id}.parquet"
        size = self.store.data.size(staged)
        self.store.data.move(staged, rel)
        segment = Segment(segment_id, kind, rel, rows, size, sha256)
        self.segments.append(segment)
        crash_point("segment_adopted")
        return segment

    def add_rows(self, table: str, rows: pa.Table) -> None:
        """Rows to insert into `table` at commit (added to those given before: one ingest may have several batches)."""
        self.rows[table] = pa.concat_tables([self.rows[table], rows]) if table in self.rows else rows

    @property
    def empty(self) -> bool:
        """Nothing to commit: no segment written or retired, no row added."""
        return not (self.segments or self.rows or self.retired)

    def discard(self) -> None:
        for seg in self.segments:
            self.store.location_of(seg.path).delete(seg.path)


class StoreCore:
    """A lineage store directory. Connections are opened per operation, so readers never block for long."""

    def __init__(
        self, root: str | os.PathLike[str], *, as_of: int | None = None, wait: float = 0.0,
        _shared: _Instances | None = None,
    ) -> None:
        self.root = Path(root)
        self.as_of, self.wait = as_of, wait
        self.catalog_path = self.root / CATALOG_FILE
        self._shared = _Instances() if _shared is None else _shared  # its views `at` a version share them
        self._kept = _kept_slots(self)  # see `_kept_reader`
        self._version_seen: tuple[object, int] | None = None  # see `version`: (catalog.file_state, version)
        if not self.catalog_path.is_file():
            raise StoreNotFound(str(self.root))
        try:
            with self._connect(read_only=True) as con:
                catalog.check_format(con, self.root)
                latest = catalog.current_version(con)
                oldest = catalog.oldest_version(con)
                uri = catalog.data_uri(con)
        except duckdb.Error as exc:
            raise catalog.damaged(self.catalog_path, exc) from None
        self.files = Location.open(self.root, None)  # the store directory: catalog, builds, local scratch
        self.data = Location.open(self.root, uri)  # data/ and workers' tmp/: here, or where `init` put them
        if uri is not None:
            self.data.probe()
        if as_of is not None and not 0 <= as_of <= latest:
            raise StoreError(f"{option('as_of', str(as_of))} is not a version of this store (0..{latest})")
        if as_of is not None and as_of < oldest:
            raise StoreError(
                f"{option('as_of', str(as_of))}: `lineage gc` removed the segments of versions before {oldest} (its "
                f"retention); versions {oldest}..{latest} are readable"
            )

    @classmethod
    def init(cls, root: str | os.PathLike[str], *, data: str | None = None) -> Self:
        """Create a store at `root`; `data` puts its data on another path or a pyarrow filesystem URI
        (s3://bucket/prefix, gs://..., /mnt/shared/...), while the catalog stays in `root`."""
        path = Path(root)
        if path.exists() and not path.is_dir():
            raise StoreError(f"`{path}` exists and is not a directory")
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        try:
            cls._create(path, data)
        except BaseException:
            if created and not (path / CATALOG_FILE).exists():  # a refused init leaves no trace
                shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path)

    @staticmethod
    def _create(path: Path, data: str | None) -> None:
        from lineage._version import __version__

        # The lock first: of two `init`s of one path, one creates the store and the other then finds it.
        with WriterLock(path / LOCK_FILE, wait=INIT_WAIT):
            if (path / CATALOG_FILE).exists():
                raise StoreError(f"`{path}` is already a lineage store")
            _check_empty(path)
            if data is not None:
                location = Location.open(path, data)
                location.check()  # before anything is made here: a bad URI leaves no trace
                data = location.uri
            for sub in LAYOUT if data is None else LOCAL_LAYOUT:
                (path / sub).mkdir(parents=True, exist_ok=True)
            # Build the catalog under a temporary name so a crash never leaves a half-made store.
            tmp = path / INIT_FILE
            tmp.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp))
            try:
                catalog.create(con, __version__, data)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.rename(tmp, path / CATALOG_FILE)

    @staticmethod
    def format_version() -> int:
        """The store format this lineage writes (`migrate` upgrades to it)."""
        return catalog.FORMAT_VERSION

    @staticmethod
    def migrate(root: str | os.PathLike[str]) -> list[int]:
        """Upgrade the catalog of the store at `root` to the format this lineage writes, one step at a time, each
        in a transaction, under the writer lock; returns the formats it went through (none: it was current)."""
        path = Path(root)
        if not (path / CATALOG_FILE).is_file():
            raise StoreNotFound(str(path))
        with WriterLock(path / LOCK_FILE), catalog.connect(path / CATALOG_FILE, read_only=False) as con:
            return catalog.migrate(con)

    def __repr__(self) -> str:
        at = f", as_of={self.as_of}" if self.as_of is not None else ""
        return f"Store({str(self.root)!r}{at})"

    # -- connections -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # A Store sent to another process takes its paths, not this process's DuckDB instance.
        return {**self.__dict__, "_shared": None, "_kept": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _shared=_Instances())
        self._kept = _kept_slots(self)

    def _instance(self) -> duckdb.DuckDBPyConnection:
        """A new connection to this Store's in-memory DuckDB instance, which its catalog reads share (as do its views
        `at` other versions): starting one costs ~15 ms of CPU, as much as a small query, so a command pays it once
        rather than per catalog read. lineage's own queries (`query`) leave it unlocked; user SQL runs in an
        instance of its own (`locked_reader`), as do readers of users' text (`reader(locked=True)`). Should a caller
        lock a connection of it down all the same (`readonly.lock_down`, for the instance's life), a new one."""
        shared = self._shared
        with shared.starting:
            if shared.db is None or _is_locked(shared.db):
                shared.db = duckdb.connect(":memory:")
            return shared.db.cursor()

    @contextmanager
    def _kept_target(self, locked: bool) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """Where a kept reader's copy goes (`catalog.snapshot(into=)`), for as long as the copy is being made: None,
        an instance of its own; for lineage's own (unlocked) reader, a new connection of the instance this Store
        keeps for such copies (`_Instances.kept`), when no other thread is attaching the catalog to it: a commit
        makes the next query copy the catalog again, not start an instance again. For user SQL (`locked`), the
        shared instance taken over when it is unlocked and no thread is attaching (locking is for the instance's
        life, so it is forgotten and the next catalog read starts another): a one-shot `lineage sql` starts one
        DuckDB instance, not two."""
        shared = self._shared
        if not self.data.posix:
            # Remote data: DuckDB aborts the process at exit when an instance that took the Python filesystem
            # (`Location.register`) changes hands this way; a remote query's network time dwarfs an instance's start.
            yield None
            return
        if not locked:
            if not shared.kept_attaching.acquire(blocking=False):
                yield None
                return
            try:
                with shared.starting:
                    if shared.kept is None:
                        shared.kept = duckdb.connect(":memory:")
                    con = shared.kept.cursor()
                yield con
            finally:
                shared.kept_attaching.release()
            return
        with shared.starting:
            if shared.db is None or _is_locked(shared.db) or not shared.attaching.acquire(blocking=False):
                adopted = None
            else:
                try:
                    adopted, shared.db = shared.db.cursor(), None
                finally:
                    shared.attaching.release()
        yield adopted

    @contextmanager
    def _connect(self, *, read_only: bool, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog: read-only, a connection of `_instance` with the file attached (and its default database);
        read-write, or while the file is attached already (DuckDB attaches a file once per instance), its own."""
        if read_only and self._shared.attaching.acquire(blocking=False):
            try:
                con = self._instance()
                try:
                    catalog.attach(con, self.catalog_path, timeout=timeout, use=True)
                    try:
                        yield con
                    finally:
                        catalog.detach(con)
                finally:
                    con.close()
            finally:
                self._shared.attaching.release()
            return
        con = catalog.connect(self.catalog_path, read_only=read_only, timeout=timeout)
        try:
            yield con
        finally:
            con.close()

    def _snapshot(self, tables: set[str] | None, whole: bool) -> duckdb.DuckDBPyConnection:
        """A connection over an in-memory copy of the catalog (`catalog.snapshot`), in `_instance` when free."""
        if not self._shared.attaching.acquire(blocking=False):
            return catalog.snapshot(self.catalog_path, tables=tables, as_of=self.as_of, whole=whole)
        try:
            return catalog.snapshot(
                self.catalog_path, into=self._instance(), tables=tables, as_of=self.as_of, whole=whole
            )
        finally:
            self._shared.attaching.release()

    @contextmanager
    def reader(
        self, *, views: set[str] | None = None, whole: bool = False, locked: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the user-facing views (all, or `views` and what they read), as of this store's
        version, over an in-memory copy of the catalog (see `catalog.snapshot`: `whole` copies the catalog's own
        tables whole, for a query that reads them; otherwise only what the views read).

        `locked`: for a reader that runs a user's text (a `--where`, a spec's pool): locked down
        (`readonly.lock_down`: it reads the store's data and nothing else) before it is handed out, in a DuckDB
        instance of its own. Locking is for an instance's life: a reader of the shared instance that its caller
        locked down once made the reads other threads were starting on it fail, as "the catalog is damaged"."""
        tables = catalog.tables_read(views)
        try:
            if locked:
                con = catalog.snapshot(self.catalog_path, tables=tables, as_of=self.as_of, whole=whole)
            else:
                con = self._snapshot(tables, whole)
        except duckdb.Error as exc:
            raise catalog.damaged(self.catalog_path, exc) from None
        try:
            try:
                catalog.create_views(con, self.data, self.as_of, views)
            except duckdb.Error as exc:  # DuckDB reads each segment's footer here: a damaged one fails first
                raise StoreError(f"{first_line(exc)}: `lineage doctor` lists damaged segments; restore them from "
                                 "a backup") from None
            if locked:
                readonly.lock_down(con, self.data)
            yield con
        finally:
            catalog.release(con)
            con.close()

    def catalog(self, *, write: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """The catalog's own tables (`_lineage.*`), read-only; `write`: read-write, for a caller holding the writer
        lock (compaction, gc) that commits through `lineage.core.catalog.transaction` itself."""
        return self._commit_connection() if write else self._connect(read_only=True)

    @property
    def version(self) -> int:
        if self.as_of is not None:
            return self.as_of
        # Read before the catalog: a commit landing in between makes the next call look again, never a stale hit.
        state = catalog.file_state(self.catalog_path)
        seen = self._version_seen
        if state is not None and seen is not None and seen[0] == state:
            return seen[1]  # the file is as when this version was read: no commit since
        with self._connect(read_only=True) as con:
            latest = catalog.current_version(con)
        self._version_seen = (state, latest) if state is not None else None
        return latest

    def at(self, version: int) -> Self:
        """The same store as it was at `version` (time travel: segments are append-only)."""
        return type(self)(self.root, as_of=version, wait=self.wait, _shared=self._shared)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(
        self, kind: str, ref_id: str, summary: dict[str, Any], *, allow_empty: bool = False
    ) -> Iterator[Transaction]:
        """Hold the writer lock; commit everything the body wrote as one version, or nothing. A body that wrote
        nothing (it found the work done, or it was a dry run) commits nothing, unless `allow_empty`: a commit whose
        row (kind, summary) is itself the record, as a rollback's is."""
        if self.as_of is not None:
            raise StoreError(f"cannot write to a store opened {option('as_of', str(self.as_of))}")
        with WriterLock(self.root / LOCK_FILE, wait=self.wait):
            version = self.version + 1
            txn = Transaction(self, version)
            try:
                yield txn
                if txn.empty and not allow_empty:
                    return
                with self._commit_connection() as con:
                    catalog.commit(
                        con,
                        version=version,
                        kind=kind,
                        ref_id=ref_id,
                        summary=summary,
                        segments=txn.segments,
                        rows=txn.rows,
                        retire=txn.retired,
                    )
                state = catalog.file_state(self.catalog_path)  # still under the lock: the file holds `version`
                self._version_seen = (state, version) if state is not None else None
            except BaseException:
                # Only files of a version the catalog never registered may go; after COMMIT they are the store.
                if not self._committed(version):
                    txn.discard()
                raise
        if kind in AUTO_COMPACT_AFTER:  # after the lock is released: compaction takes it for a commit of its own
            self._auto_compact()

    def _auto_compact(self) -> None:
        """Called after a commit that added sample or events segments. The facade (`lineage.store.Store`) runs the
        automatic compaction policy here (`lineage.compaction`, a capability: the core does not import it)."""

    @contextmanager
    def _commit_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog, read-write. Readers hold its file only while copying it (`reader`), and other processes
        for a moment (an old lineage, a user's `duckdb`): the work is done, so wait rather than lose it.

        The file is attached to `_instance` when no reader of this Store has it attached (DuckDB attaches a file
        once per instance): ~3 ms of CPU instead of ~25 ms for an instance of its own, a tenth of a small ingest.
        DETACH checkpoints as closing does, so the next reader finds no write-ahead log to replay."""
        shared = self._shared.attaching.acquire(blocking=False)
        try:
            try:
                if shared:
                    con = self._instance()
                    try:
                        catalog.attach(con, self.catalog_path, timeout=COMMIT_WAIT, use=True, read_only=False)
                    except BaseException:
                        con.close()
                        raise
                else:
                    con = catalog.connect(self.catalog_path, read_only=False, timeout=COMMIT_WAIT)
            except duckdb.IOException as exc:
                raise StoreError(
                    f"could not commit: the catalog `{self.catalog_path}` stayed locked by another process for "
                    f"{COMMIT_WAIT:g} s ({first_line(exc)}); nothing was written, run the command again"
                ) from None
            try:
                yield con
            finally:
                try:
                    if shared:
                        catalog.detach(con)
                except duckdb.Error:
                    with self._shared.starting:  # the file may still be attached: later reads get another instance
                        self._shared.db = None
                    raise
                finally:
                    con.close()
        finally:
            if shared:
                self._shared.attaching.release()

    def _committed(self, version: int) -> bool:
        try:
            with self._connect(read_only=True) as con:
                return catalog.current_version(con) >= version
        except Exception:
            return True  # cannot tell: keeping an orphan is safe, deleting registered data is not

    def location_of(self, rel: str) -> Location:
        """The location holding a path the catalog records (data segments or build members)."""
        return self.data if rel.startswith(DATA_FOLDERS) else self.files

    def staging(self, run_id: str) -> str:
        """Where a run's workers stage their parts: tmp/<run_id>/ of the data location (relative)."""
        return f"tmp/{run_id}"

    def scratch_dir(self, name: str) -> Path:
        path = self.root / "tmp" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove_scratch(self, name: str) -> None:
        """The driver's scratch folder `name`, and the workers' staging folder of the same name."""
        shutil.rmtree(self.root / "tmp" / name, ignore_errors=True)
        if self.data.uri is not None:
            self.data.delete(self.staging(name))

    # -- the public API ----------------------------------------------------------------------

    def output_path(self, path: str | Path, *, option: str = "--output") -> Path:
        """`path` resolved, or an error if writing there could change this store's own files."""
        from lineage.outputs import check_output_path

        data = self.data.base if self.data.posix and self.data.uri else None
        return check_output_path(self.root, path, option=option, data=data)

    def locked_reader(
        self, *, views: set[str] | None, memory_limit: str | None = None
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection for user SQL: the views as `reader` makes them (`views`: these and what they read; None:
        all, over the whole catalog), locked down (`readonly.lock_down`: it reads the store's data and nothing else,
        and its settings cannot change). Locking is for a DuckDB instance's life, so user SQL has an instance of its
        own (see `_kept_reader`): the shared one stays unlocked for lineage's own reads."""
        return self._kept_reader(views, memory_limit, locked=True)

    @contextmanager
    def _kept_reader(
        self, views: set[str] | None, memory_limit: str | None, *, locked: bool
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of a DuckDB instance this Store keeps (one for user SQL, `locked`, one for lineage's own
        queries) with a copy of the catalog and the views over it, made again only when the store's version,
        `memory_limit` or the views needed change: a session's repeated queries skip the instance's start, the
        catalog copy and the views (~30 ms of a small query's ~35). One query at a time on each (a DuckDB
        connection is for one thread)."""
        slot = self._kept[locked]
        with slot.lock:
            held = slot.instance
            if held is None or not held.serves(self.version, memory_limit, views):
                slot.instance = None
                if held is not None:
                    catalog.release(held.con)  # its copy, when it lives in the shared instance
                    held.con.close()
                    views = None if views is None or held.views is None else views | held.views  # grow, not churn
                held = slot.instance = self._kept_instance(views, memory_limit, locked)
            yield held.con

    def _kept_instance(self, views: set[str] | None, memory_limit: str | None, locked: bool) -> _KeptInstance:
        """A new DuckDB instance with a copy of the catalog and the views over it, then (`locked`) locked down."""
        whole = views is None
        try:
            with self._kept_target(locked) as into:
                con = catalog.snapshot(self.catalog_path, tables=catalog.tables_read(views), as_of=self.as_of,
                                       whole=whole, into=into)
        except duckdb.Error as exc:
            raise catalog.damaged(self.catalog_path, exc) from None
        try:
            version = self.as_of if self.as_of is not None else catalog.current_version(con)
            try:
                catalog.create_views(con, self.data, self.as_of, views)
            except duckdb.Error as exc:  # as in `reader`
                raise StoreError(f"{first_line(exc)}: `lineage doctor` lists damaged segments; restore them from "
                                 "a backup") from None
            if locked:
                readonly.lock_down(con, self.data, memory_limit=memory_limit)
        except BaseException:
            catalog.release(con)
            con.close()
            raise
        return _KeptInstance(con, version, memory_limit, views)

    def sql(
        self,
        query: str,
        *,
        params: list[object] | None = None,
        timeout: float | None = None,
        memory_limit: str | None = None,
    ) -> pa.Table:
        """Run one read-only SELECT over the store's views; returns an Arrow table. For user SQL: the connection is
        locked down (`locked_reader`).

        `timeout` (seconds) stops a query that runs longer; `memory_limit` (DuckDB's, e.g. "2GB") bounds it.
        """
        # Only the views the query names (and what they read): `SELECT 1` costs the same over 10 or 10,000 segments.
        with self.locked_reader(views=catalog.views_named(query), memory_limit=memory_limit) as con:
            return readonly.run(con, query, params, timeout=timeout)

    def query(self, sql: str, *, params: list[object] | None = None) -> pa.Table:
        """lineage's own SQL (fixed text, values bound as `params`; never a user's text, which goes to `sql`): one
        SELECT over the store's views, on an instance this Store keeps unlocked (`_kept_reader`)."""
        with self._kept_reader(catalog.views_named(sql), None, locked=False) as con:
            return readonly.run(con, sql, params)

    def sql_polars(self, query: str, *, params: list[object] | None = None) -> pl.DataFrame:
        import polars as pl  # ~0.4 s to import: only for callers who want a frame

        return pl.from_arrow(self.sql(query, params=params))  # type: ignore[return-value]


def _is_locked(db: duckdb.DuckDBPyConnection) -> bool:
    """Whether `readonly.lock_down` locked this instance (a reader's `--where` query may have)."""
    return bool(db.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0])


class _Instances:
    """The in-memory DuckDB instances a store's catalog reads run in, shared by the store and its views `at` other
    versions (the same catalog file, so the same locks): a build or a report opens several such views, and each
    would otherwise start instances of its own (~15 ms of CPU each)."""

    def __init__(self) -> None:
        self.db: duckdb.DuckDBPyConnection | None = None  # see `StoreCore._instance`
        self.attaching = threading.Lock()  # held while a connection of `db` has the catalog file attached
        self.starting = threading.Lock()  # around making connections: a DuckDB connection object is for one thread
        self.kept: duckdb.DuckDBPyConnection | None = None  # lineage's own kept readers' copies (`_kept_target`)
        self.kept_attaching = threading.Lock()  # held while a connection of `kept` has the catalog file attached


class _KeptInstance:
    """A DuckDB instance `StoreCore._kept_reader` keeps, and what it was made for."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, version: int, memory_limit: str | None, views: set[str] | None
    ) -> None:
        self.con, self.version, self.memory_limit, self.views = con, version, memory_limit, views

    def serves(self, version: int, memory_limit: str | None, views: set[str] | None) -> bool:
        """Made at `version` with `memory_limit`, and holding `views` (None: all of them)."""
        has_views = self.views is None or (views is not None and views <= self.views)
        return self.version == version and self.memory_limit == memory_limit and has_views


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while a query runs on `instance`
        self.instance: _KeptInstance | None = None


def _kept_slots(owner: StoreCore) -> dict[bool, _Slot]:
    """`StoreCore._kept`: by `locked`, the instance for user SQL (True) and the one for lineage's own (False). Their
    copies are released when `owner` is dropped: a view `at` a version keeps its copy in the instance it shares with
    its store (`_Instances.kept`), which outlives it."""
    slots = {True: _Slot(), False: _Slot()}
    weakref.finalize(owner, _release_slots, slots).atexit = False  # at exit the instances go too
    return slots


def _release_slots(slots: dict[bool, _Slot]) -> None:
    for slot in slots.values():
        held, slot.instance = slot.instance, None
        if held is not None:
            catalog.release(held.con)
            held.con.close()
