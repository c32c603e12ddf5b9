"""Parquet and JSON Lines files of one split, written by DuckDB's own COPY (parallel, streaming, no Python per
row), in sample_id order, named as Hugging Face and datatrove expect: `data/train-00000-of-00004.parquet`.

Shards: `rows` puts exactly that many rows in each file (the split is materialised once, numbered, and copied
range by range); `bytes` lets DuckDB start a new file past that size (FILE_SIZE_BYTES keeps the order).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from lineage.core.sqlutil import sql_string

EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl"}
_OPTIONS = {
    "parquet": "FORMAT parquet, COMPRESSION zstd",
    "jsonl": "FORMAT json",
    # The verbatim line as it is: no quoting, no escaping, a delimiter JSON text cannot contain unescaped.
    "lines": "FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f'",
}


@dataclass(frozen=True)
class Shards:
    """At most `rows` rows or about `bytes` bytes per file; neither: one file per split."""

    rows: int | None = None
    bytes: int | None = None


def write_split(
    con: duckdb.DuckDBPyConnection, query: str, folder: Path, split: str, *, kind: str, shards: Shards
) -> list[Path]:
    """Write `query` (its first column `__sid` orders the rows and is not written) as the split's files.

    `kind`: parquet, jsonl (the columns as JSON objects) or lines (a single text column written as it is).
    """
    ext = "parquet" if kind == "parquet" else "jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    options = _OPTIONS[kind]
    ordered = f"SELECT * EXCLUDE (__sid) FROM ({query}) ORDER BY __sid"
    if shards.rows:
        parts = _by_rows(con, query, folder / f".{split}.parts", ext, options, shards.rows)
    elif shards.bytes:
        scratch = folder / f".{split}.parts"
        con.execute(f"COPY ({ordered}) TO {sql_string(str(scratch))} ({options}, FILE_SIZE_BYTES {shards.bytes})")
        parts = sorted(scratch.iterdir(), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    else:
        target = folder / f"{split}-00000-of-00001.{ext}"
        con.execute(f"COPY ({ordered}) TO {sql_string(str(target))} ({options})")
        return [target]
    files = []
    for i, part in enumerate(parts):
        files.append(folder / f"{split}-{i:05d}-of-{len(parts):05d}.{ext}")
        part.replace(files[-1])
    shutil.rmtree(folder / f".{split}.parts", ignore_errors=True)
    return files


def _by_rows(
    con: duckdb.DuckDBPyConnection, query: str, scratch: Path, ext: str, options: str, rows: int
) -> list[Path]:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _export_rows AS SELECT * EXCLUDE (__sid), "
        f"row_number() OVER (ORDER BY __sid) - 1 AS __rn FROM ({query})"
    )
    total = con.execute("SELECT count(*) FROM _export_rows").fetchall()[0][0]
    scratch.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(max(1, -(-total // rows))):
        parts.append(scratch / f"{i}.{ext}")
        con.execute(
            f"COPY (SELECT * EXCLUDE (__rn) FROM _export_rows WHERE __rn >= {i * rows} AND __rn < {(i + 1) * rows} "
            f"ORDER BY __rn) TO {sql_string(str(parts[-1]))} ({options})"
        )
    con.execute("DROP TABLE _export_rows")
    return parts


def describe(path: Path, root: Path, split: str) -> dict[str, object]:
    """A file's manifest entry: path under the export, split, rows, bytes, sha256."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    rows: int | None = lines if path.suffix == ".jsonl" else None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
    return {
        "path": path.relative_to(root).as_posix(),
        "split": split,
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": digest.hexdigest(),
    }


@dataclass(frozen=True)
class ExportOptions:
    format: str = "parquet"
    columns: tuple[str, ...] | None = None
    verbatim: bool | None = None  # None: verbatim for jsonl (as before), training columns otherwise
    provenance: bool = False
    splits: dict[str, float] = field(default_factory=dict)
    split_seed: int | None = None  # default: the build's seed
    shards: Shards = field(default_factory=Shards)
    force: bool = False
    batch_rows: int = 65_536  # rows per streamed batch of the hf export (it never holds a whole split)
