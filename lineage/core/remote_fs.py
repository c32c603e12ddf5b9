"""DuckDB reading a store's data on a pyarrow filesystem (S3, GCS, HDFS ...) through fsspec, read-only.

DuckDB's own httpfs extension would have to be downloaded; a registered fsspec filesystem is built in.
The wrapper refuses every write, so no connection that can see the store's data can change it.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import pyarrow as pa
from fsspec.implementations.arrow import ArrowFSWrapper

# How DuckDB sees a non-POSIX location: lineage://data/samples/x.parquet. Defined here, not imported from
# `location` (which imports this module only for a remote store, so that fsspec loads only then).
PROTOCOL = "lineage"


class ReadOnlyFS(ArrowFSWrapper):
    """`lineage://data/...` paths, relative to the location's base, for reading only."""

    protocol = PROTOCOL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files: dict[str, Any] = {}  # path -> pyarrow FileInfo of a file seen (see `_file_info`)

    def _file_info(self, path: str) -> Any:
        """A file's pyarrow FileInfo, kept once seen. DuckDB asks for a file's existence, size and time again and
        again (a `count(*)` over two segments on S3: 33 requests for them besides the reads, each a HEAD); a
        store's data files are written once under a new name and never changed (`gc` removes them whole)."""
        info = self._files.get(path)
        if info is None:
            from pyarrow.fs import FileType

            [info] = self.fs.get_file_info([path])
            if info.type == FileType.File:
                self._files[path] = info
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._make_entry(self._file_info(self._strip_protocol(path)))

    def modified(self, path: str) -> Any:
        return self._file_info(self._strip_protocol(path)).mtime

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return str(path).removeprefix(f"{PROTOCOL}://").lstrip("/")

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"the store's data is read-only here: cannot open {path} with mode {mode!r}")
        return PositionalFile(self.fs.open_input_file(path))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise PermissionError("the store's data is read-only here")

    rm = rm_file = _rm = mkdir = makedirs = mv = cp_file = touch = _refuse


class PositionalFile(io.RawIOBase):
    """A remote file whose position is per thread: DuckDB's scan threads share one handle and call
    seek() then read() on it, so one shared position let a thread read where another had just sought
    (seen as zstd errors on a busy scan). Reads go through Arrow's thread-safe `read_at`."""

    def __init__(self, source: pa.NativeFile) -> None:
        super().__init__()
        self._source, self._size, self._local = source, source.size(), threading.local()

    @property
    def _pos(self) -> int:
        return getattr(self._local, "pos", 0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._local.pos = max(0, base + offset)
        return self._local.pos

    def read(self, size: int = -1) -> bytes:
        start = self._pos
        count = self._size - start if size is None or size < 0 else min(size, self._size - start)
        if count <= 0:
            return b""
        data = bytes(self._source.read_at(count, start))
        self._local.pos = start + len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()
