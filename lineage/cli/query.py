"""Read-only inspection: sql, show, stats."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from lineage import readonly
from lineage.cli.common import (
    json_option,
    open_store,
    print_table,
    printable,
    to_json,
    write_csv,
    write_parquet,
    write_tsv,
)
from lineage.errors import LineageError
from lineage.outputs import atomic_write

if TYPE_CHECKING:
    import pyarrow as pa


FORMATS = ["table", "csv", "tsv", "json", "jsonl", "parquet"]


@click.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Default: a table on a terminal, TSV when piped (one line per row, for `cut`, `sort`, scripts).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=readonly.DEFAULT_TIMEOUT,
    show_default=True,
    help="Stop the query after this many seconds (0: no limit).",
)
@click.option(
    "--memory-limit",
    default=readonly.DEFAULT_MEMORY_LIMIT,
    show_default=True,
    help="DuckDB's memory limit for the query, e.g. 500MB, 8GB.",
)
@click.pass_context
def sql(
    ctx: click.Context, query: str, fmt: str | None, output: str | None, timeout: float, memory_limit: str
) -> None:
    """Run one read-only SQL query over the store's views.

    Views: samples, batches, commits, segments, lineage_edges(parent_id, child_id), runs, events, status,
    sets, set_members, builds, models, evals; table macros ancestors(id) and descendants(id) return
    (sample_id, depth). Only a plain query runs (SELECT, or EXPLAIN [ANALYZE] of one); anything that would
    change something is refused, and the store's files cannot be written from here.

    CSV is for people and spreadsheets: a text cell starting with = + - @ gets a leading ' so that a
    spreadsheet does not run it as a formula. Use json, jsonl or parquet for exact values. JSON writes
    NaN and infinities as null.

    \b
    Examples:
      lineage sql "SELECT source, generation, count(*) FROM samples GROUP BY ALL ORDER BY ALL"
      lineage sql "SELECT * FROM samples LIMIT 5" --format jsonl
      lineage sql "SELECT * FROM samples" --format parquet --output samples.parquet
    """
    store = open_store(ctx)
    fmt = fmt or ("csv" if output else "table" if sys.stdout.isatty() else "tsv")
    target = store.output_path(output) if output else None  # before the query: a wrong path fails at once
    table = store.sql(query, timeout=timeout or None, memory_limit=memory_limit)
    if fmt == "parquet":
        if target is None:
            raise LineageError("--format parquet needs --output FILE")
        write_parquet(table, target)
    elif target is not None:
        with atomic_write(target, "w", encoding="utf-8", newline="") as stream:
            _write(table, "csv" if fmt == "table" else fmt, stream)
    elif fmt == "table":
        print_table(table)
    else:
        _write(table, fmt, sys.stdout)
        sys.stdout.flush()


def _write(table: pa.Table, fmt: str, stream: Any) -> None:
    if fmt == "json":
        stream.write(to_json(table.to_pylist()) + "\n")
    elif fmt == "jsonl":
        for row in table.to_pylist():
            stream.write(to_json(row, indent=None) + "\n")
    elif fmt == "tsv":
        write_tsv(table, stream)
    else:
        write_csv(table, stream, escape_formulas=True)


@click.command()
@click.argument("sample_id")
@json_option
@click.pass_context
def show(ctx: click.Context, sample_id: str, as_json: bool) -> None:
    """Show a sample's provenance, ancestors back to real data, descendants and batch.

    SAMPLE_ID may be a unique prefix of a sample id, your own external id, or SOURCE:ID when several
    sources use that id. Filter decisions name the related sample (for a dropped duplicate, the one kept).

    \b
    Example:
      lineage show 1c9579
    """
    info = open_store(ctx).sample(sample_id)
    if as_json:
        click.echo(to_json(info))
        return
    sample = info["sample"]
    for key in (
        "sample_id",
        "external_id",
        "origin",
        "source",
        "method",
        "generator",
        "generation",
        "parent_ids",
        "license",
        "language",
        "tags",
        "gen_params",
        "content_hash",
        "version",
        "ingested_at",
    ):
        click.echo(printable(f"{key:>13}: {_shown(sample[key])}"))
    click.echo(printable(f"{'text':>13}: {sample['text'][:500]}"))
    batch = info["batch"]
    if batch:
        click.echo(printable(f"{'batch':>13}: {batch['batch_id']} from {batch['input_uri']} row {sample['input_row']}"))
    if info["sets"]:
        click.echo(printable(f"{'sets':>13}: {', '.join(info['sets'])}"))
    click.echo(f"filters: {len(info['filters']) or 'none'}")
    for e in info["filters"]:
        named = f", id {e['related_external_id']}" if e.get("related_external_id") else ""
        related = f" (related: {e['related_id'][:12]}{named})" if e["related_id"] else ""
        score = f" score {e['score']:.3g}" if e["score"] is not None else ""
        click.echo(printable(f"  v{e['version']} {e['filter']}: {e['decision']} {e['reason'] or ''}{score}{related}"))
    for title in ("ancestors", "descendants"):
        rows = info[title]
        click.echo(f"{title}: {len(rows) or 'none'}")
        for r in rows[:50]:
            click.echo(
                printable(
                    f"  {'  ' * (r['depth'] - 1)}{r['depth']} {r['sample_id'][:12]} {r['origin']}/{r['source']} "
                    f"gen {r['generation']}: {r['text'][:60]}"
                )
            )
        if len(rows) > 50:
            click.echo(f"  ... {len(rows) - 50} more (--json lists all)")


def _shown(value: Any) -> str:
    """A field as people read it: lists and maps as JSON, no value as a dash (not Python's reprs)."""
    if value is None:
        return "-"
    return to_json(value, indent=None) if isinstance(value, list | dict) else str(value)


@click.command()
@click.option("--by", default="origin", show_default=True, help="Comma-separated dimensions to group by.")
@json_option
@click.pass_context
def stats(ctx: click.Context, by: str, as_json: bool) -> None:
    """Counts, shares and text lengths per group.

    \b
    Example:
      lineage stats --by origin,source,generation
    """
    dims = [d.strip() for d in by.split(",") if d.strip()]
    table = open_store(ctx).stats(by=dims)
    if as_json:
        click.echo(to_json(table.to_pylist()))
    else:
        print_table(table)


COMMANDS = [sql, show, stats]
