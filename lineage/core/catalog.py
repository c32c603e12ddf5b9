"""The DuckDB catalog: tables derived from the Arrow schemas, per-connection views, commits, migrations.

Catalog tables live in the `_lineage` schema. Users see temporary views (`samples`, `batches`, ...)
built on each connection from the registered segments, optionally as of an earlier version.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from lineage.core.faults import crash_point
from lineage.core.location import Location
from lineage.core.segments import Segment
from lineage.core.sqlutil import quote_ident, sql_string
from lineage.errors import StoreError, StoreFormatError, first_line
from lineage.schemas import (
    BATCHES,
    BUILDS,
    COMMITS,
    EDGES,
    EVALS,
    EVENTS,
    META,
    METRICS,
    MODELS,
    RUNS,
    SAMPLES,
    SEGMENTS,
    SET_MEMBERS,
    SETS,
    create_table_sql,
    duckdb_type,
)

SCHEMA = "_lineage"
TABLES: dict[str, pa.Schema] = {
    "meta": META,
    "commits": COMMITS,
    "segments": SEGMENTS,
    "batches": BATCHES,
    "runs": RUNS,
    "sets": SETS,
    "set_members": SET_MEMBERS,
    "metrics": METRICS,
    "builds": BUILDS,
    "models": MODELS,
    "evals": EVALS,
}



def _identity_by_record(con: duckdb.DuckDBPyConnection) -> None:
    """Format 1 -> 2: sample ids come from source + the record's own id, not its text (`lineage.core.ids`).

    Segments are immutable and every sample keeps its id; the catalog notes the last version whose samples have
    format-1 ids, so that ingest still recognises them (by source + external id + text) when their input comes
    again. Batches gain `rows_duplicate`.
    """
    con.execute(f"ALTER TABLE {SCHEMA}.batches ADD COLUMN IF NOT EXISTS rows_duplicate BIGINT")
    con.execute(
        f"INSERT INTO {SCHEMA}.meta SELECT 'format1_until_version', CAST(max(version) AS VARCHAR) FROM {SCHEMA}.commits"
    )


def _retirable_segments(con: duckdb.DuckDBPyConnection) -> None:
    """Format 2 -> 3: a segment may be replaced by compaction (`lineage compact`) at a version and still be read by
    the versions before it, so segments gain `retired_version`. Nothing is retired yet; an older lineage, which
    would read retired and compacted segments both, stops at the format check."""
    con.execute(f"ALTER TABLE {SCHEMA}.segments ADD COLUMN IF NOT EXISTS retired_version BIGINT")


def _materialised_edges(con: duckdb.DuckDBPyConnection) -> None:
    """Format 3 -> 4: each samples segment gets an `edges` segment (`lineage.core.edges`), registered at the same
    version and retired at the same version as it, so a read as of any retained version sees the edges of exactly
    its samples. Self-contained: it reads the segments' `parent_ids` and writes the files itself (a crash before
    the catalog commit leaves only orphans, which `gc` removes; the migration then starts again)."""
    from lineage.core.location import Location
    from lineage.core.segments import write_parquet, write_segment

    catalog_file = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    root = Path(catalog_file.fetchall()[0][0]).parent
    data = Location.open(root, data_uri(con))
    rows = con.execute(
        f"SELECT path, ref_id, version, retired_version FROM {SCHEMA}.segments WHERE kind = 'samples' "
        "ORDER BY version, segment_id"
    ).fetchall()
    work = duckdb.connect(":memory:")
    try:
        data.register(work)
        for path, ref_id, version, retired in rows:
            if retired is not None and not data.exists(path):
                continue  # removed by `gc` with a retention: no retained version reads it
            src = f"read_parquet({sql_string(data.sql_path(path))})"
            if not work.execute(f"SELECT count(*) FROM (SELECT unnest(parent_ids) FROM {src})").fetchall()[0][0]:
                continue
            sql = (
                f"WITH links AS (SELECT sample_id AS child, unnest(parent_ids) AS parent FROM {src}) "
                "SELECT * FROM (SELECT child AS sample_id, 'parent' AS relation, parent AS related_id FROM links "
                "UNION ALL SELECT parent, 'child', child FROM links) ORDER BY ALL"
            )
            segment_id = str(uuid.uuid4())
            seg = write_segment(data, "edges", segment_id, lambda draft, q=sql: write_parquet(
                draft, EDGES, work.sql(q).to_arrow_reader(8192), bloom=("sample_id",), bloom_rows=8192))
            con.execute(
                f"INSERT INTO {SCHEMA}.segments VALUES (?, 'edges', ?, ?, ?, ?, ?, ?, ?)",
                [seg.segment_id, seg.path, seg.row_count, seg.size_bytes, seg.sha256, ref_id, version, retired],
            )
    finally:
        work.close()


# Each step upgrades a catalog from format N to N + 1, inside one transaction.
MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _identity_by_record, 2: _retirable_segments, 3: _materialised_edges,
}
FORMAT_VERSION = 4


WAIT_NOTICE = 2.0  # seconds of waiting for the catalog file before saying so on stderr
WAIT = 30.0  # seconds a command waits for the catalog file by default (a commit waits longer: `handle.COMMIT_WAIT`)


def connect(path: Path, *, read_only: bool, timeout: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting while another process holds DuckDB's file lock for a moment (`timeout`
    seconds, default WAIT)."""
    timeout = WAIT if timeout is None else timeout
    start = time.monotonic()
    said = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            waited = time.monotonic() - start
            if "lock" not in str(exc).lower() or waited >= timeout:
                raise
            if waited > WAIT_NOTICE and not said:  # a wait the user can see: say why the command is idle
                print(f"lineage: waiting for `{path}`, held by another process (up to {timeout:g} s)", file=sys.stderr)
                said = True
            time.sleep(0.05)


