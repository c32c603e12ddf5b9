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
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.segments import file_sha256
from lineage.errors import InputError, Reject, first_line, option
from lineage.limits import DEFAULT_MAX_RECORD_BYTES

BLOCK_BYTES = 16 << 20
BOM = b"\xef\xbb\xbf"
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
    """An input: where it came from (`uri` as given, for messages; `location` absolute, for the audit trail), its
    format and checksum, and its batches."""

    uri: str
    format: str

    @property
    def location(self) -> str:
        path = getattr(self, "path", None)
        return str(Path(path).absolute()) if path is not None and not self.uri.startswith("<") else self.uri

    total: int | None = None  # for progress: bytes for files, rows for in-memory data
    sha256: str | None = None

    def __iter__(self) -> Iterator[RawBatch]:
        raise NotImplementedError


def open_reader(data: Any, *, input_format: str | None = None) -> Reader:
    """Choose a reader for a path, an Arrow table, a Polars frame or an iterable of dicts."""
    if isinstance(data, str | os.PathLike):
        reader = _file_reader(Path(data), input_format)
        reader.uri = getattr(data, "uri", reader.uri)  # standard input, spooled to a file, is `<stdin>`
        return reader
    if isinstance(data, pa.Table | pa.RecordBatch):
        return ArrowReader(pa.table(data) if isinstance(data, pa.RecordBatch) else data, "<arrow>")
    if type(data).__module__.startswith("polars"):
        return ArrowReader(data.to_arrow(), "<polars>")
    if type(data).__module__.startswith("datasets") and hasattr(data, "data") and hasattr(data.data, "table"):
        return ArrowReader(data.data.table, "<datasets>")  # a datasets.Dataset: its Arrow table, no copy
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
        return DictReader(data)
    raise InputError(f"cannot ingest a {type(data).__name__}: give a path, Arrow table, Polars frame or dicts")


def _file_reader(path: Path, input_format: str | None) -> Reader:
    if path.is_dir() and (path / "state.json").is_file():
        return HfDiskReader(path)
    if not path.exists():
        raise InputError(f"`{path}`: no such file")
    if path.is_dir():
        raise InputError(f"`{path}`: is a directory, not a file")
    fmt = input_format or _guess_format(path)
    if fmt == "json" and _starts_with(path, b"["):
        return JsonArrayReader(path)
    if fmt in ("jsonl", "json"):
        return JsonlReader(path)
    if fmt == "arrow":
        return ArrowFileReader(path)
    if fmt in ("parquet", "csv"):
        return DuckdbFileReader(path, fmt)
    raise InputError(f"`{path}`: unknown input format `{fmt}` (jsonl, json, parquet, csv or arrow)")


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Whether the file's first non-whitespace bytes are `prefix` (a JSON array starts with `[`)."""
    with _open_decompressed(path) as f:
        return f.read(4096).lstrip().startswith(prefix)


# Compressed inputs by suffix: gzip, and zstandard (pyarrow's codec: no extra package).
CODECS = {".gz": "gzip", ".zst": "zstd"}


def _codec(path: Path) -> str | None:
    return CODECS.get(path.suffix.lower())


def _decompressing(raw: Any, codec: str | None) -> Any:
    """A binary stream of `raw`'s decompressed bytes (with `read` and `readinto`)."""
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if codec == "zstd":
        return pa.CompressedInputStream(raw, "zstd")
    return raw


def _stream_errors(codec: str | None) -> tuple[type[BaseException], ...]:
    """What a corrupt or truncated compressed file raises: gzip's errors (EOFError: click would print only
    "Aborted!"); pyarrow's zstd, a plain OSError."""
    return {"gzip": (EOFError, gzip.BadGzipFile, zlib.error), "zstd": (OSError,)}.get(codec or "", ())


@contextmanager
def _open_decompressed(path: Path) -> Iterator[Any]:
    codec = _codec(path)
    try:
        with open(path, "rb") as raw:
            yield _decompressing(raw, codec)
    except _stream_errors(codec) as exc:
        raise InputError(f"`{path}`: cannot read as {codec}: {exc}; nothing was written") from None


