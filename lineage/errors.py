"""The LineageError tree: every error a user can cause, with its inputs kept as attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass


def first_line(exc: BaseException) -> str:
    """An exception as one line: its first non-blank line (terminal colour codes removed), else its type."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


class LineageError(Exception):
    """Base of every error lineage raises on purpose; the CLI prints it as one line."""


class StoreError(LineageError):
    """The store is missing, damaged or of an unsupported format."""


class StoreNotFound(StoreError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no lineage store at `{path}`: run `lineage init {path}` first")


class StoreFormatError(StoreError):
    """The store's format version is not one this lineage can open."""


class StoreLocked(LineageError):
    def __init__(self, path: str, pid: int | None, since: str | None) -> None:
        self.path, self.pid, self.since = path, pid, since
        who = f"pid {pid} since {since}" if pid else "another process"
        super().__init__(f"store is locked by {who} (lock file `{path}`); retry later or pass --wait SECONDS")


@dataclass(frozen=True)
class Reject:
    """One rejected input row: where it is and what is wrong with it."""

    line: int
    field: str
    reason: str

    def describe(self, uri: str) -> str:
        return f"{uri}:{self.line}: field `{self.field}`: {self.reason}"


class IngestError(LineageError):
    """Input that cannot be ingested; nothing was written."""

    def __init__(self, uri: str, rejects: list[Reject], total: int | None = None) -> None:
        self.uri, self.rejects = uri, rejects
        self.total = total if total is not None else len(rejects)
        first = rejects[0].describe(uri) if rejects else uri
        more = ""
        if self.total > 1:
            rows = "row" if self.total == 2 else "rows"
            more = f" (and {self.total - 1:,} more rejected {rows}; --skip-bad stores the good ones)"
        super().__init__(f"{first}{more}; nothing was written")


class InputError(LineageError):
    """A whole input that cannot be read (missing, empty, unknown format)."""


class QueryError(LineageError):
    """A SQL query that failed or was refused."""


class NotFound(LineageError):
    """A sample, batch or other named object that does not exist."""
