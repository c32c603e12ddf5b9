"""Shared CLI pieces: the error-handling group, opening the store, and output formats."""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

if TYPE_CHECKING:
    import pyarrow as pa

from lineage.errors import LineageError, cli_names, first_line


class LineageGroup(click.Group):
    """Turns a LineageError or an OSError into `Error: <one line>` and exit status 1 (`--debug` keeps the
    traceback). `lazy_commands` maps command names to the module of `lineage.cli` defining them (in its
    `COMMANDS`), imported when one of its commands is first asked for."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module = importlib.import_module(f"lineage.cli.{self.lazy_commands[cmd_name]}")
            for command in module.COMMANDS:
                accept_global_options(command)
                self.add_command(command)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # click suggests among the commands loaded so far: all of them
            possible = self.list_commands(ctx)
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=possible, ctx=ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with cli_names():
                return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`lineage sql … | head`): nothing failed here. End quietly, with the status of a
            # process SIGPIPE ended (141, as `git log | head` under `set -o pipefail`), and no complaint from Python
            # when it flushes what stdout still holds at exit.
            with suppress(OSError, ValueError, io.UnsupportedOperation):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except (LineageError, OSError) as exc:
            # OSError: the disk or the data location failed under us (full, gone, unreachable): one line too.
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"Error: {first_line(exc)}", err=True)
            ctx.exit(1)


_ENTRY_POINT = False  # running as the `lineage` process (`main`), not inside a caller's (tests, CliRunner)


def set_entry_point() -> None:
    global _ENTRY_POINT
    _ENTRY_POINT = True


def entry_point() -> bool:
    """Whether this is the `lineage` process itself (which may end itself), not a caller's running the CLI."""
    return _ENTRY_POINT


def open_store(ctx: click.Context) -> Any:
    from lineage.store import Store

    obj = ctx.find_root().obj
    store = Store(obj["store_path"], as_of=obj["as_of"], wait=obj["wait"])
    if _ENTRY_POINT:
        skip_pandas_probe()
    return store


class _NoPandas:
    """A sys.meta_path finder that refuses pandas."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("lineage: not imported for pyarrow's probe", name=name)


def skip_pandas_probe() -> None:
    """Save the `lineage` process the 0.24 s of importing pandas, which pyarrow does (when pandas is installed) on
    its first `pa.array` of Python values, only to ask whether a value is a pandas object (in its Python shim and
    in its C++ type inference): this process never gives pyarrow one. Let that first probe find no pandas
    (`sys.meta_path` refuses it for the one call); pyarrow remembers the answer for its checks, and
    whatever truly needs pandas (`to_pandas()`, `Table.from_pandas`, or importing it) still imports it as usual.
    (One difference when pandas is imported later in the process: `pa.array(categorical_series)` gives strings,
    not a dictionary array; nothing in lineage does that.)"""
    import pyarrow as pa

    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array(["probe"])
    finally:
        sys.meta_path.remove(blocker)


def store_path(ctx: click.Context) -> str:
    return ctx.find_root().obj["store_path"]


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(f)


LISTING_FORMATS = ("table", "csv", "tsv", "json", "jsonl")


def format_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--format table|csv|tsv|json|jsonl` and `--json` (= `--format json`): how every listing command takes them."""
    f = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(f)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(LISTING_FORMATS),
        help="Default: a table on a terminal, TSV when piped (one line per row; floats rounded for display, "
        "json and jsonl exact).",
    )(f)


def output_format(fmt: str | None, as_json: bool = False) -> str:
    """The format asked for, else a table for people on a terminal and TSV for pipes and scripts."""
    if as_json:
        return "json"
    return fmt or ("table" if sys.stdout.isatty() else "tsv")


