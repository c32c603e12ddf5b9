"""Where a store's files live: a base folder holding `data/` (segments, features) and `tmp/` (parts that
workers stage), on the local disk, another POSIX path (an NFS mount shared with workers) or any filesystem
pyarrow opens from a URI (s3://, gs://, hdfs://, ...). The catalog always stays in the store directory.

Paths are relative to the base ("data/samples/x.parquet") everywhere the store records or passes them: the
catalog stores them, and the location turns them into paths its filesystem, DuckDB and Ray read.

POSIX locations keep the commit protocol's temporary name, fsync and rename. Object stores have no rename,
but a PUT (multipart or not) is atomic: an object is there whole or not at all. So a segment is written and
fsynced locally, checksummed, then uploaded to its final key; the catalog registers it only after that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from lineage.errors import StoreError, first_line

if TYPE_CHECKING:
    import duckdb
    import pyarrow.fs as pafs
else:

    class _LazyFs:
        """`pyarrow.fs`, imported on first use: it costs ~10 ms of a short command's CPU (its S3, GCS, Azure
        and HDFS modules, ssl), and a local store reads its files through DuckDB without it."""

        def __getattr__(self, name: str) -> Any:
            import pyarrow.fs

            return getattr(pyarrow.fs, name)

    pafs = _LazyFs()

PROTOCOL = "lineage"  # = remote_fs.PROTOCOL (tests/test_remote.py checks): how DuckDB sees a non-POSIX location
TMP_PREFIX = ".tmp-"
CHUNK = 1 << 22


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256(f)


def _sha256(stream: Any) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Location:
    """A base folder on a filesystem; `scratch` is the driver's local folder for files on their way up."""

    filesystem: pafs.FileSystem | None  # None: the local disk (see `fs`)
    base: str
    scratch: Path
    uri: str | None = None  # None: the store directory itself

    @classmethod
    def open(cls, root: Path, uri: str | None) -> Location:
        scratch = root.resolve() / "tmp"
        if uri is None:
            return cls(None, str(root.resolve()), scratch)
        if "://" not in uri:  # a plain path (an NFS mount): absolute, so it means the same from any cwd
            path = Path(uri).expanduser().resolve()
            return cls(None, str(path), scratch, str(path))
        if urlsplit(uri).password is not None or urlsplit(uri).username is not None:
            raise StoreError(f"data location `{_redacted(uri)}`: put credentials in the environment, not the URI")
        try:
            fs, base = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError, OSError) as exc:
            raise StoreError(f"data location `{uri}`: {first_line(exc)}") from None
        if isinstance(fs, pafs.LocalFileSystem):
            base = str(Path(base).resolve())
        return cls(fs, base.rstrip("/"), scratch, uri)

    @property
    def fs(self) -> pafs.FileSystem:
        return self.filesystem if self.filesystem is not None else pafs.LocalFileSystem()

    @property
    def posix(self) -> bool:
        return self.filesystem is None or isinstance(self.filesystem, pafs.LocalFileSystem)

    def __str__(self) -> str:
        return self.uri or self.base

    def label(self, rel: str) -> str:
        """How a user sees a file here: its URI without the location's options (s3://bucket/prefix/rel)."""
        scheme = urlsplit(self.uri).scheme if self.uri else ""
        return f"{scheme}://{self.base}/{rel}" if scheme else f"{self.base}/{rel}"

    # -- naming --------------------------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The path on `fs` (also what Ray's readers take together with `fs`)."""
        return f"{self.base}/{rel}"

    def sql_path(self, rel: str) -> str:
        """The path DuckDB reads, after `register`."""
        return self.path(rel) if self.posix else f"{PROTOCOL}://{rel}"

    @property
    def store_root(self) -> Path:
        """The store directory (catalog, lock, builds): `scratch` is always its `tmp/`."""
        return self.scratch.parent

    def allowed_directories(self) -> list[str]:
        """What a locked-down DuckDB connection may read: the data and the builds' members (the
        `build_members` view), nothing else."""
        builds = f"{self.store_root / 'builds'}/"
        return [self.path("data") + "/", builds] if self.posix else [f"{PROTOCOL}://data/", builds]

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let DuckDB read this location (read-only); nothing to do on POSIX. Idempotent per DuckDB instance."""
        if self.posix or PROTOCOL in con.list_filesystems():
            return
        from lineage.core.remote_fs import ReadOnlyFS

        con.register_filesystem(ReadOnlyFS(pafs.SubTreeFileSystem(self.base, self.fs)))

    # -- reading -------------------------------------------------------------------------------

    def info(self, rel: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.info(rel).type == pafs.FileType.File

    def size(self, rel: str) -> int:
        return int(self.info(rel).size or 0)

    def sha256(self, rel: str) -> str:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return _sha256(f)

    def open_input(self, rel: str) -> Any:
        return self.fs.open_input_file(self.path(rel))

    def files(self, rel_dir: str) -> list[str]:
        """Every file under `rel_dir`, relative to the base, sorted; [] when the folder is absent."""
        selector = pafs.FileSelector(self.path(rel_dir), recursive=True, allow_not_found=True)
        found = self.fs.get_file_info(selector)
        start = len(self.base) + 1
        return sorted(i.path[start:] for i in found if i.type == pafs.FileType.File)

    def children(self, rel_dir: str) -> list[str]:
        """Entries directly under `rel_dir` (files and folders), relative to the base."""
        selector = pafs.FileSelector(self.path(rel_dir), recursive=False, allow_not_found=True)
        start = len(self.base) + 1
        return sorted(i.path[start:] for i in self.fs.get_file_info(selector))

    # -- writing -------------------------------------------------------------------------------

    def draft(self, rel: str) -> Path:
        """A local path to write `rel`'s content to before `publish`: beside it on POSIX (so the rename stays
        on one filesystem), else in the driver's scratch folder."""
        final = Path(self.path(rel))
        folder = final.parent if self.posix else self.scratch
        folder.mkdir(parents=True, exist_ok=True)
        unique = "" if self.posix else f"{uuid.uuid4().hex[:12]}-"
        return folder / f"{TMP_PREFIX}{unique}{final.name}"

    def publish(self, draft: Path, rel: str, *, on_renamed: Callable[[], None] = lambda: None) -> None:
        """Put a written, fsynced draft at `rel` atomically: rename + folder fsync, or one upload."""
        if self.posix:
            final = Path(self.path(rel))
            os.rename(draft, final)
            on_renamed()
            fsync_path(final.parent)
            return
        self.fs.create_dir(str(Path(self.path(rel)).parent), recursive=True)
        pafs.copy_files(str(draft), self.path(rel), destination_filesystem=self.fs)
        on_renamed()
        draft.unlink(missing_ok=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """A small file (config, manifest), atomically."""
        draft = self.draft(rel)
        draft.write_bytes(data)
        fsync_path(draft)
        self.publish(draft, rel)

    def stage(self, rel: str, write: Callable[[Any], None]) -> tuple[int, str]:
        """A worker's file: `write(sink)` it at `rel` (fsynced on POSIX); returns its size and sha256."""
        if self.posix:
            path = Path(self.path(rel))
            path.parent.mkdir(parents=True, exist_ok=True)
            write(str(path))
            fsync_path(path)
            return path.stat().st_size, file_sha256(path)
        buffer = pa.BufferOutputStream()
        write(buffer)
        data = buffer.getvalue()
        with self.fs.open_output_stream(self.path(rel)) as out:
            out.write(data)
        return data.size, hashlib.sha256(data).hexdigest()

    def move(self, src: str, dst: str) -> None:
        if self.posix:
            final = Path(self.path(dst))
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.path(src), final)
            fsync_path(final.parent)
            return
        self.fs.move(self.path(src), self.path(dst))

    def mkdirs(self, *rels: str) -> None:
        for rel in rels:
            self.fs.create_dir(self.path(rel), recursive=True)

    def delete(self, rel: str) -> None:
        """Remove a file or a folder; absent is fine."""
        info = self.info(rel)
        if info.type == pafs.FileType.Directory:
            if self.posix:
                shutil.rmtree(self.path(rel), ignore_errors=True)
            else:
                self.fs.delete_dir(self.path(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path(rel))

    def probe(self) -> None:
        """Fail with one line, before any work, when the data folder cannot be reached or is not there."""
        where = self.label("data")
        try:
            info = self.info("data")
        except OSError as exc:
            raise StoreError(f"data location `{where}` cannot be reached: {first_line(exc)}") from None
        if info.type != pafs.FileType.Directory:
            raise StoreError(f"data location `{where}` is not there: is it mounted, and is it this store's?")

    def check(self) -> None:
        """Fail with one line when the location cannot be reached or written, or already holds data."""
        probe = f"data/{TMP_PREFIX}probe-{uuid.uuid4().hex}"
        try:
            held = self.files("data")
        except OSError as exc:
            raise StoreError(f"data location `{self}` cannot be read: {first_line(exc)}") from None
        if held:
            # Another catalog's segments here would be orphans to this store's `gc`.
            raise StoreError(f"data location `{self}` already holds {len(held):,} files under data/: give each store "
                             "an empty location of its own")
        try:
            self.mkdirs("data/samples", "data/events", "data/features", "tmp")
            with self.fs.open_output_stream(self.path(probe)) as out:
                out.write(b"lineage")
            self.fs.delete_file(self.path(probe))
        except OSError as exc:
            raise StoreError(f"data location `{self}` cannot be written: {first_line(exc)}") from None


def _redacted(uri: str) -> str:
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.hostname or "").geturl()