def snapshot(
    path: Path, *, timeout: float | None = None, into: duckdb.DuckDBPyConnection | None = None,
    tables: set[str] | None = None, as_of: int | None = None, whole: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory copy of the catalog's tables: readers hold the file only while copying (never for the length
    of a query, so a writer's commit never waits on one), and the copy cannot reach the catalog file.

    `into`: a new connection (cursor) of an existing DuckDB instance; the copy goes into an in-memory database
    attached to it for this connection alone (its default database until `release`), which saves starting a
    DuckDB instance (~16 ms of CPU, as much as a small query). Default: a new instance of its own.
    `tables`: copy only these catalog tables (see `tables_read`); default all.
    `whole=False`: copy only what the views read of the two tables that grow with every commit, so that a query
    costs the same after 10 commits or 10,000: of `segments`, the rows read `as_of` (default: the latest version);
    of `commits`, unless `tables` names it, the latest commit alone. `whole=True` is for a query that may read the
    catalog's own tables (`_lineage.segments`, ...).
    """
    con = duckdb.connect(":memory:") if into is None else into
    try:
        if into is not None:
            copy = f"copy_{uuid.uuid4().hex}"
            con.execute(f"ATTACH ':memory:' AS {copy}")
            con.execute(f"USE {copy}")
        attach(con, path, timeout=timeout)
        found = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'live' AND schema_name = ?", [SCHEMA]
        ).fetchall()
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        latest = con.execute(f"SELECT max(version) FROM live.{SCHEMA}.commits").fetchall()[0][0]
        version = latest if as_of is None else as_of
        for (name,) in found:
            wanted = tables is None or name in tables
            if not wanted and name != "commits":
                continue
            table = f"{SCHEMA}.{quote_ident(name)}"
            rows = _rows(name, wanted, whole, version, latest)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM live.{table}{rows}")
        con.execute("DETACH live")
    except BaseException:
        release(con)
        con.close()
        raise
    return con


def _rows(name: str, wanted: bool, whole: bool, version: int, latest: int) -> str:
    """Which rows of catalog table `name` a snapshot copies (see `snapshot`): a WHERE clause, or all."""
    if not wanted:  # `commits`, which `current_version` reads
        return f" WHERE version = {int(latest)}"
    if name == "segments" and not whole:
        return f" WHERE {LIVE_AT.format(v=int(version))}"
    return ""


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Detach the copy `snapshot(into=con)` made, if any (the instance outlives the connection)."""
    try:
        name = con.execute("SELECT current_database()").fetchall()[0][0]
        if name.startswith("copy_"):
            con.execute("USE memory")
            con.execute(f"DETACH {name}")
    except duckdb.Error:
        pass  # a closed or failed connection: its instance is dropped with its Store


def attach(
    con: duckdb.DuckDBPyConnection, path: Path, *, timeout: float | None = None, use: bool = False,
    read_only: bool = True,
) -> None:
    """ATTACH the catalog file as `live`, read-only unless `read_only=False` (and make it the default database with
    `use`), waiting while another process holds DuckDB's file lock for a moment (`timeout` s, default WAIT);
    `detach` undoes it."""
    timeout = WAIT if timeout is None else timeout
    start = time.monotonic()
    said = False
    mode = " (READ_ONLY)" if read_only else ""
    while True:
        try:
            con.execute(f"ATTACH {sql_string(str(path))} AS live{mode}")
            break
        except duckdb.IOException as exc:
            waited = time.monotonic() - start
            if "lock" not in str(exc).lower() or waited >= timeout:
                raise
            if waited > WAIT_NOTICE and not said:  # as `connect` says it
                print(f"lineage: waiting for `{path}`, held by another process (up to {timeout:g} s)", file=sys.stderr)
                said = True
            time.sleep(0.05)
    if use:
        con.execute("USE live")


def detach(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("USE memory")
    con.execute("DETACH live")


def damaged(path: Path, exc: BaseException) -> StoreError:
    """The one line for a catalog DuckDB cannot open or query: which file, and what to do."""
    text = first_line(exc)
    if "lock" in text.lower():
        return StoreError(f"the catalog `{path}` is locked by another process for too long: {text}; retry")
    return StoreError(
        f"the catalog `{path}` is damaged or not a DuckDB database ({text}): restore it from a backup "
        "(see `lineage backup`)"
    )


def create(con: duckdb.DuckDBPyConnection, lineage_version: str, data_uri: str | None = None) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name, schema in TABLES.items():
        con.execute(create_table_sql(name, schema).replace("TABLE IF NOT EXISTS ", f"TABLE IF NOT EXISTS {SCHEMA}."))
    now = datetime.now(UTC).isoformat()
    meta = {"format_version": str(FORMAT_VERSION), "created_at": now, "created_by": f"lineage {lineage_version}"}
    if data_uri is not None:
        meta["data_uri"] = data_uri
    con.executemany(f"INSERT INTO {SCHEMA}.meta VALUES (?, ?)", list(meta.items()))
    con.execute(f"INSERT INTO {SCHEMA}.commits VALUES (0, ?, 'init', NULL, 'store created')", [now])


def format_version(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'format_version'").fetchall()
    return int(row[0][0])


def check_format(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    found = format_version(con)
    if found > FORMAT_VERSION:
        raise StoreFormatError(
            f"store `{path}` has format {found}, newer than this lineage understands ({FORMAT_VERSION}); "
            "upgrade lineage"
        )
    if found < FORMAT_VERSION:
        raise StoreFormatError(
            f"store `{path}` has format {found}; run `lineage migrate` to upgrade it to {FORMAT_VERSION}"
        )


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Walk the migration ladder up to FORMAT_VERSION; returns the formats passed through."""
    done = []
    while (found := format_version(con)) < FORMAT_VERSION:
        step = MIGRATIONS.get(found)
        if step is None:
            raise StoreFormatError(f"no upgrade path from store format {found} to {FORMAT_VERSION}")
        con.execute("BEGIN TRANSACTION")
        step(con)
        con.execute(f"UPDATE {SCHEMA}.meta SET value = ? WHERE key = 'format_version'", [str(found + 1)])
        con.execute("COMMIT")
        done.append(found + 1)
    return done


def data_uri(con: duckdb.DuckDBPyConnection) -> str | None:
    """Where the store's data lives when not in the store directory (see `lineage.core.location`)."""
    row = con.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'data_uri'").fetchall()
    return row[0][0] if row else None


def legacy_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The last version whose samples have format-1 ids (from source + text), in a store migrated from format 1."""
    row = con.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'format1_until_version'").fetchall()
    return int(row[0][0]) if row else None


HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two database headers (one per checkpoint, alternating)


def file_state(path: Path) -> tuple[int, int, int, bytes] | None:
    """What tells whether the catalog file's committed content changed, without opening it (~0.05 ms instead of ~3):
    its inode, size, modification time and DuckDB's database headers, which every checkpoint rewrites with a new
    iteration count. None while a write-ahead log exists (commits not yet checkpointed into the file: open it)."""
    try:
        if os.path.exists(f"{path}.wal"):
            return None
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            st = os.fstat(f.fileno())
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, head)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT max(version) FROM {SCHEMA}.commits").fetchall()[0][0]


def oldest_version(con: duckdb.DuckDBPyConnection) -> int:
    """The oldest version a reader may ask for: `gc` with a retention removed what the versions before it read."""
    row = con.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'oldest_version'").fetchall()
    return int(row[0][0]) if row else 0


# A segment is read at version v when it was registered by then and not yet replaced by a compaction.
LIVE_AT = "version <= {v} AND (retired_version IS NULL OR retired_version > {v})"


def segment_paths(con: duckdb.DuckDBPyConnection, kind: str, as_of: int | None) -> list[str]:
    """The segments of `kind` as of a version (default: the latest), relative to the data location's base."""
    return [f.path for f in segment_files(con, kind, as_of)]


class SegmentFile(NamedTuple):
    """What the catalog knows of a registered segment file without opening it."""

    path: str  # relative to the data location's base
    row_count: int
    size_bytes: int


def segment_files(con: duckdb.DuckDBPyConnection, kind: str, as_of: int | None) -> list[SegmentFile]:
    """`segment_paths` with each file's row count and size, as registered."""
    live = LIVE_AT.format(v="$v")
    rows = con.execute(
        f"SELECT path, row_count, size_bytes FROM {SCHEMA}.segments WHERE kind = $kind AND {live} "
        "ORDER BY version, segment_id",
        {"kind": kind, "v": as_of if as_of is not None else 2**62},
    ).fetchall()
    return [SegmentFile(*r) for r in rows]


SEGMENT_SCHEMAS = {"samples": SAMPLES, "events": EVENTS, "edges": EDGES}


def _segment_view(name: str, paths: Sequence[str], schema: pa.Schema) -> str:
    if not paths:
        cols = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {quote_ident(f.name)}" for f in schema)
        return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cols} WHERE false"
    files = ", ".join(sql_string(p) for p in paths)
    return f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet([{files}])"


VIEWS_SQL = """
CREATE OR REPLACE TEMP VIEW batches AS SELECT * FROM {schema}.batches WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW commits AS SELECT * FROM {schema}.commits WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW segments AS SELECT * FROM {schema}.segments WHERE {live};
CREATE OR REPLACE TEMP VIEW runs AS SELECT * FROM {schema}.runs WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW sets AS SELECT * FROM {schema}.sets WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW set_members AS SELECT * FROM {schema}.set_members WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW metrics AS SELECT * FROM {schema}.metrics WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW builds AS SELECT * FROM {schema}.builds WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW models AS SELECT * FROM {schema}.models WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW evals AS SELECT * FROM {schema}.evals WHERE version <= {v};
CREATE OR REPLACE TEMP VIEW events AS
    SELECT r.filter, e.* FROM _events e JOIN runs r USING (run_id);
CREATE OR REPLACE TEMP VIEW _status_runs AS
    WITH covered AS (
        SELECT r.filter, max(r.version) AS since FROM runs r JOIN commits c ON c.version = r.version
        WHERE CASE WHEN json_valid(c.summary) THEN json_extract_string(c.summary, '$.covers_all') END = 'true'
        GROUP BY r.filter
    )
    SELECT r.run_id, r.filter, coalesce(r.version = f.since, false) AS base
    FROM runs r LEFT JOIN covered f USING (filter) WHERE r.version >= coalesce(f.since, 0);
CREATE OR REPLACE TEMP VIEW status AS
    WITH tail AS MATERIALIZED (
        SELECT s.filter, e.* FROM _status_tail e JOIN _status_runs s USING (run_id) WHERE NOT s.base
        QUALIFY row_number() OVER (PARTITION BY e.sample_id, s.filter ORDER BY e.version DESC) = 1
    )
    SELECT * FROM tail
    UNION ALL
    SELECT s.filter, e.* FROM _status_base e JOIN _status_runs s USING (run_id)
    WHERE s.base AND NOT EXISTS (SELECT 1 FROM tail t WHERE t.sample_id = e.sample_id AND t.filter = s.filter);
CREATE OR REPLACE TEMP VIEW lineage_edges AS
    SELECT related_id AS parent_id, sample_id AS child_id FROM _edges WHERE relation = 'parent';
CREATE OR REPLACE TEMP MACRO sample_ref(ref) AS (
    -- What `lineage show` takes: a sample id, your own id, SOURCE:ID, else a unique prefix of a sample id
    -- (tried last: a short external id such as `a2` is often also a prefix of some hex id).
    WITH exact AS (
        SELECT DISTINCT sample_id, source FROM samples
        WHERE sample_id = ref OR external_id = ref OR source || ':' || external_id = ref
    ), prefixed AS (
        SELECT DISTINCT sample_id FROM samples WHERE starts_with(sample_id, ref) AND NOT EXISTS (FROM exact)
    )
    SELECT CASE
        WHEN (SELECT count(*) FROM exact) = 1 THEN (SELECT any_value(sample_id) FROM exact)
        WHEN (SELECT count(DISTINCT source) FROM exact) > 1
            THEN error('`' || ref || '` is an id in several sources; write it as `SOURCE:' || ref || '`')
        WHEN (SELECT count(*) FROM exact) > 1 THEN error('`' || ref || '` matches several samples')
        WHEN (SELECT count(*) FROM prefixed) = 1 THEN (SELECT any_value(sample_id) FROM prefixed)
        WHEN (SELECT count(*) FROM prefixed) = 0
            THEN error('no sample with id, id prefix or external id `' || ref || '`')
        ELSE error('`' || ref || '` matches several samples; give more of the id')
    END
);
CREATE OR REPLACE TEMP MACRO protected_samples(names) AS TABLE
    -- The members of the protected sets (of the sets `names` only, unless NULL).
    SELECT DISTINCT m.sample_id FROM set_members m JOIN sets t ON t.name = m.set_name
    WHERE t.protected AND (names IS NULL OR list_contains(names, t.name));
CREATE OR REPLACE TEMP MACRO tainted_samples(names) AS TABLE
    -- The members of the protected sets and all their descendants: what no build may take.
    WITH RECURSIVE walk(sample_id) AS (
        SELECT sample_id FROM protected_samples(names)
        UNION
        SELECT e.child_id FROM lineage_edges e JOIN walk w ON e.parent_id = w.sample_id
    )
    SELECT sample_id FROM walk;
CREATE OR REPLACE TEMP MACRO ancestors(id) AS TABLE
    WITH RECURSIVE walk(sample_id, depth) AS (
        SELECT parent_id, 1 FROM lineage_edges WHERE child_id = sample_ref(id)
        UNION
        SELECT e.parent_id, w.depth + 1 FROM lineage_edges e JOIN walk w ON e.child_id = w.sample_id
        WHERE w.depth < 10000
    )
    SELECT sample_id, min(depth) AS depth FROM walk GROUP BY sample_id ORDER BY depth, sample_id;
CREATE OR REPLACE TEMP MACRO descendants(id) AS TABLE
    WITH RECURSIVE walk(sample_id, depth) AS (
        SELECT child_id, 1 FROM lineage_edges WHERE parent_id = sample_ref(id)
        UNION
        SELECT e.child_id, w.depth + 1 FROM lineage_edges e JOIN walk w ON e.parent_id = w.sample_id
        WHERE w.depth < 10000
    )
    SELECT sample_id, min(depth) AS depth FROM walk GROUP BY sample_id ORDER BY depth, sample_id;
"""
# `status` is the latest decision per sample and filter. `_status_runs` are the runs that can still hold one: per
# filter, its latest run over every sample (`base`: its commit summary says `covers_all`, and it decided each sample
# once) and the runs after it; all of the filter's runs when none covered every sample. The runs before a base are
# superseded for every sample, and their segments are not read (`status_segment_paths`); of the rest, only the
# decisions after the base are sorted by version. So a query of `status` costs what the current decisions cost, not
# the history: after twenty runs over every sample it reads one run's decisions.
# VIEWS_SQL one statement at a time, by the name it creates (a statement ends at a `;` that ends its line).
VIEW_DDL: dict[str, str] = {
    re.search(r"TEMP (?:VIEW|MACRO) (\w+)", ddl).group(1): ddl  # type: ignore[union-attr]
    for ddl in re.split(r";\n", VIEWS_SQL) if ddl.strip()
}
VIEW_NAMES = ("samples", "_events", "_edges", "_status_base", "_status_tail", *VIEW_DDL, "build_members")
_NAMED = re.compile(r"\b(" + "|".join(VIEW_NAMES) + r")\b", re.IGNORECASE)
# What each view and macro reads of the others (created before it).
VIEW_INPUTS: dict[str, set[str]] = {
    name: {m.lower() for m in _NAMED.findall(re.split(r"\bAS\b", ddl, maxsplit=1)[1])} - {name}
    for name, ddl in VIEW_DDL.items()
}
# Made by `create_views`, not DDL: the events segments of `_status_runs`' base runs, and of the others.
VIEW_INPUTS["_status_base"] = VIEW_INPUTS["_status_tail"] = {"_status_runs"}
# A query that lists what exists (duckdb_views(), information_schema, SHOW ..., DESCRIBE) or reads the catalog's
# own tables (`_lineage.x`) sees every view and table.
_LISTS = re.compile(
    r"duckdb_|information_schema|pg_catalog|sqlite_|_lineage|\bshow\b|\bdescribe\b|\bpragma\b", re.IGNORECASE
)


def tables_read(views: set[str] | None) -> set[str] | None:
    """The catalog tables `create_views(..., views)` reads (None: all)."""
    if views is None:
        return None
    wanted = _with_inputs(views)
    segments = {"segments"} if wanted & {"samples", "_events", "_edges", "_status_base", "_status_tail"} else set()
    # `commits` is always there (the latest version is read from it), but copied whole only when a view reads it.
    return {*segments, *(wanted & set(TABLES)), *({"builds"} if "build_members" in wanted else set())}


def views_named(query: str) -> set[str] | None:
    """The views and macros `query` names (a superset: a name in a string or a comment counts), or None (all)
    when it lists the catalog's contents. Creating only these keeps a small query's cost independent of the
    number of segments; a name the text does not show (built at run time) fails as an unknown table."""
    if _LISTS.search(query):
        return None
    return {m.lower() for m in _NAMED.findall(query)}


def segment_view(con: duckdb.DuckDBPyConnection, name: str, data: Location, kind: str, paths: list[str]) -> None:
    """A temporary view `name` over segments of `kind` (samples or events), `paths` as `segment_paths` gives."""
    data.register(con)
    con.execute(_segment_view(name, [data.sql_path(p) for p in paths], SEGMENT_SCHEMAS[kind]))


def create_views(
    con: duckdb.DuckDBPyConnection, data: Location, as_of: int | None, names: set[str] | None = None
) -> None:
    """Temporary views over the registered segments, as of `as_of` (default: the latest version): all of them, or
    `names` and what they read. Views over many segments cost DuckDB a bind each (~5 ms per 1,000 segments)."""
    version = as_of if as_of is not None else current_version(con)
    wanted = set(VIEW_NAMES) if names is None else _with_inputs(names)
    # Segments never change once written, so their Parquet footers can be kept: a session's second query skips
    # parsing them (`count(*)` over 1,000,000 compacted samples: 3.0 -> 1.5 ms). DuckDB still re-reads a footer
    # whose file is newer than its copy. Set once per instance: a reader's instance may be locked down since (user
    # SQL takes the shared instance over, `StoreCore._kept_target`), and every locked one set it before locking.
    if not con.execute("SELECT current_setting('parquet_metadata_cache')").fetchall()[0][0]:
        con.execute("SET parquet_metadata_cache = true")
    if "samples" in wanted:
        segment_view(con, "samples", data, "samples", segment_paths(con, "samples", version))
    if "_events" in wanted:
        segment_view(con, "_events", data, "events", segment_paths(con, "events", version))
    if "_edges" in wanted:
        segment_view(con, "_edges", data, "edges", segment_paths(con, "edges", version))
    for name, ddl in VIEW_DDL.items():
        if name == "status" and "_status_base" in wanted:
            for base in (True, False):
                paths = status_segment_paths(con, version, base=base)
                segment_view(con, "_status_base" if base else "_status_tail", data, "events", paths)
        if name in wanted:
            con.execute(ddl.format(schema=SCHEMA, v=int(version), live=LIVE_AT.format(v=int(version))))
    if "build_members" in wanted:
        con.execute(_build_members_view(con, data, int(version)))


# The events segments live at the views' version that hold events of `_status_runs` (its base runs, or the others):
# a run's own segments (ref_id is the run), and those of compactions (ref_id is no run), which mix runs and are
# filtered by run_id row by row.
STATUS_SEGMENTS_SQL = """
SELECT path FROM {schema}.segments s
WHERE s.kind = 'events' AND {live} AND (s.ref_id IN (SELECT run_id FROM _status_runs WHERE base = $base)
    OR NOT EXISTS (SELECT 1 FROM {schema}.runs r WHERE r.run_id = s.ref_id))
ORDER BY s.version, s.segment_id
"""


def status_segment_paths(con: duckdb.DuckDBPyConnection, version: int, *, base: bool) -> list[str]:
    """The events segments the `status` view as of `version` reads (after `_status_runs` is made) for its base
    runs, or for the runs after them: none of superseded runs."""
    sql = STATUS_SEGMENTS_SQL.format(schema=SCHEMA, live=LIVE_AT.format(v=int(version)))
    return [r[0] for r in con.execute(sql, {"base": base}).fetchall()]


def _with_inputs(names: set[str]) -> set[str]:
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += VIEW_INPUTS.get(name, set())
    return wanted


def _build_members_view(con: duckdb.DuckDBPyConnection, data: Location, version: int) -> str:
    """`build_members(name, build_version, sample_id)`: every build version's members file, read when queried."""
    rows = con.execute(
        f"SELECT name, build_version, members_path FROM {SCHEMA}.builds WHERE version <= ? "
        "ORDER BY name, build_version",
        [version],
    ).fetchall()
    if not rows:
        return ("CREATE OR REPLACE TEMP VIEW build_members AS SELECT CAST(NULL AS VARCHAR) AS name, "
                "CAST(NULL AS BIGINT) AS build_version, CAST(NULL AS VARCHAR) AS sample_id WHERE false")
    parts = [
        f"SELECT {sql_string(name)} AS name, CAST({int(v)} AS BIGINT) AS build_version, sample_id "
        f"FROM read_parquet({sql_string(str(data.store_root / path))})"
        for name, v, path in rows
    ]
    return "CREATE OR REPLACE TEMP VIEW build_members AS " + " UNION ALL ".join(parts)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    crash_point("catalog_before_commit")
    con.execute("COMMIT")
    crash_point("catalog_committed")


def commit(
    con: duckdb.DuckDBPyConnection,
    *,
    version: int,
    kind: str,
    ref_id: str | None,
    summary: dict[str, object],
    segments: Sequence[Segment],
    rows: dict[str, pa.Table],
    retire: Sequence[str] = (),
) -> int:
    """Register segments and catalog rows as `version`, and retire the segments `retire` (ids, replaced by a
    compaction) at it, atomically.

    The writer lock guarantees nobody else committed since the writer read the version it builds on.
    """
    with transaction(con):
        found = current_version(con)
        if found != version - 1:
            raise StoreError(f"store moved from version {version - 1} to {found} during the write; retry")
        now = datetime.now(UTC)
        con.execute(
            f"INSERT INTO {SCHEMA}.commits VALUES (?, ?, ?, ?, ?)",
            [version, now, kind, ref_id, json.dumps(summary, sort_keys=True)],
        )
        for s in segments:
            con.execute(
                f"INSERT INTO {SCHEMA}.segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [s.segment_id, s.kind, s.path, s.row_count, s.size_bytes, s.sha256, ref_id, version],
            )
            crash_point("catalog_segment_inserted")
        if retire:
            retired = con.execute(
                f"UPDATE {SCHEMA}.segments SET retired_version = $v WHERE list_contains($ids, segment_id) "
                "AND retired_version IS NULL",
                {"v": version, "ids": list(retire)},
            ).fetchall()[0][0]
            if retired != len(retire):
                raise StoreError(f"compaction found {retired} of its {len(retire)} segments live; retry")
        for table, data in rows.items():
            con.register("_incoming", data)
            con.execute(f"INSERT INTO {SCHEMA}.{table} SELECT * REPLACE (? AS version) FROM _incoming", [version])
            con.unregister("_incoming")
    return version