def emit(
    rows: pa.Table | list[dict[str, Any]],
    fmt: str,
    *,
    json_columns: tuple[str, ...] = (),
    title: str | None = None,
) -> None:
    """Print a listing in `fmt`. Table, CSV and TSV round floats for display; JSON and JSON Lines keep exact
    values and nest `json_columns` (JSON text in the store, e.g. `runs.reasons`) as objects, not strings."""
    import pyarrow as pa

    if _ENTRY_POINT:  # a command that opened no store (`filter list`) would import pandas for pyarrow's probe here
        skip_pandas_probe()
    table = rows if isinstance(rows, pa.Table) else _from_rows(rows)
    if fmt in ("json", "jsonl"):
        records = [nest_json(r, json_columns) for r in table.to_pylist()]
        if fmt == "json":
            click.echo(to_json(records))
        else:
            for record in records:
                click.echo(to_json(record, indent=None))
    elif fmt == "table":
        print_table(table, title=title)
    elif fmt == "tsv":
        write_tsv(table, sys.stdout)
    else:
        write_csv(table, sys.stdout, escape_formulas=True)
    sys.stdout.flush()


def _from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    if not rows:
        return pa.table({})
    names = list(dict.fromkeys(k for r in rows for k in r))
    # Column by column: a column mixing types (a dict here, a string there) becomes JSON text, not an error.
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else _cell(v) for v in values], pa.string())
    return pa.table(columns)


def nest_json(record: dict[str, Any], json_columns: tuple[str, ...]) -> dict[str, Any]:
    """`record` with the JSON text of `json_columns` parsed, so JSON output nests objects, not strings."""
    out = dict(record)
    for name in json_columns:
        value = out.get(name)
        if isinstance(value, str):
            with suppress(json.JSONDecodeError):  # text that only looks like JSON stays text
                out[name] = json.loads(value)
    return out


# -- command-line text into typed values: parsing only, the Store does the work


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`--param key=value` options as a mapping (the filter's params model converts and checks the values)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LineageError(f"--param must look like key=value, got `{pair}`")
        out[key.strip()] = value
    return out


def parse_assignments(items: Sequence[str], flag: str) -> dict[str, float]:
    """`NAME=VALUE` strings as a mapping; a bad one is a one-line error naming the flag."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(raw)
        except ValueError:
            raise LineageError(f"{flag} `{item}` must look like NAME=NUMBER, e.g. {flag} acc=0.61") from None
        if not math.isfinite(out[name.strip()]):
            raise LineageError(f"{flag} `{item}`: the value must be a finite number, not NaN or infinity")
    return out


def display_float(value: float) -> str:
    """A float as people read it: 6 significant digits, never an exponent for ordinary magnitudes."""
    if not math.isfinite(value):
        return ""
    if value == 0 or 1e-4 <= abs(value) < 1e6:
        return format(value, ".6g")
    if abs(value) >= 1e6 and abs(value) < 1e15:
        return format(value, ".1f")
    return format(value, ".4g")


def engine_options(engines: tuple[str, ...], engine_help: str, workers_help: str) -> Callable[..., Any]:
    """`--engine`, `--workers`, `--ray-address`: how every command that can run on Ray takes them."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "--ray-address",
            metavar="ADDRESS",
            help="With --engine ray: `auto` or host:port of a running cluster (default: start a local one for "
            "this run).",
        )(f)
        f = click.option("--workers", type=int, help=workers_help)(f)
        return click.option(
            "--engine", type=click.Choice(engines), default="local", show_default=True, help=engine_help
        )(f)

    return decorate


