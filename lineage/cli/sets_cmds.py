"""Sets, takedowns, human review and imported decisions."""

from __future__ import annotations

import click

from lineage.cli.common import emit, format_options, json_option, open_store, output_format, to_json


@click.group("set")
def set_group() -> None:
    """Named sample sets; protected sets (held-out evaluation data) never enter a build.

    \b
    Examples:
      lineage set create heldout --protected
      lineage ingest heldout.jsonl --origin real --source eval --set heldout
      lineage set list
    """


@set_group.command("create")
@click.argument("name")
@click.option("--where", help="SQL predicate over `samples`.")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False), help="File of sample ids or your own ids.")
@click.option("--protected", is_flag=True, help="Held-out data: never in a build, checked for contamination.")
@click.option("--description", help="What the set is for.")
@click.pass_context
def set_create(
    ctx: click.Context, name: str, where: str | None, ids_file: str | None, protected: bool, description: str | None
) -> None:
    """Create set NAME from a predicate, an ids file, or empty (then `ingest --set NAME`).

    \b
    Examples:
      lineage set create heldout --protected
      lineage ingest heldout.jsonl --origin real --source eval --set heldout
      lineage set create gold --where "source = 'wordnet' AND length(text) > 80"
    """
    info = open_store(ctx).create_set(
        name, where=where, ids_file=ids_file, protected=protected, description=description
    )
    kind = "protected set" if protected else "set"
    click.echo(f"created {kind} {name} with {info['members']:,} samples (version {info['version']})")


@set_group.command("list")
@format_options
@click.pass_context
def set_list(ctx: click.Context, fmt: str | None, as_json: bool) -> None:
    """List sets with member counts.

    \b
    Examples:
      lineage set list
      lineage set list --json
    """
    emit(open_store(ctx).sets(), output_format(fmt, as_json))


@set_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def set_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a set: protection, composition and a preview.

    \b
    Example:
      lineage set show heldout
    """
    info = open_store(ctx).show_set(name)
    if as_json:
        click.echo(to_json(info))
        return
    click.echo(f"{info['name']}: {'protected, ' if info['protected'] else ''}{info['members']:,} samples")
    for row in info["composition"]:
        click.echo(f"  {row['origin']}/{row['source']}: {row['n']:,}")
    for row in info["preview"]:
        click.echo(f"  {row['sample_id'][:12]} {row['text']}")


@click.command()
@click.option("--source", help="Take down everything from this source.")
@click.option("--where", help="Or: a SQL predicate over `samples`.")
@click.option("--reason", required=True, help="Why (recorded as takedown:<reason>).")
@json_option
@click.pass_context
def takedown(ctx: click.Context, source: str | None, where: str | None, reason: str, as_json: bool) -> None:
    """Drop matching samples and all their descendants from every future build.

    \b
    Examples:
      lineage takedown --source scraped-forum --reason "licence withdrawn"
      lineage takedown --where "external_id = 'doc-17'" --reason gdpr_request
    """
    result = open_store(ctx).takedown(source=source, where=where, reason=reason)
    click.echo(to_json(result.__dict__) if as_json else result.summary())


@click.group()
def review() -> None:
    """Human review as a filter: export a sample, import the verdicts.

    \b
    Examples:
      lineage review export --where "origin = 'synthetic'" --n 200 --output review.csv
      lineage review import review.csv --reviewer alice
    """


@review.command("export")
@click.option("--where", help="SQL predicate over `samples`.")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False))
@click.pass_context
def review_export(ctx: click.Context, where: str | None, n: int, seed: int, output: str) -> None:
    """Write a seeded random sample to CSV with an empty `verdict` column (keep, drop or flag).

    The file is for people and spreadsheets: a text cell starting with = + - @ gets a leading ' so that a
    spreadsheet does not run it as a formula (`review import` reads the verdicts, not the text).

    \b
    Example:
      lineage review export --where "origin = 'synthetic'" --n 200 --seed 1 --output review.csv
    """
    count = open_store(ctx).export_review(output, where=where, n=n, seed=seed)
    click.echo(f"wrote {count:,} samples to {output}; fill in `verdict` (keep, drop or flag) and `note`")


@review.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--reviewer", required=True, help="Who reviewed.")
@json_option
@click.pass_context
def review_import(ctx: click.Context, path: str, reviewer: str, as_json: bool) -> None:
    """Record the verdicts of a review CSV as decisions of filter `human-review`.

    \b
    Example:
      lineage review import review.csv --reviewer alice
    """
    result = open_store(ctx).import_review(path, reviewer=reviewer)
    click.echo(to_json(result.__dict__) if as_json else result.summary())


@click.group()
def decisions() -> None:
    """Decisions made by other tools, joining the log.

    \b
    Example:
      lineage decisions import exclusions.jsonl --filter datatrove-gopher
    """


@decisions.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--filter", "filter_name", required=True, help="Name to record them under, e.g. datatrove-gopher.")
@json_option
@click.pass_context
def decisions_import(ctx: click.Context, path: str, filter_name: str, as_json: bool) -> None:
    """Import a CSV/JSONL/Parquet of decisions: sample_id or text, decision, score, reason.

    \b
    Example:
      lineage decisions import exclusions.jsonl --filter datatrove-gopher
    """
    result = open_store(ctx).import_decisions(path, filter_name=filter_name)
    click.echo(to_json(result.__dict__) if as_json else result.summary())


COMMANDS = [set_group, takedown, review, decisions]
