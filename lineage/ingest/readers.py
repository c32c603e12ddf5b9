"""Readers turn any input into batches of (input_row, record): the record as one JSON object text.

JSONL lines are kept verbatim (that is what makes exports byte-faithful); Parquet, CSV, Arrow, Polars
and Python dicts are rendered to JSON by DuckDB or `json.dumps`. Lines that are not UTF-8 are rejected
here, before any parsing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.errors import InputError, Reject
from lineage.segments import file_sha256

BLOCK_BYTES = 16 << 20
# DuckDB scans an Arrow table one record batch per thread: several per block keep both cores busy.
SCAN_BATCH_ROWS = 16_384
ARROW_BATCH_ROWS = 65_536
RAW_SCHEMA = pa.schema([("input_row", pa.int64()), ("record", pa.string())])


@dataclass
class RawBatch:
    rows: pa.Table  # RAW_SCHEMA
    rejects: list[Reject] = field(default_factory=list)
    progress: int = 0  # units of the reader's `total` consumed by this batch
    lines: int = 0  # input lines this batch covers, blank and rejected ones included


class Reader:
    """An input: where it came from, its format and checksum, and its batches."""

    uri: str
    format: str
    total: int | None = None  # for progress: bytes for files, rows for in-memory data
    sha256: str | None = None

    def __iter__(self) -> Iterator[RawBatch]:
        raise NotImplementedError


def open_reader(data: Any, *, input_format: str | None = None) -> Reader:
    """Choose a reader for a path, an Arrow table, a Polars frame or an iterable of dicts."""
    if isinstance(data, str | os.PathLike):
        return _file_reader(Path(data), input_format)
    if isinstance(data, pa.Table | pa.RecordBatch):
        return ArrowReader(pa.table(data) if isinstance(data, pa.RecordBatch) else data, "<arrow>")
    if type(data).__module__.startswith("polars"):
        return ArrowReader(data.to_arrow(), "<polars>")
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
        return DictReader(data)
    raise InputError(f"cannot ingest a {type(data).__name__}: give a path, Arrow table, Polars frame or dicts")


def _file_reader(path: Path, input_format: str | None) -> Reader:
    if not path.is_file():
        raise InputError(f"`{path}`: no such file")
    fmt = input_format or _guess_format(path)
    if fmt == "jsonl":
        return JsonlReader(path)
    if fmt in ("parquet", "csv"):
        return DuckdbFileReader(path, fmt)
    raise InputError(f"`{path}`: unknown input format `{fmt}` (jsonl, parquet or csv)")


def _guess_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
        (".parquet", "parquet"),
        (".csv", "csv"),
    ):
        if name.endswith(suffix):
            return fmt
    raise InputError(f"`{path}`: cannot tell the format from the name; pass --format jsonl|parquet|csv")


class JsonlReader(Reader):
    """JSON Lines, plain or gzip, read in blocks and split into lines without a Python loop per line."""

    format = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path, self.uri = path, str(path)
        self.total = path.stat().st_size
        self._gz = path.name.endswith(".gz")

    def __iter__(self) -> Iterator[RawBatch]:
        digest = hashlib.sha256()
        line_no, rest = 0, b""
        with open(self.path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if self._gz else raw
            while True:
                before = raw.tell()
                # Read after the carried-over partial line, into a fresh buffer that the batch then shares.
                buf = bytearray(len(rest) + BLOCK_BYTES)
                buf[: len(rest)] = rest
                view = memoryview(buf)
                got = stream.readinto(view[len(rest) :])
                if not got:
                    break
                if not self._gz:
                    digest.update(view[len(rest) : len(rest) + got])
                end = len(rest) + got
                cut = buf.rfind(b"\n", 0, end) + 1
                rest = bytes(view[cut:end])
                batch = _split_lines(view[:cut], line_no, self.uri) if cut else RawBatch(RAW_SCHEMA.empty_table())
                line_no += batch.lines
                batch.progress = raw.tell() - before
                yield batch
            if rest:
                yield _split_lines(memoryview(rest + b"\n"), line_no, self.uri)
        self.sha256 = file_sha256(self.path) if self._gz else digest.hexdigest()


def _split_lines(block: memoryview, first: int, uri: str) -> RawBatch:
    """Lines of a block that ends with a newline; blank lines are skipped, line numbers are 1-based.

    No line is copied to find it: the lines are the block's bytes cut at each newline (the newline stays at
    the end of its line until the one copy that strips it and any CR before it).
    """
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    large = len(block) >= 1 << 31
    offsets = np.empty(len(ends) + 1, dtype=np.int64 if large else np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    binary = pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    )
    rows = pa.array(np.arange(first + 1, first + len(ends) + 1, dtype=np.int64))
    strings, rejects = _decode(binary, rows, uri)
    strings = pc.utf8_rtrim(strings, characters="\r\n").cast(pa.string())
    keep = _keep(strings, data[offsets[:-1]], bool(rejects))
    table = pa.table({"input_row": rows, "record": strings})
    if keep is not None:
        table = table.filter(keep)
    rows_table = pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_BATCH_ROWS), RAW_SCHEMA)
    return RawBatch(rows_table, rejects, lines=len(ends))


def _keep(strings: pa.Array, first_bytes: np.ndarray, has_nulls: bool) -> pa.Array | None:
    """Which lines to keep: not rejected and not blank. None when that is all of them.

    Only a line whose first byte could start whitespace (ASCII space or control, or a non-ASCII character)
    is checked in full; JSON lines start with `{`.
    """
    maybe_blank = np.flatnonzero((first_bytes <= 32) | (first_bytes >= 128))
    if not has_nulls and len(maybe_blank) == 0:
        return None
    keep = np.ones(len(strings), dtype=bool)
    if len(maybe_blank):
        trimmed = pc.utf8_trim_whitespace(strings.take(pa.array(maybe_blank)))
        blank = pc.fill_null(pc.equal(pc.utf8_length(trimmed), 0), True).to_numpy(zero_copy_only=False)
        keep[maybe_blank[blank]] = False
    if has_nulls:
        keep &= pc.is_valid(strings).to_numpy(zero_copy_only=False)
    return pa.array(keep)


def _decode(binary: pa.BinaryArray, rows: pa.Array, uri: str) -> tuple[pa.Array, list[Reject]]:
    try:
        return binary.cast(pa.string()), []
    except pa.ArrowInvalid:
        pass
    values, rejects = [], []
    for line, raw in zip(rows.to_pylist(), binary.to_pylist(), strict=True):
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            values.append(None)
            rejects.append(Reject(line, "record", f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"))
    return pa.array(values, pa.string()), rejects


class DuckdbFileReader(Reader):
    """Parquet and CSV via DuckDB, each row rendered to a JSON object. CSV rows count from line 2."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.uri, self.format = path, str(path), fmt

    def __iter__(self) -> Iterator[RawBatch]:
        con = duckdb.connect()
        func = "read_parquet" if self.format == "parquet" else "read_csv"
        offset = 1 if self.format == "parquet" else 2
        try:
            reader = con.sql(
                f"SELECT CAST(row_number() OVER () - 1 + ? AS BIGINT) AS input_row, to_json(t)::VARCHAR AS record "
                f"FROM {func}(?) t",
                params=[offset, str(self.path)],
            ).to_arrow_reader(ARROW_BATCH_ROWS)
            for batch in reader:
                yield RawBatch(pa.table(batch), progress=batch.num_rows)
        except duckdb.Error as exc:
            raise InputError(f"`{self.path}`: cannot read as {self.format}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()
        self.sha256 = file_sha256(self.path)


class ArrowReader(Reader):
    format = "arrow"

    def __init__(self, table: pa.Table, uri: str) -> None:
        self.table, self.uri, self.total = table, uri, table.num_rows

    def __iter__(self) -> Iterator[RawBatch]:
        con = duckdb.connect()
        try:
            con.register("input_table", self.table)
            reader = con.sql(
                "SELECT CAST(row_number() OVER () AS BIGINT) AS input_row, to_json(t)::VARCHAR AS record "
                "FROM input_table t"
            ).to_arrow_reader(ARROW_BATCH_ROWS)
            for batch in reader:
                yield RawBatch(pa.table(batch), progress=batch.num_rows)
        finally:
            con.close()


class DictReader(Reader):
    format = "python"

    def __init__(self, records: Iterable[dict[str, Any]]) -> None:
        self.records, self.uri = records, "<python>"

    def __iter__(self) -> Iterator[RawBatch]:
        rows: list[int] = []
        texts: list[str] = []
        for i, rec in enumerate(self.records, start=1):
            rows.append(i)
            texts.append(json.dumps(rec, ensure_ascii=False, default=str))
            if len(rows) == ARROW_BATCH_ROWS:
                yield RawBatch(pa.table({"input_row": rows, "record": texts}, schema=RAW_SCHEMA), progress=len(rows))
                rows, texts = [], []
        yield RawBatch(pa.table({"input_row": rows, "record": texts}, schema=RAW_SCHEMA), progress=len(rows))