def _guess_format(path: Path) -> str:
    name = path.name.lower()
    name = name.removesuffix(path.suffix.lower()) if _codec(path) else name
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
        (".parquet", "parquet"),
        (".csv", "csv"),
        (".arrow", "arrow"),
    ):
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"`{path}`: cannot tell the format from the name; pass {option('input_format', 'jsonl|json|parquet|csv|arrow')}"
    )


class JsonlReader(Reader):
    """JSON Lines, plain, gzip or zstd, read in blocks and split into lines without a Python loop per line."""

    format = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path, self.uri = path, str(path)
        self.total = path.stat().st_size
        self._codec = _codec(path)
        self.max_record_bytes = DEFAULT_MAX_RECORD_BYTES  # a line past it is rejected as it streams by
        # Named now, in the caller's thread: the lines may be read from one of DuckDB's scan threads, where the
        # CLI's context (flags named as `--max-record-bytes`) is not set.
        self._limit_name = option("max_record_bytes")

    def __iter__(self) -> Iterator[RawBatch]:
        digest = hashlib.sha256()
        try:
            yield from self._blocks(digest)
        except _stream_errors(self._codec) as exc:
            raise InputError(f"`{self.path}`: cannot read as {self._codec}: {exc}; nothing was written") from None
        self.sha256 = file_sha256(self.path) if self._codec else digest.hexdigest()

    def _oversize(self, line: int, size: int) -> RawBatch:
        reason = f"record is {size} bytes, over the limit of {self.max_record_bytes} ({self._limit_name})"
        return RawBatch(RAW_SCHEMA.empty_table(), [Reject(line, "record", reason)])

    def _blocks(self, digest: Any) -> Iterator[RawBatch]:
        line_no, skipped = 0, 0  # skipped: bytes of an oversize line seen so far
        with open(self.path, "rb") as raw:
            stream = _decompressing(raw, self._codec)
            head = stream.read(len(BOM))  # a UTF-8 byte-order mark (Windows editors write one) is not data
            rest = b"" if head == BOM else head
            if not self._codec:
                digest.update(head)
            while True:
                before = raw.tell()
                # Read after the carried-over partial line, into a fresh buffer that the batch then shares.
                buf = bytearray(len(rest) + BLOCK_BYTES)
                buf[: len(rest)] = rest
                view = memoryview(buf)
                got = stream.readinto(view[len(rest) :])
                if not got:
                    break
                if not self._codec:
                    digest.update(view[len(rest) : len(rest) + got])
                end = len(rest) + got
                if skipped:  # the rest of an oversize line: count it up to its newline, never holding it whole
                    newline = buf.find(b"\n", 0, end)
                    skipped += end if newline < 0 else newline
                    if newline >= 0:
                        line_no, rest = line_no + 1, bytes(view[newline + 1 : end])
                        yield self._oversize(line_no, skipped)
                        skipped = 0
                    continue
                cut = buf.rfind(b"\n", 0, end) + 1
                if not cut and end > self.max_record_bytes:
                    skipped, rest = end, b""
                    continue
                rest = bytes(view[cut:end])
                batch = _split_lines(view[:cut], line_no, self.uri) if cut else RawBatch(RAW_SCHEMA.empty_table())
                line_no += batch.lines
                batch.progress = raw.tell() - before
                yield batch
            if skipped:
                yield self._oversize(line_no + 1, skipped)
            elif rest:
                yield _split_lines(memoryview(rest + b"\n"), line_no, self.uri)


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


# CSV quotes are RFC 4180's `"`, so an unterminated quote is an error instead of a sniffed no-quote dialect.
CSV_QUOTE = "quote = '\"'"


