"""Builds: build (plan/commit), build show, builds, diff, export."""

from __future__ import annotations

from typing import Any

import click

from lineage.cli.common import (
    emit,
    format_options,
    json_option,
    open_store,
    output_format,
    print_table,
    progress_bar,
    to_json,
)


class BuildGroup(click.Group):
    """`lineage build SPEC` runs a build; `lineage build show NAME` shows one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("build", cls=BuildGroup)
def build_group() -> None:
    """Draw a blended training set from a spec (`lineage build SPEC`), or show one (`build show`).

    A spec (YAML, JSON or TOML; schema: lineage/schemas/build_spec.schema.json, README "Builds") names the
    build, its size (a number, or `max`: the most the pool and the quotas allow) and its quotas:

    \b
      name: mix
      size: max                 # or 10000
      quotas:
        origin:
          real: {min: 0.5}      # at least half real
        source:
          synthetic-*: {max: 0.3, target: 0.2}
      protected: [heldout]      # never in the build, nor anything derived from it

    \b
    Examples:
      lineage build spec.yaml --dry-run      # print the allocation and the size, write nothing
      lineage build spec.yaml                # commit build NAME version N
      lineage build show mix@v2
    """


def _table(rows: list[dict[str, Any]], title: str) -> None:
    import pyarrow as pa

    print_table(pa.Table.from_pylist(rows), title=title)


@build_group.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the allocation and floors; write nothing.")
@click.option("--refresh", is_flag=True, help="First run the honoured filters over the samples they have not seen.")
@click.option("--allow-stale", is_flag=True, help="Build although honoured filters have not seen all of the pool.")
@json_option
@click.pass_context
def build_run(ctx: click.Context, spec: str, dry_run: bool, refresh: bool, allow_stale: bool, as_json: bool) -> None:
    """Build from SPEC (YAML, JSON or TOML). `--as-of` (before the verb) draws from an earlier version.

    A build refuses when a filter it honours has not seen samples of its pool (`lineage status` lists
    them): `--refresh` decides them first, `--allow-stale` builds anyway and records the counts.

    \b
    Examples:
      lineage build spec.yaml --refresh
      lineage build spec.yaml --allow-stale
    """
    with progress_bar(f"build {spec}", unit="steps") as progress:
        result = open_store(ctx).build(
            spec, dry_run=dry_run, refresh=refresh, allow_stale=allow_stale, progress=progress
        )
    outcome = result.outcome()
    if as_json:
        click.echo(to_json(outcome.as_dict()))
        return
    _table(outcome.allocation, "allocation")
    if outcome.floors:
        _table(outcome.floors, "floors")
    click.echo(outcome.summary)
    for line in outcome.notes:
        click.echo(line)


@build_group.command("show")
@click.argument("ref")
@json_option
@click.pass_context
def build_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show build NAME or NAME@vN: its allocation and floors tables, then size, composition, licences and checks
    (`--json` adds the spec it was built from, with `size: max` resolved to the number).

    \b
    Examples:
      lineage build show mix            # its latest version
      lineage build show mix@v2 --json
    """
    details = open_store(ctx).show_build(ref)
    if as_json:
        click.echo(to_json(details.as_dict()))
        return
    _table(details.doc["allocation"], "allocation")
    if details.doc["floors"]:
        _table(details.doc["floors"], "floors")
    for line in details.lines():
        click.echo(line)


@click.command()
@format_options
@click.pass_context
def builds(ctx: click.Context, fmt: str | None, as_json: bool) -> None:
    """List builds and their versions.

    \b
    Examples:
      lineage builds
      lineage builds --format csv > builds.csv
    """
    emit(open_store(ctx).builds(), output_format(fmt, as_json))


@click.command()
@click.argument("a")
@click.argument("b")
@json_option
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Compare two builds: composition and membership changes.

    \b
    Example:
      lineage diff mix@v1 mix@v2
    """
    result = open_store(ctx).diff(a, b)
    if as_json:
        click.echo(to_json(result))
        return
    m = result["members"]
    click.echo(
        f"{result['a']} -> {result['b']}: {m['both']:,} in both, {m['removed']:,} removed, "
        f"{m['added']:,} added; spec {'changed' if result['spec_changed'] else 'unchanged'}"
    )
    for dim, rows in result["composition"].items():
        changes = [f"{r['value']} {r['a']:,}->{r['b']:,}" for r in rows if r["change"]]
        if changes:
            click.echo(f"  {dim}: " + ", ".join(changes))


@click.command()
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "hf"]), default="parquet", show_default=True)
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option(
    "--columns",
    help="Comma-separated columns: text, messages (default), record, _lineage_source, _lineage_generation, ...",
)
@click.option(
    "--verbatim/--no-verbatim", default=None,
    help="The input records byte for byte instead of training columns (the default for jsonl only).",
)
@click.option("--with-provenance", is_flag=True, help="Add every provenance column (_lineage_*).")
@click.option(
    "--split", "splits", multiple=True, help="NAME=SHARE, e.g. validation=0.01 (repeatable); the rest is train."
)
@click.option("--split-seed", type=int, help="Seed of the split (default: the build's seed).")
@click.option("--shard-size", help="Rows per file (100000) or bytes per file (500MB).")
@click.option("--force", is_flag=True, help="Replace an earlier export at OUTPUT (atomically); never other files.")
@json_option
@click.pass_context
def export(
    ctx: click.Context, ref: str, fmt: str, output: str, columns: str | None, verbatim: bool | None,
    with_provenance: bool, splits: tuple[str, ...], split_seed: int | None, shard_size: str | None, force: bool,
    as_json: bool,
) -> None:
    """Export build NAME[@vN] for training, with manifest.json and croissant.json (Croissant 1.1).

    Parquet and hf exports carry `text` (the canonical text lineage deduplicated and checked) and `messages`
    (chat records as a list of {role, content}); JSONL keeps the input records byte for byte unless
    --no-verbatim or --columns is given. Files are data/train-00000-of-00001.parquet (Hugging Face's
    layout); --format hf writes a folder datasets.load_from_disk(OUTPUT) opens. A sample and its lineage
    relatives always land in the same split. The licences the export carries are listed in the manifest,
    with a warning for non-commercial, share-alike and unknown ones.

    \b
    Examples:
      lineage export mix@v1 --output out/mix
      lineage export mix@v1 --format hf --split validation=0.01 --output out/mix-hf
      lineage export mix@v1 --format jsonl --output out/mix-jsonl --force
      lineage export mix@v1 --columns text,_lineage_source --shard-size 100000 --output out/mix
    """
    store = open_store(ctx)
    with progress_bar(f"export {ref}") as progress:
        result = store.export(
            ref, output, format=fmt, columns=columns.split(",") if columns else None, verbatim=verbatim,
            with_provenance=with_provenance, split=list(splits), split_seed=split_seed, shard_size=shard_size,
            force=force, progress=progress,
        )
    if as_json:
        click.echo(to_json({
            "path": str(result.path), "format": result.format, "columns": result.columns, "splits": result.splits,
            "files": result.files, "licenses": [r.as_dict() for r in result.licenses], "warnings": result.warnings,
        }))
        return
    rows = ", ".join(f"{name} {n:,}" for name, n in result.splits.items())
    mix = ", ".join(f"{r.license} {r.share:.1%}" for r in result.licenses)
    click.echo(f"exported {rows} rows in {len(result.files)} files to {result.path} (manifest.json, croissant.json)")
    click.echo(f"licences: {mix}")
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)


COMMANDS = [build_group, builds, diff, export]
