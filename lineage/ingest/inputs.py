"""What `lineage ingest PATH...` names: files, globs, directories of shards, a Hugging Face dataset folder, `-`."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack

from lineage.errors import InputError

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.ingest import IngestResult
    from lineage.ingest.options import IngestFields
    from lineage.progress import Progress

DATA_SUFFIXES = (
    *(f"{name}{codec}" for name in (".jsonl", ".ndjson", ".json") for codec in ("", ".gz", ".zst")),
    ".parquet",
    ".csv",
    ".arrow",
)


def expand(args: list[str]) -> list[Path]:
    """Every input file the arguments name, in order (a glob or directory: sorted by path); `-` is stdin."""
    inputs: list[Path] = []
    for arg in args:
        if arg == "-":
            inputs.append(STDIN)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InputError(f"`{arg}`: no file matches")
            inputs += [Path(m) for m in matches if not Path(m).is_dir()] or _dirs(matches)
        elif Path(arg).is_dir() and not (Path(arg) / "state.json").is_file():
            inputs += _shards(Path(arg))
        else:
            inputs.append(Path(arg))
    return inputs


def ingest_paths(
    store: StoreCore,
    args: Sequence[str],
    /,
    *,
    progress: Progress | None = None,
    stdin: BinaryIO | None = None,
    **options: Unpack[IngestFields],
) -> list[IngestResult]:
    """Ingest every file `args` name (`expand`) in one commit; `-` reads `stdin` (default: this process's standard
    input) through a temporary copy, removed afterwards."""
    from lineage.ingest import ingest_many  # loads Arrow compute: only when ingesting

    inputs: list[Any] = []
    try:
        for path in expand(list(args)):
            inputs.append(Spooled(stdin) if path == STDIN else path)
        return ingest_many(store, inputs, progress=progress, **options)
    finally:
        for item in inputs:
            if isinstance(item, Spooled):
                item.remove()


ROW_FORMATS = ("parquet", "csv", "arrow")


def progress_unit(args: Sequence[str], input_format: str | None = None) -> str:
    """What ingesting `args` reports progress in: bytes of JSON and JSON Lines files, records of Parquet, CSV,
    Arrow and Hugging Face folders."""
    files = expand(list(args))
    by_rows = input_format in ROW_FORMATS
    if by_rows or any(f.is_dir() or f.suffix.lower().lstrip(".") in ROW_FORMATS for f in files):
        return "records"
    return "bytes"


def _dirs(matches: list[str]) -> list[Path]:
    return [shard for m in matches for shard in _shards(Path(m))]


def _shards(folder: Path) -> list[Path]:
    """The data files under a directory, recursively, sorted by path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))
    if not files:
        raise InputError(f"`{folder}`: no data files ({', '.join(DATA_SUFFIXES)})")
    return files


# A stand-in path for standard input, replaced by a temporary copy in `spool_stdin`.
STDIN = Path("-")


class Spooled(os.PathLike[str]):
    """Standard input copied to a temporary file (a reader sniffs a file, then parses it), named `<stdin>`."""

    uri = "<stdin>"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        source = stream if stream is not None else sys.stdin.buffer
        with tempfile.NamedTemporaryFile(prefix="lineage-stdin-", suffix=".json", delete=False) as out:
            shutil.copyfileobj(source, out)
        self.path = Path(out.name)

    def __fspath__(self) -> str:
        return str(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
