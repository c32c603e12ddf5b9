"""Ingest: read an input in batches, type-check and hash every record, resolve parents, commit one segment.

The store is untouched until the end: each row's resolution columns are staged in the ingest's own DuckDB
database (which spills to STORE/tmp/<batch_id>/ past its memory limit) while the rows themselves are drafted
as Parquet in that directory; the draft, or its rewrite when resolution changed it, becomes one segment,
registered with the batch in a single catalog transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Unpack

import duckdb
import pyarrow as pa

from lineage.core import catalog
from lineage.core.edgeindex import index_segments
from lineage.core.edges import write_edges
from lineage.core.faults import crash_point
from lineage.core.ids import uuid7
from lineage.core.sqlutil import sql_string
from lineage.errors import IngestError, InputError, LineageError, Reject, option
from lineage.ingest.identity import identify
from lineage.ingest.lookup import Segments, stored_hashes
from lineage.ingest.options import IngestFields, IngestOptions
from lineage.ingest.readers import JsonlReader, Reader, open_reader
from lineage.ingest.resolve import resolve
from lineage.ingest.segment import write_samples
from lineage.ingest.staging import Batch, Progress, stage
from lineage.models import output_generations
from lineage.schemas import BATCHES
from lineage.sets import add_members

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore, Transaction

__all__ = ["IngestOptions", "IngestResult", "ingest", "ingest_many"]


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    input_uri: str
    rows_read: int
    rows_stored: int
    rows_present: int
    rows_rejected: int
    version: int
    rejects: list[Reject] = field(default_factory=list)
    rows_duplicate: int = 0  # new samples whose text an earlier sample has (exact-dedup decides which to keep)

    def summary(self) -> str:
        text = f"{self.rows_stored:,} new, {self.rows_present:,} already present"
        if self.rows_duplicate:
            noun = "duplicate" if self.rows_duplicate == 1 else "duplicates"
            text += f", {self.rows_duplicate:,} {noun} of earlier text (kept; exact-dedup decides)"
        if self.rows_rejected:
            text += f", {self.rows_rejected:,} rejected"
        return f"{text} (batch {self.batch_id}, version {self.version})"


def ingest(
    store: StoreCore, data: Any, /, *, progress: Progress | None = None, **options: Unpack[IngestFields]
) -> IngestResult:
    """Ingest `data` (path, Arrow table, Polars frame, Hugging Face dataset or iterable of dicts) with provenance
    `options`."""
    return ingest_many(store, [data], progress=progress, **options)[0]


def ingest_many(
    store: StoreCore, inputs: list[Any], /, *, progress: Progress | None = None, **options: Unpack[IngestFields]
) -> list[IngestResult]:
    """Ingest several inputs in one commit: one batch per input, in order, so a later input's parents may be
    records of an earlier one. Any input refused refuses them all."""
    tags = options.get("tags")
    fields: dict[str, Any] = {**options}
    if tags is not None:
        fields["tags"] = (tags,) if isinstance(tags, str) else tuple(tags)
    opts = IngestOptions(**fields)
    readers = [open_reader(data, input_format=opts.input_format) for data in inputs]
    for reader in readers:
        if isinstance(reader, JsonlReader):
            reader.max_record_bytes = opts.max_record_bytes
    batch_ids = [uuid7() for _ in readers]
    summary: dict[str, Any] = {"input": readers[0].uri if len(readers) == 1 else [r.uri for r in readers]}
    results: list[IngestResult] = []
    members: list[str] = []
    with store.transaction("ingest", batch_ids[0], summary) as txn:
        for reader, batch_id in zip(readers, batch_ids, strict=True):
            result, ids = _run_one(store, txn, reader, opts, batch_id, progress or _no_progress)
            results.append(result)
            members += ids
        if opts.set_name:
            add_members(store, txn, opts.set_name, members)
        summary.update(
            stored=sum(r.rows_stored for r in results),
            present=sum(r.rows_present for r in results),
            rejected=sum(r.rows_rejected for r in results),
        )
    # After the commit, so a failed ingest leaves nothing behind; a kill before this leaves segments indexed on
    # first use (the indexes are a pure function of each segment).
    index_segments(store.data, txn.segments)
    return results


def _run_one(
    store: StoreCore, txn: Transaction, reader: Reader, opts: IngestOptions, batch_id: str, progress: Progress
) -> tuple[IngestResult, list[str]]:
    try:
        with _work_connection(store, batch_id, opts.effective_memory_limit()) as con:
            return _run(store, txn, con, reader, opts, batch_id, progress)
    except duckdb.OutOfMemoryException:
        raise LineageError(
            f"`{reader.uri}`: ingest ran out of its memory limit ({opts.effective_memory_limit()}); "
            f"raise it with {option('memory_limit')}, or lower {option('max_record_bytes')}"
        ) from None
    finally:
        store.remove_scratch(batch_id)


def _no_progress(done: int, total: int | None) -> None:
    return None


# Idle DuckDB instances of finished ingests, by memory limit, with the number of ingests each served. Starting an
# instance costs ~19 ms of CPU, a tenth of a small ingest; a connection to an idle one with a fresh in-memory
# database attached costs ~1 ms. Each keeps the Parquet footers it read (segments never change), so the next
# ingest's lookups do not parse them again (at 1,000 ingests: 177 -> 134 ms of CPU per 100-record ingest); after
# _IDLE_USES ingests an instance is closed, which bounds the footers it holds (of segments compaction replaced).
_IDLE: dict[str, list[tuple[duckdb.DuckDBPyConnection, int]]] = {}
_IDLE_LOCK = threading.Lock()
_IDLE_MAX = 2  # per memory limit: what concurrent ingests in one process may reuse; more are closed
_IDLE_USES = 1000


@contextmanager
def _work_connection(store: StoreCore, batch_id: str, memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The ingest's own DuckDB connection: its tables in an in-memory database of their own (`work`, dropped at the
    end), spilling to STORE/tmp/<batch_id>/ past `memory_limit`, in an instance reused from an earlier ingest."""
    spill = sql_string(str(store.scratch_dir(batch_id)))
    with _IDLE_LOCK:
        idle = _IDLE.get(memory_limit, [])
        db, uses = idle.pop() if idle else (None, 0)
    if db is not None:
        try:
            db.execute(f"SET temp_directory = {spill}")
        except duckdb.Error:  # it spilled before: DuckDB keeps the directory it used for the instance's life
            db.close()
            db = None
    if db is None:
        db, uses = duckdb.connect(":memory:"), 0
        db.execute("SET memory_limit = ?", [memory_limit])
        db.execute("SET parquet_metadata_cache = true")
        db.execute(f"SET temp_directory = {spill}")
    con = db.cursor()
    reusable = False
    try:
        con.execute("ATTACH ':memory:' AS work")
        con.execute("USE work")
        yield con
        con.execute("USE memory")
        con.execute("DETACH work")
        # Remote data: never reused. The instance keeps the `lineage://` filesystem it was given (`Location.register`),
        # which would read another store's files in the next ingest; a remote ingest's network time dwarfs a start.
        reusable = uses + 1 < _IDLE_USES and store.data.posix
    finally:
        con.close()
        with _IDLE_LOCK:
            idle = _IDLE.setdefault(memory_limit, [])
            if reusable and len(idle) < _IDLE_MAX:
                idle.append((db, uses + 1))
                db = None
        if db is not None:
            db.close()


