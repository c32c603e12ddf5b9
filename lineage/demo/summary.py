"""The demo's terminal output: per policy and generation, the figures the loop measured, in 80 columns,
and a conclusion computed from those figures (never a fixed claim: a run where mitigation did not help
says so)."""

from __future__ import annotations

import textwrap
from typing import Any

from lineage.demo.loop import POLICIES, DemoResult

WIDTH = 80
HEADER = ("policy", "gen", "real", "trained", "loss", "vs g1", "acc", "rare", "dist-2")
WIDTHS = (10, 3, 5, 8, 6, 7, 6, 6, 6)
LEGEND = (
    "loss: held-out cross-entropy, bits/token (lower is better); vs g1: its change since generation 1; "
    "acc: next-word top-1 accuracy on the held-out real sentences; rare: share of the real data's rare "
    "words the model still writes; dist-2: distinct word pairs / all pairs in its outputs; real: real "
    "share of the training build; trained: sentences trained on."
)


def summary_rows(result: DemoResult) -> list[dict[str, Any]]:
    rows = []
    for policy in POLICIES:
        series = [r for r in result.rows if r.policy == policy]
        first = series[0].heldout_loss if series else 1.0
        for r in series:
            rows.append({
                "policy": r.policy, "generation": r.generation, "model": r.model, "build_size": r.build_size,
                "real_share": round(r.real_share, 3), "heldout_loss": round(r.heldout_loss, 4),
                "loss_change": round(r.heldout_loss / first - 1, 4),
                "heldout_accuracy": round(r.heldout_accuracy, 4), "rare_survival": round(r.rare_survival, 4),
                "distinct_2": round(r.distinct_2, 4),
            })
    return rows


def table_lines(result: DemoResult) -> list[str]:
    lines = [_line(HEADER)]
    for r in summary_rows(result):
        lines.append(_line((
            r["policy"], str(r["generation"]), f"{r['real_share']:.0%}", f"{r['build_size']:,}",
            f"{r['heldout_loss']:.3f}", f"{r['loss_change']:+.1%}", f"{r['heldout_accuracy']:.3f}",
            f"{r['rare_survival']:.1%}", f"{r['distinct_2']:.3f}",
        )))
    return lines


def _line(cells: tuple[str, ...]) -> str:
    first = cells[0].ljust(WIDTHS[0])
    return " ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], WIDTHS[1:], strict=True))])


def conclusion(result: DemoResult) -> str:
    """One line from the measured numbers: how `replace` and `governed` ended against their generation 1."""
    last = {p: [r for r in result.rows if r.policy == p] for p in ("replace", "governed")}
    if not all(len(s) >= 2 for s in last.values()):
        return "conclusion: one generation only, nothing to compare (run with --generations 2 or more)"
    rep, gov = (_changes(last[p]) for p in ("replace", "governed"))
    gen = last["replace"][-1].generation
    better = [name for name, i in (("loss", 0), ("accuracy", 1), ("rare words", 2), ("distinct-2", 3))
              if (gov[i] < rep[i] if i == 0 else gov[i] > rep[i])]
    figures = (f"by generation {gen}, held-out loss {rep[0]:+.1%} under replace vs {gov[0]:+.1%} governed; "
               f"accuracy {rep[1]:+.1%} vs {gov[1]:+.1%}; rare words {rep[2]:+.1%} vs {gov[2]:+.1%}; "
               f"distinct-2 {rep[3]:+.1%} vs {gov[3]:+.1%} (changes since generation 1)")
    if len(better) == 4:
        return f"conclusion: governed did better on all four measures: {figures}"
    if not better:
        return f"conclusion: governed did NOT do better than replace on any measure in this run: {figures}"
    worse = [m for m in ("loss", "accuracy", "rare words", "distinct-2") if m not in better]
    return f"conclusion: governed did better on {', '.join(better)} but not on {', '.join(worse)}: {figures}"


def _changes(series: list[Any]) -> tuple[float, float, float, float]:
    first, end = series[0], series[-1]
    return tuple(getattr(end, a) / max(getattr(first, a), 1e-12) - 1  # type: ignore[return-value]
                 for a in ("heldout_loss", "heldout_accuracy", "rare_survival", "distinct_2"))


def summary_text(result: DemoResult) -> str:
    out = ["held-out loss, accuracy and output diversity per generation", *table_lines(result), ""]
    out += textwrap.wrap(LEGEND, WIDTH)
    out += _attribution(result)
    out += [f"store: {result.store.root}"]
    if result.report:
        out.append(f"report: {result.report}")
    out += textwrap.wrap(conclusion(result), WIDTH, subsequent_indent="  ")
    return "\n".join(out)


def print_summary(result: DemoResult) -> None:
    import click

    click.echo(summary_text(result))


def _attribution(result: DemoResult) -> list[str]:
    attribution = result.attribution
    if attribution is None:
        return []
    out = textwrap.wrap("attribution of held-out loss to the generation depth of each model's training data "
                        "(associations across the models, not causes):", WIDTH)
    for suspect in attribution.suspects[:3]:
        text = f"generation {suspect['group']}: " + "; ".join(suspect["evidence"])
        out += textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="    ")
    return out