def _plain(value: Any) -> Any:
    """A JSON-able stand-in for what DuckDB and Arrow return beyond JSON's types."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):  # DECIMAL, HUGEINT sums: an exact integer stays one
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: bare `NaN` is not JSON."""
    if _is_interval(value):
        return _interval(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(_finite(value), default=_plain, ensure_ascii=False, indent=indent, allow_nan=False)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters (escape sequences that set titles, move the cursor,
    clear the screen) shown as `\\xNN` instead of acted on; newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _is_interval(value: Any) -> bool:
    return isinstance(value, tuple) and type(value).__name__ == "MonthDayNano"  # pyarrow's struct sequence


def _interval(value: Any) -> str:
    """DuckDB's INTERVAL (Arrow's month-day-nano) as an ISO 8601 duration, e.g. P1M3DT1.5S."""
    seconds = f"{value.nanoseconds / 1e9:g}S" if value.nanoseconds else ""
    return f"P{value.months}M{value.days}D" + (f"T{seconds}" if seconds else "")


def _cell(value: Any) -> str:
    """A value as one cell of a table, CSV or TSV: text as is, floats rounded, booleans `true`/`false`, lists
    and maps as JSON, nothing as an empty cell (never Python's `None`, `True`, `{}`)."""
    if value is None:
        return ""
    if _is_interval(value):
        return _interval(value)
    if isinstance(value, list | dict):
        return to_json(value, indent=None)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return display_float(value)
    return str(_plain(value)) if not isinstance(value, int) else str(value)


def print_table(table: pa.Table, *, title: str | None = None) -> None:
    """A table for people on the terminal. Cells are data, never markup (`[/INST]`, `[bold]` print as
    written) and control characters are escaped."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Table(title=Text(printable(title)) if title else None, show_lines=False)
    for name in table.column_names:
        out.add_column(Text(printable(name)), overflow="fold")
    for row in table.to_pylist():
        out.add_row(*(Text(printable(_cell(v))) for v in row.values()))
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # into a file or a pipe: rows whole, never folded at 80 columns
        console = Console(soft_wrap=False, width=10_000)
    console.print(out)


def write_csv(table: pa.Table, stream: io.TextIOBase | Any, *, escape_formulas: bool = False) -> None:
    """CSV of `table`; lists and structs as JSON, control characters as `\\xNN` (a terminal or a spreadsheet
    must not act on them). `escape_formulas` for files people open in spreadsheets (`outputs.spreadsheet_safe`)."""
    from lineage.outputs import spreadsheet_safe

    writer = csv.writer(stream)
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        cells = [printable(_cell(v)) if v is not None else None for v in row.values()]
        writer.writerow([spreadsheet_safe(c) for c in cells] if escape_formulas else cells)


PROGRESS_SECONDS = 10.0  # how often a command prints a progress line when stderr is not a terminal


@contextmanager
def progress_bar(
    description: str, *, unit: str = "samples", enabled: bool = True
) -> Iterator[Callable[[int, int | None], None]]:
    """Progress of a long step, fed with (done, total) in `unit` (samples, batches, bytes shown as MB).

    On a terminal: a rich bar with the count, rate and ETA. Otherwise (a log, a pipe, CI): one line on stderr
    every LINEAGE_PROGRESS_SECONDS (default 10) while the step runs, so a long step is never silent. `--quiet`
    silences both. A total that turns out low never shows more than 100%: it grows to what was done."""
    import os

    if not enabled or quiet():
        yield lambda done, total: None
        return
    from rich.console import Console  # ~30 ms to import: not when quiet

    console = Console(stderr=True)
    if console.is_terminal:
        with _rich_bar(console, description, unit) as advance:
            yield advance
    else:
        interval = float(os.environ.get("LINEAGE_PROGRESS_SECONDS", PROGRESS_SECONDS))
        with _ProgressLines(description, unit, interval) as lines:
            yield lines.update


def quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and (ctx.find_root().obj or {}).get("quiet"))


@contextmanager
def _rich_bar(console: Any, description: str, unit: str) -> Iterator[Callable[[int, int | None], None]]:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else "", style="progress.data.speed")

    counts = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(), unit, Rate())
    columns = (BarColumn(), TaskProgressColumn(), *counts, TimeElapsedColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console, transient=True) as bar:
        task = bar.add_task(escape(printable(description)), total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=None if total is None else max(total, done))

        yield advance


class _ProgressLines:
    """Periodic one-line progress on stderr from a background thread: the latest count, or time elapsed when a
    step reports nothing for a while (clustering after the batches, a model loading)."""

    def __init__(self, description: str, unit: str, interval: float) -> None:
        import threading
        import time

        self.description, self.unit, self.interval = printable(description), unit, interval
        self.done, self.total = 0, None
        self.start = self.updated = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _ProgressLines:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def update(self, done: int, total: int | None) -> None:
        import time

        self.done, self.total = done, None if total is None else max(total, done)
        self.updated = time.monotonic()

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            echo_err(self.line())

    def line(self) -> str:
        import time

        elapsed = time.monotonic() - self.start
        done, total = self.done, self.total
        scale = max(done, total or 0)
        count = self._number(done, scale) + (f"/{self._number(total, scale)}" if total else "")
        parts = [f"{count} {self._unit(scale)}"]
        if total:
            parts[0] += f" ({done / total:.0%})"
        # The rate up to the last report: a step that finished its batches and is now deciding (clustering,
        # writing) does not look slower and slower.
        busy = self.updated - self.start
        rate = done / busy if done and busy > 0 else 0
        if rate >= 1 or (rate and self.unit == "bytes"):
            parts.append(f"{self._number(rate, rate)} {self._unit(rate)}/s")
        elif rate:  # slow steps (the demo's generations): "0 generations/s" said nothing
            parts.append(f"{1 / rate:,.1f} s each")
        if total and rate and done < total:
            parts.append(f"ETA {_duration((total - done) / rate)}")
        elif total and done >= total:
            parts.append("finishing")
        parts.append(f"{_duration(elapsed)} elapsed")
        return f"{self.description}: " + ", ".join(parts)

    def _number(self, n: float, scale: float) -> str:
        """`n` in the unit `scale` is shown in: MB from a megabyte up, else kB (bytes); a count otherwise."""
        if self.unit != "bytes":
            return f"{n:,.0f}"
        return f"{n / 1e6:,.1f}" if scale >= 1e6 else f"{n / 1e3:,.0f}"

    def _unit(self, scale: float) -> str:
        if self.unit != "bytes":
            return self.unit
        return "MB" if scale >= 1e6 else "kB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def echo_err(message: str) -> None:
    click.echo(message, err=True)
    sys.stderr.flush()


def write_tsv(table: pa.Table, stream: io.TextIOBase | Any) -> None:
    """Tab-separated, one line per row: tabs, newlines and backslashes in values escaped as \\t \\n \\\\."""
    stream.write("\t".join(_tsv(c) for c in table.column_names) + "\n")
    for row in table.to_pylist():
        stream.write("\t".join(_tsv(_cell(v)) for v in row.values()) + "\n")


def _tsv(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return printable(escaped)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet of a query result, written beside and renamed into place. Types Parquet cannot hold
    (intervals, unions) are written as their text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lineage.outputs import atomic_path

    with atomic_path(path) as tmp:
        try:
            pq.write_table(table, tmp)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            pq.write_table(_as_text(table), tmp)


def _as_text(table: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = []
    for column in table.columns:
        try:
            pq.write_table(pa.table({"c": column}), pa.BufferOutputStream())
            columns.append(column)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            columns.append(pa.array([None if v is None else _cell(v) for v in column.to_pylist()], pa.string()))
    return pa.table(columns, names=table.column_names)


def _set_global(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            ctx.find_root().obj[name] = value

    return callback


def accept_global_options(command: click.Command) -> None:
    """Let the global options (`--store`, `--as-of`, `--wait`, `--debug`, `--quiet`) come after the verb too,
    where people put them (`lineage sql "…" --as-of 1`): hidden copies on every command, overriding what came
    before the verb."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_global_options(sub)
        return
    hidden = [
        click.Option(["--store"], expose_value=False, hidden=True, callback=_set_global("store_path")),
        click.Option(["--as-of"], type=int, expose_value=False, hidden=True, callback=_set_global("as_of")),
        click.Option(["--wait"], type=float, expose_value=False, hidden=True, callback=_set_global("wait")),
        click.Option(["--debug"], is_flag=True, expose_value=False, hidden=True, callback=_set_global("debug")),
        click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, hidden=True, callback=_set_global("quiet")),
    ]
    command.params.extend(hidden)