def _run(
    store: StoreCore,
    txn: Transaction,
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    opts: IngestOptions,
    batch_id: str,
    progress: Progress,
) -> tuple[IngestResult, list[str]]:
    """One input's batch; returns it and the sample ids of its accepted rows (for --set)."""
    started = datetime.now(UTC)
    found = _catalog_state(store)
    models = found.models
    draft = store.scratch_dir(batch_id) / "draft.parquet"
    staged = stage(con, reader, opts, models, Batch(batch_id, reader.location, started, txn.version), draft, progress)
    crash_point("ingest_staged")
    rows_read = con.execute("SELECT count(*) FROM staged").fetchall()[0][0] + len(staged.rejects)
    if rows_read == 0:
        raise InputError(f"`{reader.uri}`: no records (the input is empty)")
    segments = _existing_view(store, con, txn, found)
    _model_generations(store, con, models)
    rejects = _reject_until_stable(con, staged.rejects, opts, reader.uri, found.legacy, segments)
    stored = con.execute("SELECT count(*) FROM nodes").fetchall()[0][0]
    duplicates = 0
    if stored:
        write_samples(con, txn, batch_id, draft, staged, stored)
        _write_edges(store, con, txn)
        stored_hashes(con, "same_text", keys_sql="SELECT content_hash FROM nodes", segments=segments)
        duplicates = con.execute(DUPLICATES_SQL).fetchall()[0][0]
    present = rows_read - stored - len(rejects)
    result = IngestResult(
        batch_id, reader.uri, rows_read, stored, present, len(rejects), txn.version, rejects, duplicates
    )
    ids: list[str] = []
    if opts.set_name:
        # A row already stored joins the set as the sample it matched (under format 1 its id was another).
        rows = con.execute(
            "SELECT DISTINCT coalesce(p.sample_id, c.sample_id) FROM cand c LEFT JOIN present p USING (input_row)"
        ).fetchall()
        ids = [r[0] for r in rows]
    txn.add_rows("batches", _batch_row(result, reader, opts, started))
    crash_point("ingest_before_commit")
    return result, ids


def _write_edges(store: StoreCore, con: duckdb.DuckDBPyConnection, txn: Transaction) -> None:
    """The edges segment of the samples segment just written, when its samples have parents (`lineage.core.edges`):
    read back from that segment, so the edges are exactly its unnest(parent_ids)."""
    if not con.execute("SELECT count(*) FROM nodes WHERE len(parent_refs) > 0").fetchall()[0][0]:
        return
    samples = txn.segments[-1]
    store.data.register(con)
    write_edges(con, txn, uuid7(), f"read_parquet({sql_string(store.data.sql_path(samples.path))})")
    crash_point("ingest_edges_written")


