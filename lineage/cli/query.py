"""Read-only inspection: sql, show, stats."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from lineage.cli.common import (
    echo_err,
    emit,
    entry_point,
    format_options,
    nest_json,
    open_store,
    output_format,
    printable,
    to_json,
    write_csv,
    write_parquet,
    write_tsv,
)
from lineage.errors import LineageError
from lineage.limits import QUERY_MEMORY_LIMIT, QUERY_TIMEOUT
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
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=QUERY_TIMEOUT,
    show_default=True,
    help="Stop the query after this many seconds (0: no limit).",
)
@click.option(
    "--memory-limit",
    default=QUERY_MEMORY_LIMIT,
    show_default=True,
    help="DuckDB's memory limit for the query, e.g. 500MB, 8GB.",
)
@click.pass_context
def sql(
    ctx: click.Context,
    query: str,
    fmt: str | None,
    as_json: bool,
    output: str | None,
    timeout: float,
    memory_limit: str,
) -> None:
    """Run one read-only SQL query over the store's views.

    \b
    Views (as of --as-of when given):
      samples        one row per sample: text, record, origin, source, method, generator, generation,
                     parent_ids, external_id, content_hash, license, language, tags, batch_id, version
      batches        one per ingested file: input_uri, rows read, stored, rejected (rejects)
      commits        one per version: kind, summary
      segments       the Parquet files each commit registered
      runs           filter runs: filter, params, selection, counts, reasons
      events         every filter decision: filter, sample_id, decision, score, reason, related_id
      status         the latest decision per sample and filter
      lineage_edges  (parent_id, child_id), one per parent link
      sets           named sets (protected: held-out data)
      set_members    (set_name, sample_id)
      metrics        recorded diversity values
      builds         builds: name, build_version, spec, composition, checks
      build_members  (name, build_version, sample_id): the members of every build version
      models         registered models and the build each was trained on
      evals          evaluation results per model
    Table macros, taking what `lineage show` takes (a sample id, an id prefix, your own id or
    SOURCE:ID), returning (sample_id, depth):
      ancestors(id)    parents, their parents, ... back to real data
      descendants(id)  children, their children, ...
    and the scalar macro sample_ref(id): the full sample id. Over the protected sets, taking a list of
    set names or NULL (all of them), returning (sample_id):
      protected_samples(names)  their members
      tainted_samples(names)    their members and all their descendants: what no build takes

    Only a plain query runs (SELECT, or EXPLAIN [ANALYZE] of one); anything that would change something
    is refused, and the store's files cannot be written from here.

    Table, CSV and TSV round floats for display; json, jsonl and parquet keep exact values (JSON writes
    NaN and infinities as null). CSV is for people and spreadsheets: a text cell starting with = + - @
    gets a leading ' so that a spreadsheet does not run it as a formula.

    \b
    Examples:
      lineage sql "SELECT source, generation, count(*) FROM samples GROUP BY ALL ORDER BY ALL"
      lineage sql "SELECT s.generation, a.depth FROM ancestors('syn2-00001') a JOIN samples s USING (sample_id)"
      lineage sql "SELECT name, count(*) FROM build_members GROUP BY name" --format json
      lineage sql "SELECT * FROM samples LIMIT 5" --format jsonl
      lineage sql "SELECT * FROM samples" --format parquet --output samples.parquet
      lineage --as-of 3 sql "SELECT count(*) FROM samples"
    """
    store = open_store(ctx)
    fmt = "json" if as_json else fmt or ("csv" if output else None)
    target = store.output_path(output) if output else None  # before the query: a wrong path fails at once
    with _deadline(timeout):
        table = unique_names(store.sql(query, timeout=timeout or None, memory_limit=memory_limit))
    if fmt == "parquet":
        if target is None:
            raise LineageError("--format parquet needs --output FILE")
        write_parquet(table, target)
    elif target is not None:
        with atomic_write(target, "w", encoding="utf-8", newline="") as stream:
            _write(table, "csv" if fmt == "table" else fmt, stream)
    else:
        emit(table, output_format(fmt))


GRACE = 1.0  # seconds a query may run past its --timeout before the process ends it


@contextmanager
def _deadline(timeout: float | None) -> Iterator[None]:
    """DuckDB stops a query between vectors of work, so one huge value (`repeat` of hundreds of MB) runs on past the
    interrupt `--timeout` sends. A read-only query holds nothing to clean up: when it has not stopped GRACE seconds
    later, the `lineage` process ends with the interrupt's one line."""
    if not timeout or not entry_point():
        yield
        return

    def expire() -> None:
        echo_err(f"Error: the query ran longer than {timeout:g} s and was stopped; raise --timeout SECONDS")
        os._exit(1)

    timer = threading.Timer(timeout + GRACE, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def unique_names(table: pa.Table) -> pa.Table:
    """`table` with a repeated column name suffixed as DuckDB's CREATE TABLE AS does (`generation`, `generation_1`):
    every output format keys cells by name, so a join selecting `a.x, b.x` would otherwise lose a column."""
    names: list[str] = []
    for name in table.column_names:
        unique, k = name, 0
        while unique in names:
            k += 1
            unique = f"{name}_{k}"
        names.append(unique)
    return table if names == table.column_names else table.rename_columns(names)


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
@format_options
@click.pass_context
def show(ctx: click.Context, sample_id: str, fmt: str | None, as_json: bool) -> None:
    """Show a sample's provenance, ancestors back to real data, descendants and batch.

    SAMPLE_ID may be a unique prefix of a sample id, your own external id, or SOURCE:ID when several
    sources use that id. Filter decisions name the related sample (for a dropped duplicate, the one kept).
    The table lists everything; csv, tsv and jsonl list the sample and its relatives, one per line;
    json has everything, with the original record and gen_params as objects.

    \b
    Examples:
      lineage show 1c9579
      lineage show syn2-00001 --format tsv | cut -f1-3,9     # the sample and its relatives
      lineage show wordnet:real-00042 --json
    """
    info = open_store(ctx).sample(sample_id)
    fmt = output_format(fmt, as_json)
    if fmt == "json":
        click.echo(to_json(_nested(info)))
    elif fmt != "table":
        emit(_relatives(info), fmt)
    else:
        _print_sample(info)


def _nested(info: dict[str, Any]) -> dict[str, Any]:
    """The sample with its JSON text fields (`record`, `gen_params`) as objects, not strings inside strings."""
    return {**info, "sample": nest_json(info["sample"], ("record", "gen_params"))}


RELATIVE_COLUMNS = ("sample_id", "external_id", "origin", "source", "method", "generator", "generation", "text")


def _relatives(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample (relation `sample`, depth 0), then its ancestors and descendants: one row each."""
    rows = [{"relation": "sample", "depth": 0, **{k: info["sample"][k] for k in RELATIVE_COLUMNS}}]
    for relation in ("ancestors", "descendants"):
        rows += [
            {"relation": relation[:-1], "depth": r["depth"], **{k: r.get(k) for k in RELATIVE_COLUMNS}}
            for r in info[relation]
        ]
    return rows


def _print_sample(info: dict[str, Any]) -> None:
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
            click.echo(f"  ... {len(rows) - 50} more (--format tsv or --json lists all)")


def _shown(value: Any) -> str:
    """A field as people read it: lists and maps as JSON, no value as a dash (not Python's reprs)."""
    if value is None:
        return "-"
    return to_json(value, indent=None) if isinstance(value, list | dict) else str(value)


@click.command()
@click.option("--by", default="origin", show_default=True, help="Comma-separated dimensions to group by.")
@format_options
@click.pass_context
def stats(ctx: click.Context, by: str, fmt: str | None, as_json: bool) -> None:
    """Counts, shares and text lengths per group.

    \b
    Examples:
      lineage stats --by origin,source,generation
      lineage stats --by source --format csv > sources.csv
    """
    dims = [d.strip() for d in by.split(",") if d.strip()]
    emit(open_store(ctx).stats(by=dims), output_format(fmt, as_json))


COMMANDS = [sql, show, stats]
