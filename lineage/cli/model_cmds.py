"""Models and their evaluations: model register, models, eval record / import / outputs / list."""

from __future__ import annotations

from typing import Any

import click

from lineage.cli.common import (
    echo_err,
    emit,
    format_options,
    json_option,
    open_store,
    output_format,
    parse_assignments,
    print_table,
    progress_bar,
    to_json,
)


@click.group("model")
def model_group() -> None:
    """Register models trained on builds (`lineage models` lists them).

    \b
    Example:
      lineage model register gen-1 --trained-on mix@v1
    """


@model_group.command("register")
@click.argument("name")
@click.option("--trained-on", required=True, metavar="BUILD[@vN]", help="The build it was trained on.")
@click.option("--parent", metavar="MODEL", help="The registered model it was fine-tuned from.")
@click.option("--notes", help="Free text: checkpoint path, hyperparameters, ...")
@json_option
@click.pass_context
def model_register(
    ctx: click.Context, name: str, trained_on: str, parent: str | None, notes: str | None, as_json: bool
) -> None:
    """Register model NAME. Samples later ingested with `--generator NAME` get generation 1 + the deepest
    generation in its training build.

    \b
    Examples:
      lineage model register gen-1 --trained-on mix@v1
      lineage model register gen-2 --trained-on mix@v2 --parent gen-1 --notes "lr 3e-4"
    """
    row = open_store(ctx).register_model(name, trained_on=trained_on, parent=parent, notes=notes)
    if as_json:
        click.echo(to_json(row))
        return
    build = f"{row['build_name']}@v{row['build_version']}"
    click.echo(f"registered model {name}: trained on {build} (version {row['version']})")


@model_group.command("rollback")
@click.argument("name")
@click.option("--to", "to", metavar="MODEL", default=None,
              help="An ancestor of NAME whose check passes; default: the last one up NAME's parents.")
@json_option
@click.pass_context
def model_rollback(ctx: click.Context, name: str, to: str | None, as_json: bool) -> None:
    """Roll the training loop back from model NAME to an earlier model's data: the article's generational
    snapshots. Records a `rollback` commit; from then on a build spec with `policy: {after: NAME}` draws
    from the store as it was when MODEL's training build was made (its limits still follow the policy), and
    the build's checks say so. MODEL's own `lineage check` must pass.

    \b
    Examples:
      lineage model rollback gen-5 --to gen-2
      lineage model rollback gen-5          # to the last ancestor whose check passes
    """
    done = open_store(ctx).rollback(name, to=to)
    if as_json:
        click.echo(to_json(done.as_dict()))
        return
    click.echo(f"rolled {done.model} back to {done.to} (version {done.version})")
    click.echo(f"  builds with policy `after: {done.model}` now draw from store version {done.as_of}, when "
               f"{done.to}'s training build {done.build} was made")
    click.echo(f"  {done.to}'s check passed:")
    for line in done.evidence:
        click.echo(f"  ok   {line}")


@click.command()
@format_options
@click.pass_context
def models(ctx: click.Context, fmt: str | None, as_json: bool) -> None:
    """List models in lineage order (parents first) with the generation their outputs get.

    \b
    Examples:
      lineage models
      lineage models --format jsonl
    """
    emit(open_store(ctx).models(), output_format(fmt, as_json))


@click.group("eval")
def eval_group() -> None:
    """Record evaluations of registered models (benchmarks, lm-evaluation-harness files, output diversity).

    \b
    Examples:
      lineage eval record gen-1 --metric acc=0.61 --benchmark heldout-qa
      lineage eval import gen-1 results.json
      lineage eval outputs gen-1 samples.jsonl
      lineage eval list gen-1
    """


def _report(result: Any, as_json: bool, what: str) -> None:
    for warning in result.warnings:
        echo_err(f"Warning: {warning}")
    if as_json:
        click.echo(to_json({"version": result.version, "warnings": result.warnings, "evals": result.rows}))
        return
    import pyarrow as pa

    cols = ("benchmark", "metric", "value", "stderr")
    print_table(pa.Table.from_pylist([{c: r[c] for c in cols} for r in result.rows]))
    click.echo(f"recorded {len(result.rows):,} {what} (version {result.version})")


