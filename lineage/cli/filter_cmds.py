"""Filters and their log: filter run/list, runs, set, takedown, review, decisions."""

from __future__ import annotations

import click

from lineage.cli.common import (
    emit,
    engine_options,
    format_options,
    json_option,
    open_store,
    output_format,
    parse_param_pairs,
    print_table,
    progress_bar,
    to_json,
)


@click.group("filter")
def filter_group() -> None:
    """Run filters; every decision is recorded (see `lineage runs` and the `events`/`status` views).

    \b
    Examples:
      lineage filter list
      lineage filter run exact-dedup
      lineage filter run near-dedup --param threshold=0.85
    """


@filter_group.command("run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Filter parameter (repeatable).")
@click.option("--where", help="SQL predicate over `samples` selecting what to filter (default: everything).")
@click.option("--force", is_flag=True, help="Run again even if the same run over the same selection exists.")
@click.option("--module", help="A user filter class, package.module:ClassName.")
@click.option(
    "--new", "new_only", is_flag=True,
    help="Only the samples no run with these params decided, judged against those it did (see `lineage status`).",
)
@click.option("--dry-run", is_flag=True, help="Show what the run would decide, per source and reason; write nothing.")
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help="What the out-of-core steps of near-dedup, exact-dedup and contamination hold in memory before they "
    "spill to STORE/tmp, e.g. 2GB (default: a tenth of this machine's memory).",
)
@engine_options(
    ("local", "inline", "ray"),
    "local: a process pool over batches; inline: this process; ray: a Ray cluster (`lineage[ray]`).",
    "Worker processes (local) or concurrent tasks (ray); default: all cores.",
)
@json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    name: str,
    params: tuple[str, ...],
    where: str | None,
    force: bool,
    module: str | None,
    new_only: bool,
    dry_run: bool,
    memory_limit: str | None,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Run filter NAME and record a decision for every selected sample.

    \b
    Examples:
      lineage filter run exact-dedup
      lineage filter run near-dedup --param threshold=0.85
      lineage filter run quality --where "origin = 'synthetic'"
      lineage filter run sql --param where="length(text) < 20" --param reason=too_short
      lineage filter run mine --module my_filters:ShoutingFilter
      lineage filter run quality --engine ray
      lineage filter run near-dedup --engine ray --ray-address auto
      lineage filter run exact-dedup --new        # only what it has not seen (`lineage status`)
      lineage filter run quality --dry-run        # what it would drop, per source; nothing written
      lineage filter run near-dedup --memory-limit 2GB   # spills past 2 GB
    """
    store = open_store(ctx)
    with progress_bar(f"filter {name}") as progress:
        result = store.run_filter(
            name,
            params=parse_param_pairs(params),
            where=where,
            force=force,
            module=module,
            engine=engine,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
            new_only=new_only,
            dry_run=dry_run,
            memory_limit=memory_limit,
        )
    if as_json:
        click.echo(to_json({**result.__dict__, "warnings": result.warnings()}))
        return
    if dry_run and result.by_source:
        import pyarrow as pa

        print_table(pa.Table.from_pylist(result.by_source), title="would decide")
    click.echo(result.summary())
    for line in by_source_lines(result.by_source):
        click.echo(line)
    for line in result.warnings():
        click.echo(line, err=True)


def by_source_lines(by_source: list[dict]) -> list[str]:
    """Drops and flags by source and reason, one line per source (sources without any are left out)."""
    lines: dict[str, list[str]] = {}
    for row in by_source:
        if row["decision"] != "keep":
            lines.setdefault(str(row["source"]), []).append(f"{row['reason'] or row['decision']} {row['n']:,}")
    return [f"  {source}: {', '.join(parts)}" for source, parts in sorted(lines.items())]


@filter_group.command("list")
@format_options
def list_cmd(fmt: str | None, as_json: bool) -> None:
    """List available filters and their parameters.

    \b
    Examples:
      lineage filter list
      lineage filter list --json
    """
    from lineage.store import Store

    rows = [
        # Defaults as JSON (null, true, "text"), as a --param value is written: not Python's None and True.
        {**f, "params": ", ".join(
            f"{k}={'(required)' if required else to_json(default, indent=None)}" for k, required, default in f["params"]
        )}
        for f in Store.filters()
    ]
    emit(rows, output_format(fmt, as_json))


@click.command()
@click.option("--filter", "filter_name", help="Only runs of this filter.")
@format_options
@click.pass_context
def runs(ctx: click.Context, filter_name: str | None, fmt: str | None, as_json: bool) -> None:
    """History of filter runs with their counts, drops by source (`dropped/decided`) and a warning for each
    source a run dropped more than 90% of (rules that do not fit that data: see quality's presets); reasons,
    selection and the breakdown by source and reason as objects in --json / --format jsonl.

    \b
    Examples:
      lineage runs --filter near-dedup
      lineage runs --format tsv | cut -f1,2,6
      lineage runs --json
    """
    table = open_store(ctx).runs(filter_name)
    chosen = output_format(fmt, as_json)
    if chosen not in ("json", "jsonl"):
        table = table.drop_columns(["by_source"])  # rows by source, decision and reason: JSON formats only
    emit(table, chosen, json_columns=("reasons", "selection", "by_source"))


COMMANDS = [filter_group, runs]