class DuckdbFileReader(Reader):
    """Parquet and CSV via DuckDB, each row rendered to a JSON object. CSV rows count from line 2."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.uri, self.format = path, str(path), fmt

    def __iter__(self) -> Iterator[RawBatch]:
        con = duckdb.connect()
        func = "read_parquet" if self.format == "parquet" else "read_csv"
        options = "" if self.format == "parquet" else f", {CSV_QUOTE}"
        offset = 1 if self.format == "parquet" else 2
        try:
            if self.format == "csv":
                self._check_header(con)
            reader = con.sql(
                f"SELECT CAST(row_number() OVER () - 1 + ? AS BIGINT) AS input_row, to_json(t)::VARCHAR AS record "
                f"FROM {func}(?{options}) t",
                params=[offset, str(self.path)],
            ).to_arrow_reader(ARROW_BATCH_ROWS)
            for batch in reader:
                yield RawBatch(pa.table(batch), progress=batch.num_rows)
        except duckdb.Error as exc:
            raise InputError(f"`{self.path}`: cannot read as {self.format}: {first_line(exc)}") from None
        finally:
            con.close()
        self.sha256 = file_sha256(self.path)

    def _check_header(self, con: duckdb.DuckDBPyConnection) -> None:
        """A column named twice: DuckDB would rename the second (`text_1`) and read on, which column is the text
        left to chance, as with a JSON key given twice (refused too). Names compare as DuckDB's do, ignoring case."""
        if not con.execute(f"SELECT HasHeader FROM sniff_csv(?, {CSV_QUOTE})", [str(self.path)]).fetchall()[0][0]:
            return
        header = con.execute(
            f"SELECT * FROM read_csv(?, {CSV_QUOTE}, header = false, all_varchar = true) LIMIT 1", [str(self.path)]
        ).fetchall()
        seen: set[str] = set()
        for name in header[0] if header else ():
            if name is not None and name.lower() in seen:
                raise InputError(f"{self.path}:1: field `{name}`: named twice in the header; rename or drop one")
            seen.add((name or "").lower())


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


class JsonArrayReader(Reader):
    """A JSON file holding one array of records (`alpaca_data.json`). Records count from 1 in `input_row` (the
    record index); each is kept as compact JSON. The file is parsed whole: such files are read into memory by
    every tool that uses them."""

    format = "json"

    def __init__(self, path: Path) -> None:
        self.path, self.uri = path, str(path)
        self.total = path.stat().st_size

    def __iter__(self) -> Iterator[RawBatch]:
        try:
            with _open_decompressed(self.path) as f:
                records = json.loads(f.read().decode("utf-8"), object_pairs_hook=_no_repeated_keys)
        except UnicodeDecodeError as exc:
            raise InputError(f"`{self.uri}`: not UTF-8 (byte offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise InputError(f"`{self.uri}`: not a JSON array: {exc.msg} ({where})") from None
        except _RepeatedKey as exc:
            raise InputError(f"`{self.uri}`: key `{exc.key}` given twice in one object; keep one") from None
        if not isinstance(records, list):
            kind = type(records).__name__
            raise InputError(f"`{self.uri}`: expected a JSON array of records or JSON Lines, got a {kind}")
        texts = [json.dumps(r, ensure_ascii=False) for r in records]
        rows = pa.table({"input_row": list(range(1, len(texts) + 1)), "record": texts}, schema=RAW_SCHEMA)
        yield RawBatch(rows, progress=self.total)
        self.sha256 = file_sha256(self.path)


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _RepeatedKey(key)
        result[key] = value
    return result


def _read_arrow(path: Path, uri: str) -> pa.Table:
    """An Arrow IPC stream (what `datasets` writes) or file."""
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(str(path)) as source:
            try:
                return ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"`{uri}`: not an Arrow dataset file: {str(exc).splitlines()[0]}") from None


class ArrowFileReader(ArrowReader):
    """A `.arrow` file, as a Hugging Face dataset stores its data."""

    def __init__(self, path: Path) -> None:
        super().__init__(_read_arrow(path, str(path)), str(path))
        self.path = path
        self.sha256 = file_sha256(path)


class HfDiskReader(ArrowReader):
    """A folder written by `datasets.Dataset.save_to_disk`: its `state.json` lists the `.arrow` files in order."""

    def __init__(self, path: Path) -> None:
        try:
            state = json.loads((path / "state.json").read_text(encoding="utf-8"))
            files = [path / f["filename"] for f in state["_data_files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"`{path}`: not a Hugging Face dataset folder (state.json: {exc})") from None
        if not files:
            raise InputError(f"`{path}`: the dataset folder lists no data files")
        super().__init__(pa.concat_tables([_read_arrow(f, str(f)) for f in files]), str(path))
        self.path = path
