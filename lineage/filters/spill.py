"""A scratch DuckDB database for filter runs over selections larger than memory.

A filter that must see its whole selection (dedup) keeps its working tables here instead of in Python: DuckDB
holds at most `memory_limit` and spills the rest to STORE/tmp/<run_id>/spill/, which the run removes when it ends
(committed or not). A run killed while spilling leaves that folder behind; the next out-of-core run (which holds
the writer lock, so no other run is using one) removes it, and so does `lineage gc`.

Errors while spilling become one line: the memory limit was too small for what could not spill, or the disk
holding the spill folder filled. Nothing is registered in either case: the run's transaction never commits.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, UsageError, first_line, option

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

SPILL_FOLDER = "spill"
# A cap on the spill folder's size (DuckDB's max_temp_directory_size), e.g. "20GB": a run that needs more fails
# as a full disk would, before the disk is full. Unset: DuckDB's default (90% of the free space).
SPILL_LIMIT_ENV = "LINEAGE_SPILL_LIMIT"
_SIZE = re.compile(r"\d+(\.\d+)?\s*[KMGT]i?B")
_DISK_FULL = ("no space left", "max_temp_directory_size", "disk is full", "could not write", "failed to offload")


def check_memory_limit(memory_limit: str) -> str:
    if not _SIZE.fullmatch(memory_limit.strip()):
        raise UsageError("memory_limit", memory_limit, ": must look like 512MB or 2GB")
    return memory_limit.strip()


_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_bytes(memory_limit: str) -> int:
    """A memory limit (`512MB`, `2GiB`) in bytes, counted in powers of 1024 (a bound for estimates, not DuckDB's)."""
    size = check_memory_limit(memory_limit)
    number = re.match(r"\d+(\.\d+)?", size)
    assert number is not None  # check_memory_limit matched
    unit = size[number.end():].strip()[0]
    return int(float(number.group()) * _UNITS[unit])


def remove_stale(store: StoreCore, run_id: str) -> None:
    """Spill folders of runs that died (killed while spilling): only runs hold the writer lock and make them, and
    the caller holds it, so every one but its own is stale."""
    tmp = store.root / "tmp"
    for folder in tmp.glob(f"*/{SPILL_FOLDER}") if tmp.is_dir() else []:
        if folder.parent.name != run_id:
            shutil.rmtree(folder.parent, ignore_errors=True)


class Spill:
    """The scratch database of one run: `con` (in-memory, spilling to `folder`); close it before the folder goes."""

    def __init__(self, store: StoreCore, run_id: str, memory_limit: str, what: str) -> None:
        self.what, self.memory_limit = what, check_memory_limit(memory_limit)
        self.peak = 0
        remove_stale(store, run_id)
        self.folder: Path = store.scratch_dir(run_id) / SPILL_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET memory_limit = {sql_string(self.memory_limit)}")
        self.con.execute(f"SET temp_directory = {sql_string(str(self.folder))}")
        self.con.execute("SET preserve_insertion_order = false")  # lets sorts and joins stream and spill
        # Texts leave DuckDB with 64-bit offsets: a batch of long documents never overflows a 2 GB string array.
        self.con.execute("SET arrow_large_buffer_size = true")
        limit = os.environ.get(SPILL_LIMIT_ENV)
        if limit:
            self.con.execute(f"SET max_temp_directory_size = {sql_string(check_memory_limit(limit))}")

    def measure(self) -> int:
        """Bytes spilled to disk now; `peak` keeps the most seen (a run reports it, a test checks it spilled)."""
        size = self.con.sql("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()").fetchall()[0][0]
        self.peak = max(self.peak, int(size))
        return int(size)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """DuckDB's and the file system's failures while spilling, as one line naming the limit or the folder."""
        try:
            yield
        except (duckdb.OutOfMemoryException, duckdb.IOException, duckdb.TransactionException, OSError) as exc:
            text = first_line(exc)
            if isinstance(exc, duckdb.TransactionException) and "could not allocate" not in text:
                raise
            # A commit of the scratch database that finds no memory for its blocks fails as a TransactionException.
            out_of_memory = isinstance(exc, duckdb.OutOfMemoryException | duckdb.TransactionException)
            full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or any(
                s in text.lower() for s in _DISK_FULL
            )
            if full:
                raise LineageError(
                    f"{self.what}: the disk filled while spilling to `{self.folder}` ({text}); free space there "
                    "and run it again (nothing was recorded)"
                ) from None
            if out_of_memory:
                raise LineageError(
                    f"{self.what}: ran out of its memory limit ({self.memory_limit}) ({text}); raise it with "
                    f"{option('memory_limit')} (nothing was recorded)"
                ) from None
            raise