# New samples whose text is already in the store (any source; `same_text`: the stored samples with one of the new
# samples' content hashes) or in an earlier new sample of this input.
DUPLICATES_SQL = """
SELECT count(*) FROM (
    SELECT content_hash, row_number() OVER (PARTITION BY content_hash ORDER BY input_row) AS k FROM nodes
) WHERE k > 1 OR content_hash IN (SELECT content_hash FROM same_text)
"""


@dataclass(frozen=True)
class _CatalogState:
    """What an ingest reads of the catalog, in one visit (the writer lock is held: it cannot change meanwhile)."""

    models: list[str]  # registered model names
    samples: list[str]  # the live samples segments
    legacy: int | None  # the last version of format-1 samples, if any


def _catalog_state(store: StoreCore) -> _CatalogState:
    # The catalog's own tables, not `store.sql`: a user-facing query locks its DuckDB instance down, and each
    # catalog read after it would start a new one (~6 ms of CPU each, several per ingest).
    with store.catalog() as cat:
        models = [r[0] for r in cat.execute(f"SELECT name FROM {catalog.SCHEMA}.models ORDER BY name").fetchall()]
        return _CatalogState(models, catalog.segment_paths(cat, "samples", None), catalog.legacy_version(cat))


def _existing_view(
    store: StoreCore, con: duckdb.DuckDBPyConnection, txn: Transaction, found: _CatalogState
) -> Segments:
    """The `existing` view of the store's samples and of those this command wrote before (earlier inputs); returns
    those segments, for the lookups that can use their indexes."""
    written = [s.path for s in txn.segments if s.kind == "samples"]
    catalog.segment_view(con, "existing", store.data, "samples", found.samples + written)
    return Segments(store.data, found.samples, written)


def _model_generations(store: StoreCore, con: duckdb.DuckDBPyConnection, models: list[str]) -> None:
    """`model_gen`: the output generation of each registered model this input names as generator."""
    con.execute("CREATE OR REPLACE TEMP TABLE model_gen (name VARCHAR, generation BIGINT)")
    if not models:
        return
    used = con.execute(
        "SELECT DISTINCT generator FROM staged WHERE list_contains(?::VARCHAR[], generator)", [models]
    ).fetchall()
    if used:
        gens = output_generations(store, [r[0] for r in used])
        con.executemany("INSERT INTO model_gen VALUES (?, ?)", [list(item) for item in gens.items()])


def _reject_until_stable(
    con: duckdb.DuckDBPyConnection,
    read_rejects: list[Reject],
    opts: IngestOptions,
    uri: str,
    legacy: int | None,
    segments: Segments,
) -> list[Reject]:
    """Check identities, resolve parents; with --skip-bad, drop failing rows (and their children) until none fail."""
    rows = con.execute(
        "SELECT input_row, split_part(errors[1], chr(9), 1), split_part(errors[1], chr(9), 2) "
        "FROM staged WHERE len(errors) > 0"
    ).fetchall()
    conflicts = identify(con, id_field=opts.id_field, legacy_version=legacy, segments=segments)
    rejects = read_rejects + [Reject(*r) for r in rows] + conflicts
    con.execute("CREATE OR REPLACE TEMP TABLE excluded (input_row BIGINT)")
    if rejects and not opts.skip_bad:
        _refuse(uri, rejects)
    if conflicts:
        con.executemany("INSERT INTO excluded VALUES (?)", [[r.line] for r in conflicts])
    while found := resolve(con, field=opts.parent_field, allow_missing=opts.allow_missing_parents, segments=segments):
        if not opts.skip_bad:
            _refuse(uri, found)
        con.executemany("INSERT INTO excluded VALUES (?)", [[r.line] for r in found])
        rejects += found
    return sorted(rejects, key=lambda r: r.line)


def _refuse(uri: str, rejects: list[Reject]) -> None:
    ordered = sorted(rejects, key=lambda r: r.line)
    raise IngestError(uri, ordered[:10], total=len(ordered))


def _batch_row(result: IngestResult, reader: Reader, opts: IngestOptions, started: datetime) -> pa.Table:
    row = {
        "batch_id": result.batch_id,
        "input_uri": reader.location,
        "input_sha256": reader.sha256,
        "input_format": reader.format,
        "options": opts.as_json(),
        "rows_read": result.rows_read,
        "rows_stored": result.rows_stored,
        "rows_present": result.rows_present,
        "rows_rejected": result.rows_rejected,
        "rejects": [{"line": r.line, "field": r.field, "reason": r.reason} for r in result.rejects],
        "started_at": started,
        "finished_at": datetime.now(UTC),
        "version": result.version,
        "rows_duplicate": result.rows_duplicate,
    }
    return pa.Table.from_pylist([row], schema=BATCHES)
