"""Parquet segments: written to a temporary name, fsynced, renamed; checksummed for `doctor`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lineage.faults import crash_point

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Segment:
    """A segment file in its final place, not yet registered in the catalog."""

    segment_id: str
    kind: str
    path: str  # relative to the store root
    row_count: int
    size_bytes: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Small files (manifests): temporary name, fsync, rename."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    tmp.write_bytes(data)
    fsync_path(tmp)
    os.rename(tmp, path)


def write_parquet(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Write batches cast to `schema` (nullability included), zstd-compressed."""
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch.cast(schema))


def write_segment(
    root: Path, kind: str, segment_id: str, write: Callable[[Path], None], *, folder: str | None = None,
    filename: str | None = None,
) -> Segment:
    """Run `write(tmp_path)`, then fsync, checksum and rename to data/<kind>/<segment_id>.parquet
    (or `folder`/`filename` under the store root, for build members)."""
    where = root / (folder or f"data/{kind}")
    where.mkdir(parents=True, exist_ok=True)
    name = filename or f"{segment_id}.parquet"
    tmp, final = where / f"{TMP_PREFIX}{name}", where / name
    try:
        write(tmp)
        crash_point("segment_written")
        fsync_path(tmp)
        crash_point("segment_fsynced")
        rows = pq.ParquetFile(tmp).metadata.num_rows
        checksum = file_sha256(tmp)
        os.rename(tmp, final)
        crash_point("segment_renamed")
        fsync_path(where)
        crash_point("segment_dir_fsynced")
    except BaseException:
        # Not registered, so not part of the store: leave no file behind (a SIGKILL leaves an orphan instead).
        tmp.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    rel = final.relative_to(root).as_posix()
    return Segment(segment_id, kind, rel, rows, final.stat().st_size, checksum)