@eval_group.command("record")
@click.argument("model")
@click.option("--metric", "metrics", multiple=True, required=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("--stderr", "errors", multiple=True, metavar="NAME=VALUE", help="Standard error of a --metric.")
@click.option("--benchmark", help="Benchmark or task name.")
@click.option("--eval-set", help="The (protected) set of held-out data it was measured on.")
@json_option
@click.pass_context
def eval_record(
    ctx: click.Context,
    model: str,
    metrics: tuple[str, ...],
    errors: tuple[str, ...],
    benchmark: str | None,
    eval_set: str | None,
    as_json: bool,
) -> None:
    """Record metric values for MODEL.

    \b
    Example:
      lineage eval record gen-2 --metric acc=0.61 --stderr acc=0.01 --benchmark heldout-qa --eval-set heldout
    """
    values, stderr = parse_assignments(metrics, "--metric"), parse_assignments(errors, "--stderr")
    result = open_store(ctx).record_eval(model, metrics=values, stderr=stderr, benchmark=benchmark, eval_set=eval_set)
    _report(result, as_json, "evals")


@eval_group.command("import")
@click.argument("model")
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("--eval-set", help="The (protected) set of held-out data it was measured on.")
@json_option
@click.pass_context
def eval_import(ctx: click.Context, model: str, results: str, eval_set: str | None, as_json: bool) -> None:
    """Import an lm-evaluation-harness results JSON: one eval per task and metric (benchmark = task;
    metric = `acc`, or `METRIC,FILTER` when the filter is not `none`), with stderr.

    \b
    Example:
      lineage eval import gen-2 results_2024-06-10T12-00-00.json
    """
    _report(open_store(ctx).import_evals(model, results, eval_set=eval_set), as_json, "evals")


@eval_group.command("outputs")
@click.argument("model")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--metrics", default="text", show_default=True, help="Text metrics or sets (see `lineage diversity`).")
@click.option("--sample-size", type=int, default=1000, show_default=True, help="Outputs per draw.")
@click.option("--draws", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
@click.pass_context
def eval_outputs_cmd(
    ctx: click.Context, model: str, file: str, metrics: str, sample_size: int, draws: int, seed: int, as_json: bool
) -> None:
    """Measure the diversity of MODEL's own generations (JSONL with `text`, or one per line) against the
    store's real data, recorded as evals with benchmark `outputs`.

    \b
    Example:
      lineage eval outputs gen-2 samples.jsonl --sample-size 500
    """
    store = open_store(ctx)
    with progress_bar(f"eval outputs {file}", unit="steps") as progress:
        result = store.eval_outputs(
            model, file, metrics=metrics, sample_size=sample_size, draws=draws, seed=seed, progress=progress
        )
    _report(result, as_json, "output diversity evals")


@eval_group.command("list")
@click.argument("model", required=False)
@format_options
@click.pass_context
def eval_list(ctx: click.Context, model: str | None, fmt: str | None, as_json: bool) -> None:
    """List recorded evals (of MODEL, or all).

    \b
    Examples:
      lineage eval list gen-2
      lineage eval list --format tsv | cut -f1,3,4
    """
    emit(open_store(ctx).evals(model), output_format(fmt, as_json))


@click.command("check")
@click.argument("model")
@click.option("--baseline", default=None, help="Compare with this model instead of MODEL's parent.")
@click.option("--thresholds", type=click.Path(dir_okay=False), default=None,
              help="YAML file of thresholds (metric_worse, loss_up, diversity_down, rare_down, "
                   "max_synthetic_share, max_generation, max_near_dup_rate, distance_up).")
@json_option
@click.pass_context
def check(ctx: click.Context, model: str, baseline: str | None, thresholds: str | None, as_json: bool) -> None:
    """Check MODEL for symptoms of degradation; exit 1 when any crosses its threshold.

    Compares MODEL's latest evals with its parent's (or --baseline's): benchmark metrics down, loss or
    perplexity up, output diversity down, rare knowledge lost; and its training build's synthetic share,
    generation depth, near-duplicate rate (near-dedup's drops among its members) and distance to real
    (word distribution, against the reference model's build). Use it as a gate in a training pipeline.

    \b
    Examples:
      lineage check gen-3
      lineage check gen-3 --baseline gen-1 --thresholds thresholds.yaml --json
    """
    result = open_store(ctx).check(model, baseline=baseline, thresholds=thresholds)
    if as_json:
        click.echo(to_json(result.as_dict()))
    else:
        against = f" against {result.against}" if result.against else " (no parent or --baseline: build health only)"
        click.echo(f"{result.model}{against}: {'passed' if result.passed else 'FAILED'}")
        for s in result.symptoms:
            click.echo(f"  {'FAIL' if s.crossed else 'ok  '} {s.kind}: {s.evidence}")
    if not result.passed:
        ctx.exit(1)


COMMANDS = [model_group, models, eval_group, check]
