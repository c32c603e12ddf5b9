"""Attribution (`lineage attribute`, `attribute ablate`) and reports (`lineage report build|models`)."""

from __future__ import annotations

from typing import Any

import click

from lineage.cli.common import json_option, open_store, print_table, to_json
from lineage.dimensions import PROVENANCE_DIMENSIONS

BY = click.Choice(PROVENANCE_DIMENSIONS)


class AttributeGroup(click.Group):
    """`lineage attribute --metric M` attributes; `lineage attribute ablate BUILD` writes ablation specs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("attribute", cls=AttributeGroup)
def attribute_group() -> None:
    """Which training data is behind a worse model metric? (`lineage attribute --metric NAME`)

    \b
    Examples:
      lineage attribute --metric acc --benchmark hellaswag --by source
      lineage attribute ablate mix@v3 --by source --output ablations/
    """


@attribute_group.command("run")
@click.option("--metric", required=True, help="An eval metric of the registered models.")
@click.option("--by", default="source", show_default=True, type=BY, help="Groups of the training data.")
@click.option("--models", help="Comma-separated model names (default: all registered).")
@click.option("--benchmark", help="When the metric was recorded on several benchmarks.")
@click.option("--lower-is-better", "lower", is_flag=True, default=None, help="Default: guessed from the name.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@json_option
@click.pass_context
def attribute_run(
    ctx: click.Context,
    metric: str,
    by: str,
    models: str | None,
    benchmark: str | None,
    lower: bool | None,
    seed: int,
    as_json: bool,
) -> None:
    """Timeline, mixture regression, data-side health and ranked suspects for METRIC.

    \b
    Examples:
      lineage attribute --metric acc --benchmark hellaswag --by source
      lineage attribute run --metric heldout_loss --lower-is-better --by generation --json
    """
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    higher = None if lower is None else not lower
    result = open_store(ctx).attribute(
        metric, by=by, models=names, benchmark=benchmark, higher_is_better=higher, seed=seed
    )
    if as_json:
        click.echo(to_json(result.as_dict()))
        return
    _print_attribution(result)


def _print_attribution(result: Any) -> None:
    import pyarrow as pa

    rows = [{"model": t["model"], result.metric: _r(t["value"]), **_pct(t["shares"])} for t in result.timeline]
    print_table(pa.Table.from_pylist(rows), title=f"timeline: {result.metric} and shares by {result.by}")
    reg = result.regression
    if reg.identified:
        coefs = [
            {"group": g, "coefficient": _r(c), "low": _r(lo), "high": _r(hi)}
            for g, c, lo, hi in zip(reg.groups, reg.coefficients, reg.low, reg.high, strict=True)
        ]
        print_table(pa.Table.from_pylist(coefs), title="mixture regression")
    click.echo(f"regression: {reg.message}")
    health = [{"group": g, **{k: _r(v) for k, v in h.items()}} for g, h in result.health.items()]
    print_table(pa.Table.from_pylist(health), title=f"data-side health ({result.health_source})")
    for i, s in enumerate(result.suspects, start=1):
        click.echo(f"{i}. {s['group']} ({s['points']} points): " + "; ".join(s["evidence"]))
    if not result.suspects:
        click.echo("no suspect group")
    for note in result.notes:
        click.echo(f"note: {note}")


def _pct(shares: dict[str, float]) -> dict[str, str]:
    return {g: f"{s:.1%}" for g, s in shares.items()}


def _r(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@attribute_group.command("ablate")
@click.argument("ref", metavar="BUILD[@vN]")
@click.option("--by", default="source", show_default=True, type=BY)
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Directory for the specs.")
@click.pass_context
def attribute_ablate(ctx: click.Context, ref: str, by: str, output: str) -> None:
    """Write one leave-one-group-out spec per group of the build (YAML, for `lineage build`).

    \b
    Example:
      lineage attribute ablate mix@v3 --by source --output ablations/
    """
    paths = open_store(ctx).ablate(ref, by=by, output=output)
    for path in paths:
        click.echo(str(path))
    click.echo(f"wrote {len(paths):,} specs to {output}")


@click.group("report")
def report_group() -> None:
    """One self-contained report file about a build or about the registered models.

    \b
    The format follows the output's extension (.html, .md, .json) unless --format says otherwise:
    HTML has inline SVG charts and no scripts and loads nothing from the network; Markdown has the same
    content as tables; JSON has the data both render.

    \b
    Examples:
      lineage report build mix@v2 --output reports/mix.html
      lineage report models --output reports/models.html --metric acc
    """


def _format_option(f: Any) -> Any:
    f = click.option("--format", "fmt", metavar="html|md|json", help="Default: from the output's extension.")(f)
    return click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Report file.")(f)


@report_group.command("build")
@click.argument("ref", metavar="NAME[@vN]")
@_format_option
@click.pass_context
def report_build(ctx: click.Context, ref: str, output: str, fmt: str | None) -> None:
    """Report on a build: spec, quotas, floors, composition, funnel, samples.

    Build NAME (its latest version unless @vN): the spec, quotas and diversity floors (target vs
    achieved), composition by origin, source and generation, the filter funnel from ingest to members,
    the contamination check against protected sets, and a few member samples per source.

    \b
    Example:
      lineage report build mix@v2 --output mix.html
    """
    click.echo(f"wrote {open_store(ctx).report('build', ref, output=output, format=fmt)}")


@report_group.command("models")
@click.option("--metric", help="Default: the eval metric recorded most often (not output diversity).")
@click.option("--benchmark", help="When the metric was recorded on several benchmarks.")
@click.option("--by", default="source", show_default=True, type=BY, help="Groups for the attribution.")
@_format_option
@click.pass_context
def report_models(
    ctx: click.Context, metric: str | None, benchmark: str | None, by: str, output: str, fmt: str | None
) -> None:
    """Report on the models: metric and output diversity per generation, attribution.

    A line per lineage of models (chains of `parent` links), mitigated lineages (every build keeps at
    least 10% real data) beside unmitigated ones, each model's training-data composition, and the
    attribution of the metric to the sources of the training data.

    \b
    Example:
      lineage report models --output models.html --metric acc --benchmark heldout-qa
    """
    path = open_store(ctx).report("models", output=output, format=fmt, metric=metric, benchmark=benchmark, by=by)
    click.echo(f"wrote {path}")


COMMANDS = [attribute_group, report_group]
