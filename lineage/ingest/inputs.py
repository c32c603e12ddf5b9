"""What `lineage ingest PATH...` names: files, globs, directories of shards, a Hugging Face dataset folder, `-`."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from lineage.errors import InputError

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
