"""Which charts a report gets, drawn from its data (the same data the JSON format holds)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from lineage.report import charts


def build_charts(data: dict[str, Any]) -> dict[str, Markup]:
    out: dict[str, Markup] = {}
    if data["quotas"]:
        out["quotas"] = charts.quotas("quotas", data["quotas"])
    comp = data["composition"]
    for dim in ("origin", "source"):
        if comp.get(dim):
            out[dim] = _composition(dim, comp[dim])
    if comp.get("generation"):
        gens = comp["generation"]
        out["generation"] = charts.columns(
            "generation", "Generation depth", [g["group"] for g in gens], [g["count"] for g in gens],
            xlabel="generation (0 = real)", ylabel="samples",
        )
    out["funnel"] = charts.funnel("funnel", data["funnel"])
    return out


def _composition(dim: str, rows: list[dict[str, Any]]) -> Markup:
    colours = [charts.ORIGIN_COLOURS.get(r["group"], charts.colour(i)) if dim == "origin" else charts.ACCENT
               for i, r in enumerate(rows)]
    return charts.hbars(
        f"comp-{dim}", f"Composition by {dim}", [r["group"] for r in rows], [r["count"] for r in rows],
        xlabel="samples", colours=colours, texts=[f"{r['count']:,} ({r['share']:.1%})" for r in rows],
    )


def models_charts(data: dict[str, Any]) -> dict[str, Markup]:
    out: dict[str, Markup] = {}
    rows = _measures(data)
    if rows:
        out["collapse"] = charts.collapse("collapse", rows, _columns(data))
    names = [m["name"] for m in data["models"] if m["build"]]
    shares = [m["shares"] for m in data["models"] if m["build"]]
    for dim in ("origin", "source"):
        if names and data["groups"][dim]:
            out[dim] = charts.stacked(f"stack-{dim}", f"Training build by {dim}", names,
                                      [s[dim] for s in shares], data["groups"][dim])
    return out


def _measures(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    if data["metric"] and any(m["metric"] is not None for m in data["models"]):
        bench = f" ({data['benchmark']})" if data["benchmark"] else ""
        better = "higher" if data["higher_is_better"] else "lower"
        rows.append({"title": f"{data['metric']}{bench}, {better} is better", "field": "metric"})
    if data["diversity_metric"] and any(m["diversity"] is not None for m in data["models"]):
        rows.append({"title": f"output {data['diversity_metric']}", "field": "diversity"})
    return rows


def _columns(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Unmitigated and mitigated lineages side by side when both exist, else one panel of all."""
    by_name = {m["name"]: m for m in data["models"]}
    series = [_series(lin, i, by_name) for i, lin in enumerate(data["lineages"])]
    kinds = {lin["kind"] for lin in data["lineages"]}
    if {"mitigated", "unmitigated"} <= kinds:
        return [
            {"title": "unmitigated", "lineages": [s for s in series if s["kind"] != "mitigated"]},
            {"title": "mitigated (real data kept)", "lineages": [s for s in series if s["kind"] == "mitigated"]},
        ]
    return [{"title": "all lineages", "lineages": series}]


def _series(lineage: dict[str, Any], i: int, by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    models = [by_name[n] for n in lineage["models"]]
    return {
        "name": lineage["name"],
        "kind": lineage["kind"],
        "colour": charts.colour(i),
        "x": list(range(1, len(models) + 1)),
        "metric": [m["metric"] for m in models],
        "diversity": [m["diversity"] for m in models],
    }
