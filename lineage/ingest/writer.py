"""A Parquet writer on a background thread: pyarrow compresses one batch while DuckDB computes the next.

Parquet encoding and zstd run without the GIL, so on two cores the write overlaps the extraction instead of
following it. Memory stays bounded: at most `depth` batches wait in the queue, and one row group is gathered.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lineage.core.faults import fail_point

_DONE = object()


class BackgroundWriter:
    """`write(batch)` queues a batch (cast to `schema`, nullability included); `close()` waits for the file.

    Batches are gathered into row groups of at most `row_group_rows` rows (or one larger batch). Columns in
    `unique` (a value per row) skip the dictionary encoding that would only be tried and dropped. `rows` counts
    what was written; `ascending` tells whether the `order_by` column rose strictly from the first batch to the
    last, for callers that need the file in that order. Columns in `bloom` get a Bloom filter per row group: an
    ingest's segment is in input order, so min/max statistics cannot skip its row groups for a lookup by id, and
    only the filter lets DuckDB skip them (`lineage show`, ancestors' provenance, later ingests' lookups).
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        row_group_rows: int,
        unique: Collection[str] = (),
        order_by: str | None = None,
        depth: int = 2,
        bloom: Collection[str] = (),
    ) -> None:
        self.path, self.schema, self.order_by = path, schema, order_by
        self.row_group_rows = row_group_rows
        self.dictionary = [name for name in schema.names if name not in unique]
        self.bloom = {name: {"ndv": row_group_rows, "fpp": 0.01} for name in bloom}
        self.rows, self.ascending = 0, True
        self._last: int | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = False
        self._thread = threading.Thread(target=self._run, name=f"parquet-writer-{path.name}", daemon=True)
        self._thread.start()

    def write(self, batch: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        if batch.num_rows == 0:
            return
        if self.order_by is not None:
            self._track_order(batch.column(self.order_by).to_numpy())
        self.rows += batch.num_rows
        self._queue.put(batch)

    def _track_order(self, values: np.ndarray) -> None:
        if (self._last is not None and values[0] <= self._last) or bool(np.any(values[1:] <= values[:-1])):
            self.ascending = False
        self._last = int(values[-1])

    def close(self) -> None:
        """Flush and close the file; re-raise what went wrong in the writer thread."""
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        self._abort = True  # the thread drops what is still queued, closes the file and ends
        self._queue.put(_DONE)
        self._thread.join()

    def _write_group(self, writer: pq.ParquetWriter, group: list[pa.RecordBatch]) -> None:
        fail_point("parquet_write_group")
        table = pa.Table.from_batches(group, self.schema)
        writer.write_table(table, row_group_size=table.num_rows)

    def _run(self) -> None:
        writer: pq.ParquetWriter | None = None
        done = False  # whether _DONE was taken: after it nobody puts again, so draining on would hang forever
        try:
            options = {"bloom_filter_options": self.bloom} if self.bloom else {}
            writer = pq.ParquetWriter(
                self.path, self.schema, compression="zstd", use_dictionary=self.dictionary, **options
            )
            group: list[pa.RecordBatch] = []
            while not (done := (item := self._queue.get()) is _DONE):
                if self._abort:
                    continue
                assert isinstance(item, pa.RecordBatch)
                if group and sum(b.num_rows for b in group) + item.num_rows > self.row_group_rows:
                    self._write_group(writer, group)
                    group = []
                group.append(item.cast(self.schema))
            if group and not self._abort:
                self._write_group(writer, group)  # a full disk fails here, after _DONE was taken
        except BaseException as exc:  # handed to the caller's thread; keep draining so it never blocks
            self._error = exc
            while not done:
                done = self._queue.get() is _DONE
        finally:
            if writer is not None:
                try:
                    writer.close()
                except BaseException as exc:
                    self._error = self._error or exc
