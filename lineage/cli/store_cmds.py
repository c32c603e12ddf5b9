"""Store lifecycle: init, doctor, gc, compact, migrate, status."""

from __future__ import annotations

import click

from lineage.cli.common import json_option, open_store, store_path, to_json


@click.command()
@click.argument("path", required=False)
@click.option(
    "--data",
    "data_uri",
    default=None,
    metavar="URI",
    help="Keep the data (segments, features, workers' staging) here instead of in PATH: a shared path or a "
    "pyarrow filesystem URI such as s3://bucket/prefix. The catalog stays in PATH.",
)
@click.pass_context
def init(ctx: click.Context, path: str | None, data_uri: str | None) -> None:
    """Create an empty store at PATH (default: --store).

    Credentials for object storage come from the environment (AWS_ACCESS_KEY_ID, ...), never the URI;
    options such as endpoint_override, region or scheme go in the URI's query string.

    \b
    Examples:
      lineage init ./store
      lineage init ./store --data /mnt/shared/lineage-data
      lineage init ./store --data "s3://team-bucket/lineage?region=eu-west-1"
    """
    from lineage.store import Store

    store = Store.init(path or store_path(ctx), data=data_uri)
    where = f" (data in {store.data})" if store.data.uri else ""
    click.echo(f"initialised lineage store at {store.root}{where}")


@click.command()
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check every registered segment (present, row count, sha256) and list orphans.

    Exits 1 if a registered segment is missing or damaged. Orphans (files no commit registered,
    left by an interrupted write) are harmless; `lineage gc --yes` removes them.

    \b
    Example:
      lineage --store ./store doctor
    """
    report = open_store(ctx).doctor()
    if as_json:
        click.echo(to_json(report.as_dict()))
    else:
        status = "ok" if report.ok else "PROBLEMS"
        click.echo(
            f"{status}: version {report.version}, format {report.format_version}, "
            f"{report.segments:,} segments, {report.rows:,} rows" + (f", data in {report.data}" if report.data else "")
        )
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        for orphan in report.orphans:
            click.echo(f"orphan: {orphan} (not registered; `lineage gc --yes` removes it)")
        if report.missing_parents:
            child, parent = report.missing_parents[0]
            click.echo(
                f"missing parents: {len(report.missing_parents):,} references to samples not in the store "
                f"(first: {child} -> {parent})"
            )
        for line in report.stale_filters:
            click.echo(f"warning: filter {line}; `lineage filter run NAME --new` decides them")
    if not report.ok:
        ctx.exit(1)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `12h`, `7d`, `2w` (or plain seconds) as seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise click.BadParameter(f"`{text}` is not a duration such as 90s, 30m, 12h, 7d or 2w",
                                 param_hint="--older-than")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


@click.command()
@click.option("--yes", is_flag=True, help="Really delete (without it, only list what would go).")
@click.option(
    "--retain-versions", type=int, default=None, metavar="N",
    help="Also remove segments compaction replaced that none of the last N versions reads (--as-of older "
    "versions then fails).",
)
@click.option(
    "--older-than", default=None, metavar="DURATION",
    help="Also remove segments compaction replaced that no version that was current within DURATION (7d, 12h) "
    "reads. With --retain-versions, the longer retention wins.",
)
@click.pass_context
def gc(ctx: click.Context, yes: bool, retain_versions: int | None, older_than: str | None) -> None:
    """Remove orphan files that no commit registered; with a retention, also the segments `lineage compact`
    replaced that no retained version reads. A dry run unless --yes.

    Without a retention every version stays readable with --as-of.

    \b
    Example:
      lineage --store ./store gc          # list
      lineage --store ./store gc --yes    # delete
      lineage --store ./store gc --yes --older-than 7d
    """
    seconds = parse_duration(older_than) if older_than is not None else None
    removed = open_store(ctx).gc(dry_run=not yes, retain_versions=retain_versions, older_than=seconds)
    verb = "removed" if yes else "would remove"
    for path in removed:
        click.echo(f"{verb}: {path}")
    click.echo(f"{verb} {len(removed)} file(s)" + ("" if yes or not removed else "; pass --yes to delete"))


@click.command()
@click.option("--target-rows", type=int, default=None, metavar="N",
              help="Rows per compacted segment (default 1,000,000); segments this large are left alone.")
@click.option("--samples-only", is_flag=True, help="Compact the sample segments only (not the filter events).")
@click.option("--auto", "auto", default=None, metavar="N|off",
              help="Only set the automatic policy: merge N small segments of one size tier after an ingest or "
              "filter run (default 16), or `off`.")
@json_option
@click.pass_context
def compact(ctx: click.Context, target_rows: int | None, samples_only: bool, auto: str | None, as_json: bool) -> None:
    """Rewrite small sample and events segments into large ones sorted by sample_id, as one commit.

    Queries then open few files and skip row groups by sample_id. Reads --as-of earlier versions see what
    they saw before: the replaced segments stay until `lineage gc --retain-versions N` or `--older-than`.
    Waits for another writer as --wait says, else fails with the lock message.

    \b
    Examples:
      lineage --store ./store compact
      lineage --store ./store compact --auto off     # no automatic compaction after ingests
      lineage --store ./store gc --yes --retain-versions 10
    """
    store = open_store(ctx)
    if auto is not None:
        if auto != "off" and not auto.isdigit():
            raise click.BadParameter(f"`{auto}` is not a number or `off`", param_hint="--auto")
        store.set_auto_compact(None if auto == "off" else int(auto))
        click.echo(f"automatic compaction: {'off' if auto in ('off', '0') else f'merge {auto} segments per tier'}")
        return
    kinds = ("samples", "edges") if samples_only else ("samples", "events", "edges")
    result = store.compact(kinds=kinds, target_rows=target_rows)
    if as_json:
        click.echo(to_json(result.__dict__))
    else:
        click.echo(result.summary())


@click.command()
@click.argument("dest")
@click.pass_context
def backup(ctx: click.Context, dest: str) -> None:
    """Copy the store to DEST (a new directory), consistently, while readers go on.

    Holds the writer lock while copying, so writers wait (see --wait) and no commit lands halfway. Restore by
    putting DEST where the store was (or open it with --store DEST); `lineage doctor` checks it.

    \b
    Example:
      lineage --store ./store backup /backups/store-2026-12-06
    """
    copy = open_store(ctx).backup(dest)
    click.echo(f"backed up to {copy}")


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Upgrade the store's format to the one this lineage writes.

    Takes the writer lock; one step at a time, each in a transaction. Back the store up first
    (`lineage backup`).

    \b
    Example:
      lineage --store ./store migrate
    """
    from lineage.store import Store

    steps = Store.migrate(store_path(ctx))  # a store of an older format cannot be opened until it is migrated
    click.echo(f"migrated through formats {steps}" if steps else f"store is at format {Store.format_version()}")


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """What is out of date: per filter, the samples it has not seen yet (by source); per build, whether the
    store changed since it was made. A build refuses while a filter it honours has unseen pool samples.

    \b
    Examples:
      lineage status
      lineage filter run exact-dedup --new     # decide the unseen samples only
      lineage build spec.yaml --refresh        # or let the build do it
    """
    result = open_store(ctx).status()
    if as_json:
        filters = [{**f.__dict__, "unseen": f.unseen} for f in result.filters]
        click.echo(to_json({"version": result.version, "filters": filters, "builds": result.builds}))
        return
    for line in result.lines():
        click.echo(line)


COMMANDS = [init, doctor, gc, compact, backup, migrate, status]
