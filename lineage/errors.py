"""The LineageError tree: every error a user can cause, with its inputs kept as attributes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FROM_CLI: ContextVar[bool] = ContextVar("lineage_from_cli", default=False)
# Where a flag's name differs from the Python keyword.
_FLAGS = {"input_format": "format", "set_name": "set", "license_": "license", "ids_file": "ids"}


def option(name: str, value: str | None = None) -> str:
    """Option `name` (a Python keyword) as the caller wrote it: `--text-field` from the CLI, `text_field=` from
    Python, so an error names what the user typed. `value` is an example value, appended in either style."""
    if _FROM_CLI.get():
        return f"--{_FLAGS.get(name, name).replace('_', '-')}" + (f" {value}" if value else "")
    return f"{name.rstrip('_')}=" + (value or "")


def given(name: str, value: object) -> str:
    """Option `name` with the value the caller gave: --language `english`, or language='english'."""
    return f"{option(name)} `{value}`" if _FROM_CLI.get() else f"{name.rstrip('_')}={value!r}"


def flag(name: str) -> str:
    """A switch as the caller would turn it on: --skip-bad, or skip_bad=True."""
    return option(name) if _FROM_CLI.get() else f"{name}=True"


@contextmanager
def cli_names() -> Iterator[None]:
    """Errors raised inside name options as CLI flags (the `lineage` command wraps every command in this)."""
    token = _FROM_CLI.set(True)
    try:
        yield
    finally:
        _FROM_CLI.reset(token)


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
        wait = option("wait", "SECONDS")
        super().__init__(f"store is locked by {who} (lock file `{path}`); retry later or pass {wait}")


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
            more = f" (and {self.total - 1:,} more rejected {rows}; {flag('skip_bad')} stores the good ones)"
        super().__init__(f"{first}{more}; nothing was written")


class InputError(LineageError):
    """A whole input that cannot be read (missing, empty, unknown format)."""


class QueryError(LineageError):
    """A SQL query that failed or was refused."""


class NotFound(LineageError):
    """A sample, set, model, build or other named object that does not exist (or is ambiguous): `kind` and
    `name` say which; `message` (default `no KIND `NAME``) says what to do about it."""

    def __init__(self, kind: str, name: str, message: str | None = None) -> None:
        self.kind, self.name = kind, name
        super().__init__(message or f"no {kind} `{name}`")


class UsageError(LineageError):
    """An option given a value it does not accept: `option` (its Python name) and `value` say which."""

    def __init__(self, option: str, value: object, problem: str = "", *, message: str | None = None) -> None:
        """`problem` follows the option and value as the caller wrote them (`given`): ": must be positive";
        `message`, when given, is the whole message instead (`unknown engine `x`; choose from ...`)."""
        self.option, self.value = option, value
        super().__init__(message or f"{given(option, value)}{problem}")


class OutputPathError(LineageError):
    """An output path (`option`) inside what the store owns (`owned`): writing it could change the store."""

    def __init__(self, path: Path, option: str, owned: Path) -> None:
        self.path, self.option, self.owned = path, option, owned
        super().__init__(
            f"{option} `{path}` would overwrite the store's own `{owned}`: write outputs outside the store's "
            f"catalog, lock, data/, tmp/ and builds/"
        )


class OutputExistsError(LineageError):
    """An output folder (`option`) that exists and is not empty, without `force`; or with `force`, one that is not an
    earlier output of the same kind (`foreign`: why not)."""

    def __init__(self, path: Path, option: str, *, foreign: str | None = None) -> None:
        self.path, self.option, self.foreign = path, option, foreign
        if foreign is not None:  # `force` given, but the folder holds something else than an earlier output
            super().__init__(
                f"{option} `{path}` {foreign}: {flag('force')} replaces only an earlier output of this kind, never "
                "other files; choose another folder, or empty this one yourself"
            )
            return
        super().__init__(
            f"{option} `{path}` exists and is not empty: choose another folder, or {flag('force')} to replace it"
        )


class BuildError(LineageError):
    """A build that cannot be made as asked; nothing was written."""


class SpecError(BuildError):
    """A spec that does not validate; the message names the path inside the spec."""


class InfeasibleSpec(BuildError):
    """No allocation satisfies the spec; the message names the binding constraint with numbers."""


class FloorNotMet(BuildError):
    """The members miss a diversity floor; the message has the achieved value and what limits it."""


class StaleFilters(BuildError):
    """Filters a build honours have not seen samples of its pool: `states` are their
    `lineage.filters.states.FilterState`s, `detail` says which and from which sources."""

    def __init__(self, build: str, states: list[Any], detail: str) -> None:
        self.build, self.states = build, states
        super().__init__(
            f"build {build}: {detail}; {flag('refresh')} decides them first, {flag('allow_stale')} builds anyway"
        )
