"""Read-only inspection: sql, show, stats."""

from __future__ import annotations

import sys
from typing import Any

import click

from lineage.cli.common import json_option, open_store, print_table, to_json, write_csv
from lineage.errors import LineageError


@click.command()
@click.argument("query")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str, output: str | None) -> None:
    """Run one read-only SQL query over the store's views.

    Views: samples, batches, commits, segments, lineage_edges(parent_id, child_id);
    table macros ancestors(id) and descendants(id) return (sample_id, depth).
    Statements that would change anything are refused.

    \b
    Examples:
      lineage sql "SELECT source, generation, count(*) FROM samples GROUP BY ALL ORDER BY ALL"
      lineage sql "SELECT * FROM ancestors('1c9579')" --format json
      lineage sql "SELECT * FROM samples" --format parquet --output samples.parquet
    """
    table = open_store(ctx).sql(query)
    if fmt == "parquet":
        if not output:
            raise LineageError("--format parquet needs --output FILE")
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        return
    with open(output, "w", encoding="utf-8", newline="") if output else _stdout() as stream:
        if fmt == "json":
            stream.write(to_json(table.to_pylist()) + "\n")
        elif fmt == "csv" or output:
            write_csv(table, stream)
        else:
            print_table(table)


class _stdout:
    def __enter__(self) -> Any:
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


@click.command()
@click.argument("sample_id")
@json_option
@click.pass_context
def show(ctx: click.Context, sample_id: str, as_json: bool) -> None:
    """Show a sample's provenance, ancestors back to real data, descendants and batch.

    SAMPLE_ID may be a unique prefix of a sample id, or your own external id.

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
        click.echo(f"{key:>13}: {sample[key]}")
    click.echo(f"{'text':>13}: {sample['text'][:500]}")
    batch = info["batch"]
    if batch:
        click.echo(f"{'batch':>13}: {batch['batch_id']} from {batch['input_uri']} row {sample['input_row']}")
    if info["sets"]:
        click.echo(f"{'sets':>13}: {', '.join(info['sets'])}")
    click.echo(f"filters: {len(info['filters']) or 'none'}")
    for e in info["filters"]:
        related = f" (related: {e['related_id'][:12]})" if e["related_id"] else ""
        score = f" score {e['score']:.3g}" if e["score"] is not None else ""
        click.echo(f"  v{e['version']} {e['filter']}: {e['decision']} {e['reason'] or ''}{score}{related}")
    for title in ("ancestors", "descendants"):
        rows = info[title]
        click.echo(f"{title}: {len(rows) or 'none'}")
        for r in rows[:50]:
            click.echo(
                f"  {'  ' * (r['depth'] - 1)}{r['depth']} {r['sample_id'][:12]} {r['origin']}/{r['source']} "
                f"gen {r['generation']}: {r['text'][:60]}"
            )
        if len(rows) > 50:
            click.echo(f"  ... {len(rows) - 50} more (--json lists all)")


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
