"""Shared CLI pieces: the error-handling group, opening the store, and output formats."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pyarrow as pa

from lineage.errors import LineageError, first_line


class LineageGroup(click.Group):
    """Turns a LineageError or an OSError into `Error: <one line>` and exit status 1 (`--debug` keeps the
    traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LineageError, OSError) as exc:
            # OSError: the disk or the data location failed under us (full, gone, unreachable): one line too.
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"Error: {first_line(exc)}", err=True)
            ctx.exit(1)


def open_store(ctx: click.Context) -> Any:
    from lineage.store import Store

    obj = ctx.find_root().obj
    return Store(obj["store_path"], as_of=obj["as_of"], wait=obj["wait"])


def store_path(ctx: click.Context) -> str:
    return ctx.find_root().obj["store_path"]


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(f)


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
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def to_json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, indent=2)


def print_table(table: pa.Table, *, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title=title, show_lines=False)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for row in table.to_pylist():
        out.add_row(*("" if v is None else str(_plain(v)) for v in row.values()))
    Console(soft_wrap=False).print(out)


def write_csv(table: pa.Table, stream: io.TextIOBase | Any) -> None:
    writer = csv.writer(stream)
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(
            [json.dumps(v, default=_plain) if isinstance(v, list | dict) else _plain(v) for v in row.values()]
        )


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int | None], None]]:
    """A rich progress bar on stderr, fed with (done, total); silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda done, total: None
        return
    columns = (BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def echo_err(message: str) -> None:
    click.echo(message, err=True)
    sys.stderr.flush()
