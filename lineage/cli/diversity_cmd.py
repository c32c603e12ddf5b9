"""`lineage diversity`: diversity metrics per group, against the real reference, recorded for reuse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from lineage.cli.common import echo_err, engine_options, json_option, open_store, print_table, progress_bar, to_json

if TYPE_CHECKING:
    import pyarrow as pa

    from lineage.diversity import DiversityResult


@click.command()
@click.option("--by", default="", help="Comma-separated dimensions to group by (default: all samples together).")
@click.option("--where", default=None, help="SQL predicate over `samples` selecting what to measure.")
@click.option("--build", default=None, help="Measure the members of this build (NAME or NAME@vN).")
@click.option(
    "--metrics",
    default="default",
    show_default=True,
    help="Comma-separated metrics or sets: default, text, embedding, distinct, entropy, all, or metric names.",
)
@click.option("--reference", default="origin = 'real'", show_default=True, help="SQL predicate for the reference.")
@click.option("--sample-size", type=int, default=1000, show_default=True, help="Samples per draw.")
@click.option("--draws", type=int, default=5, show_default=True, help="Subsample draws per group.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subsample draws.")
@click.option("--no-record", is_flag=True, help="Do not record the values in the `metrics` table.")
@engine_options(
    ("local", "ray"),
    "local: this process; ray: read the selection and the reference on a Ray cluster (`lineage[ray]`).",
    "With --engine ray: concurrent tasks; default: all cores.",
)
@json_option
@click.pass_context
def diversity(
    ctx: click.Context,
    by: str,
    where: str | None,
    build: str | None,
    metrics: str,
    reference: str,
    sample_size: int,
    draws: int,
    seed: int,
    no_record: bool,
    engine: str,
    workers: int | None,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Diversity per group: distinct-n, compression, entropy, self-BLEU, tail coverage and divergence from the
    real reference, near-duplicate rate; embedding dispersion, Vendi and Fréchet with --metrics embedding or all.

    Each group is measured on --draws random subsamples of --sample-size samples (mean, ± spread), so groups
    of different size compare fairly. Values are recorded in the `metrics` view unless --no-record.

    \b
    Examples:
      lineage diversity --by source
      lineage diversity --by generation --where "method = 'paraphrase'" --metrics distinct,self_bleu
      lineage diversity --by source --metrics all --sample-size 500 --json
      lineage diversity --build mix@v1 --by source
      lineage diversity --by source --engine ray --ray-address auto
    """
    dims = [d.strip() for d in by.split(",") if d.strip()]
    store = open_store(ctx)
    with progress_bar("diversity", unit="groups") as progress:
        result = store.diversity(
            by=dims,
            where=where,
            build=build,
            metrics=metrics,
            reference=reference,
            sample_size=sample_size,
            draws=draws,
            seed=seed,
            record=not no_record,
            engine=engine,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
        )
    if as_json:
        click.echo(to_json(result.table.to_pylist()))
        for note in result.notes:
            echo_err(f"note: {note}")
        return
    for part in _for_people(result):
        print_table(part)
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(result.summary())


def _for_people(result: DiversityResult) -> list[pa.Table]:
    """Groups as rows, metrics as `value ±spread` (3 significant digits), split into tables that fit the terminal.

    Each table repeats the group columns, so a wide metric set stays readable on an 80-column terminal.
    """
    import shutil

    import pyarrow as pa

    table = result.table
    fixed: dict[str, Any] = {name: table[name] for name in result.by}
    columns: dict[str, Any] = {name: table[name] for name in ("samples", "n_samples", "draws")}
    for name in result.metrics:
        cells = zip(table[name].to_pylist(), table[f"{name}_spread"].to_pylist(), strict=True)
        columns[name] = pa.array([_cell(v, s) for v, s in cells], pa.string())
    room = shutil.get_terminal_size().columns - 1 - sum(_width(c, n) for n, c in fixed.items())
    parts: list[list[str]] = [[]]
    used = 0
    for name, column in columns.items():
        if parts[-1] and used + _width(column, name) > room:
            parts.append([])
            used = 0
        parts[-1].append(name)
        used += _width(column, name)
    return [pa.table({**fixed, **{n: columns[n] for n in names}}) for names in parts]


def _width(column: Any, name: str) -> int:
    # A rich cell's width: its longest line plus borders and padding.
    return max([len(name), *(len(str(v)) for v in column.to_pylist())]) + 3


def _cell(value: float | None, spread: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.3g}" + (f" ±{spread:.1g}" if spread is not None else "")


COMMANDS = [diversity]
