"""The demo's terminal table: per policy and generation, the figures the loop measured."""

from __future__ import annotations

from typing import Any

from lineage.demo.loop import POLICIES, DemoResult


def summary_rows(result: DemoResult) -> list[dict[str, Any]]:
    rows = []
    for policy in POLICIES:
        series = [r for r in result.rows if r.policy == policy]
        first = series[0].heldout_loss if series else 1.0
        for r in series:
            rows.append({
                "policy": r.policy, "generation": r.generation, "model": r.model, "build_size": r.build_size,
                "real_share": round(r.real_share, 3), "heldout_loss": round(r.heldout_loss, 4),
                "loss_change": round(r.heldout_loss / first - 1, 4), "rare_survival": round(r.rare_survival, 4),
                "distinct_2": round(r.distinct_2, 4),
            })
    return rows


def print_summary(result: DemoResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="held-out cross-entropy (bits/token) and output diversity per generation")
    for name in ("policy", "gen", "real", "trained on", "loss", "vs gen 1", "rare kept", "distinct-2"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    for r in summary_rows(result):
        table.add_row(r["policy"], str(r["generation"]), f"{r['real_share']:.0%}", f"{r['build_size']:,}",
                      f"{r['heldout_loss']:.3f}", f"{r['loss_change']:+.1%}", f"{r['rare_survival']:.1%}",
                      f"{r['distinct_2']:.3f}")
    console = Console()
    console.print(table)
    _attribution(console, result)
    console.print(f"store: {result.store.root}")
    if result.report:
        console.print(f"report: {result.report}")


def _attribution(console: Any, result: DemoResult) -> None:
    attribution = result.attribution
    if attribution is None:
        return
    console.print("attribution of held-out loss to the generation depth of each model's training data:")
    for suspect in attribution.suspects[:3]:
        console.print(f"  generation {suspect['group']}: " + "; ".join(suspect["evidence"]))
