"""Stage an input in one streaming pass: extract every record, keep the narrow columns, draft the segment.

The reader's batches stream through a single DuckDB query (planned once; DuckDB's threads take batches as
they come). Each result batch is split two ways: the columns that parent resolution and error reporting need
go into the `staged` table, and the rows without errors, already in the SAMPLES schema, go to a Parquet draft
that a background thread compresses meanwhile. When resolution changes nothing (no duplicate, no row
already stored, generation and parents as drafted) the draft is the segment; otherwise it is rewritten.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.errors import Reject
from lineage.ingest.extract import build_sql
from lineage.ingest.options import IngestOptions
from lineage.ingest.readers import RAW_SCHEMA, Reader
from lineage.ingest.writer import BackgroundWriter
from lineage.schemas import SAMPLES, select_cast_sql

ROW_GROUP_ROWS = 65_536
# Result batches (and so row groups) hold about this much, however long the records: bounded memory.
BATCH_BYTES = 32 << 20
VECTOR_ROWS = 2048  # DuckDB's vector size: batches are made of whole vectors
SMALL_ROWS = 4096  # an input of one batch of at most this many rows is staged in one piece (see `_stream`)
UNIQUE_COLUMNS = ("sample_id", "content_hash", "external_id", "text", "record", "input_row")
BLOOM_COLUMNS = ("sample_id", "content_hash", "external_id")  # as compaction writes them (`lineage.compaction`)
Progress = Callable[[int, int | None], None]

# What resolve and the error report read, per input row. `generation` is the drafted one.
STAGED_DDL = """
CREATE TABLE staged (input_row BIGINT, sample_id VARCHAR, content_hash VARCHAR, external_id VARCHAR,
    source VARCHAR, origin VARCHAR, generator VARCHAR, given_generation BIGINT, parent_refs VARCHAR[],
    errors VARCHAR[], generation INTEGER)
"""
STAGED_COLUMNS = [
    "input_row", "sample_id", "content_hash", "external_id", "source", "origin", "generator", "given_generation",
    "parent_refs", "errors", "generation",
]  # fmt: skip

# The draft's generation and parents are what resolve gives when nothing in the batch changes them: 0 for
# real data, else the given generation (one that contradicts the parents is an error), and the parent
# references as written (right when they are sample ids). Rows with errors get no generation (no cast fails).
DRAFT_SQL = """
SELECT {casts}, given_generation, parent_refs, errors FROM (
    SELECT *, $batch_id AS batch_id, $uri AS input_uri, $now AS ingested_at, $version AS version,
        CASE WHEN len(errors) > 0 THEN NULL WHEN origin = 'real' THEN 0 ELSE coalesce(given_generation, 1) END
            AS generation,
        parent_refs AS parent_ids
    FROM ({extract})
)
"""


@dataclass(frozen=True)
class Batch:
    """What every row of a segment shares."""

    batch_id: str
    uri: str
    now: datetime
    version: int


@dataclass
class Staged:
    rejects: list[Reject] = field(default_factory=list)  # rows the reader itself rejected
    draft_rows: int = 0  # rows without errors, all in the draft
    draft_in_order: bool = True
    batch_rows: int = ROW_GROUP_ROWS  # rows per result batch and row group


def stage(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    opts: IngestOptions,
    models: list[str],
    batch: Batch,
    draft: Path,
    progress: Progress,
) -> Staged:
    """Fill the `staged` table and write the draft segment to `draft`."""
    extract, params = build_sql(opts, models)
    sql = DRAFT_SQL.format(casts=select_cast_sql(SAMPLES), extract=extract)
    params |= {"batch_id": batch.batch_id, "uri": batch.uri, "now": batch.now, "version": batch.version}
    con.execute(STAGED_DDL)
    source = _Source(reader)
    result = Staged(batch_rows=_batch_rows(source.first))
    insert = con.cursor()  # the query's result streams on `con`; the inserts need a connection of their own
    try:
        insert.execute(f"USE {con.execute('SELECT current_database()').fetchall()[0][0]}")  # where `staged` is
        con.register("raw", pa.RecordBatchReader.from_batches(RAW_SCHEMA, source.batches()))
        with BackgroundWriter(
            draft, SAMPLES, row_group_rows=result.batch_rows, unique=UNIQUE_COLUMNS, order_by="input_row",
            bloom=BLOOM_COLUMNS,
        ) as writer:
            for rows in _stream(con, sql, params, source, result.batch_rows):
                insert.register("rows", rows)
                insert.execute(f"INSERT INTO staged SELECT {', '.join(STAGED_COLUMNS)} FROM rows")
                insert.unregister("rows")
                writer.write(_good(rows).select(SAMPLES.names))
                progress(source.done, reader.total)
        result.draft_rows, result.draft_in_order = writer.rows, writer.ascending
    finally:
        insert.close()
        con.unregister("raw")
    result.rejects = source.rejects
    return result


def _batch_rows(first: pa.RecordBatch | None) -> int:
    """Rows per result batch: about BATCH_BYTES of rows like the first ones (each holds its record twice,
    verbatim and as text), at most ROW_GROUP_ROWS."""
    if first is None or first.num_rows == 0:
        return ROW_GROUP_ROWS
    row_bytes = 2 * first.column("record").nbytes // first.num_rows + 256
    rows = min(ROW_GROUP_ROWS, BATCH_BYTES // row_bytes)
    return max(VECTOR_ROWS, rows - rows % VECTOR_ROWS)


def _stream(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object], source: _Source, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The query's result batches; an error the reader raised inside the scan comes out as itself."""
    try:
        if source.small:
            # All of a small input at once through `execute`, which skips the relation API's bind of this long
            # query (~28 ms of a 100-record ingest's ~200); its result is copied whole, so only for small inputs.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
                yield from con.execute(sql, params).to_arrow_reader(batch_rows)
        else:
            yield from con.sql(sql, params=params).to_arrow_reader(batch_rows)
    except Exception:
        if source.error is not None:
            raise source.error from None
        raise


def _good(rows: pa.RecordBatch) -> pa.RecordBatch:
    """The rows without errors."""
    failed = pc.greater(pc.list_value_length(rows.column("errors")), 0)
    return rows.filter(pc.invert(failed)) if pc.any(failed).as_py() else rows


class _Source:
    """The reader as a stream of record batches for DuckDB, noting rejects, progress and any error.

    The first batch is read at once (in the caller's thread), so its records can size the result batches, and so
    is the second, to tell a small input (one batch of at most SMALL_ROWS rows) from a stream.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.rejects: list[Reject] = []
        self.done = 0
        self.error: BaseException | None = None
        self._read = self._batches()
        self.first = next(self._read, None)
        self._second = next(self._read, None) if self.first is not None else None
        self.small = self._second is None and (self.first is None or self.first.num_rows <= SMALL_ROWS)

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.first is not None:
            yield self.first
        if self._second is not None:
            yield self._second
        try:
            yield from self._read
        except BaseException as exc:
            self.error = exc
            raise

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for raw in self.reader:
            self.rejects.extend(raw.rejects)
            self.done += raw.progress
            yield from raw.rows.to_batches()
