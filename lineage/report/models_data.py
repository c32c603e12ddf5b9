"""What a models report shows, as plain data: per model its lineage, generation, build composition, the
chosen metric and its output diversity; lineages (mitigated or not); and the attribution of the metric."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from lineage.errors import LineageError
from lineage.evals import OUTPUTS_BENCHMARK
from lineage.report.lineages import RULE, group_lineages, mitigated

if TYPE_CHECKING:
    from lineage.store import Store

DIVERSITY_PREFERRED = "distinct_2"
MODELS_SQL = """
SELECT m.name, m.parent, m.notes, m.build_name, m.build_version, b.composition, b.size
FROM models m LEFT JOIN builds b ON b.name = m.build_name AND b.build_version = m.build_version
"""
LATEST_SQL = """
SELECT model, benchmark, metric, value, stderr FROM evals
QUALIFY row_number() OVER (PARTITION BY model, benchmark, metric ORDER BY version DESC, recorded_at DESC) = 1
"""


def models_data(store: Store, metric: str | None = None, benchmark: str | None = None) -> dict[str, Any]:
    from lineage.models import lineage_order

    order = lineage_order(store)
    if not order:
        raise LineageError("no registered models; `lineage model register NAME --trained-on BUILD` first")
    info = {r["name"]: r for r in store.sql(MODELS_SQL).to_pylist()}
    evals = store.sql(LATEST_SQL).to_pylist()
    notes: list[str] = []
    metric, benchmark = choose_metric(evals, metric, benchmark, notes)
    diversity = choose_diversity(evals)
    models = [_model(info[n], evals, metric, benchmark, diversity) for n in order]
    lineages = _lineages(models)
    data = {
        "kind": "models",
        "title": "models",
        "metric": metric,
        "benchmark": benchmark,
        "higher_is_better": None if metric is None else higher_is_better(metric),
        "diversity_metric": diversity,
        "models": models,
        "lineages": lineages,
        "lineage_rule": RULE,
        "groups": {dim: _groups(models, dim) for dim in ("origin", "source")},
        "attribution": _attribution(store, metric, benchmark, notes),
        "notes": notes,
    }
    data["summary"] = _summary(data)
    return data


def choose_metric(
    evals: list[dict[str, Any]], metric: str | None, benchmark: str | None, notes: list[str]
) -> tuple[str | None, str | None]:
    """The metric (default: the most common one not measured on outputs) and the benchmark it is read from
    (default: the one most models have it on)."""
    scored = [e for e in evals if e["benchmark"] != OUTPUTS_BENCHMARK]
    if metric is None:
        counts = Counter(e["metric"] for e in scored)
        if not counts:
            notes.append("no eval metric recorded (other than output diversity): nothing to chart or attribute")
            return None, benchmark
        metric = min(counts, key=lambda m: (-counts[m], m))
    found = [e["benchmark"] for e in evals if e["metric"] == metric]
    # Output diversity only when asked for by name and recorded nowhere else.
    benches = Counter(b for b in found if b != OUTPUTS_BENCHMARK) or Counter(found)
    if benchmark is None and len(benches) > 1:
        benchmark = min(benches, key=lambda b: (-benches[b], str(b)))
        notes.append(f"`{metric}` was recorded on several benchmarks ({', '.join(sorted(map(str, benches)))}); "
                     f"showing {benchmark} (choose with --benchmark)")
    elif benchmark is None and benches:
        benchmark = next(iter(benches))
    return metric, benchmark


def higher_is_better(metric: str) -> bool:
    """The direction attribution guesses from the name (loss, perplexity, error: lower is better)."""
    from lineage.attribution import LOWER_IS_BETTER

    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def choose_diversity(evals: list[dict[str, Any]]) -> str | None:
    """distinct_2 of the models' outputs when recorded, else the most common output measure."""
    counts = Counter(e["metric"] for e in evals if e["benchmark"] == OUTPUTS_BENCHMARK)
    if DIVERSITY_PREFERRED in counts:
        return DIVERSITY_PREFERRED
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


def _value(evals: list[dict[str, Any]], model: str, metric: str | None, benchmark: str | None) -> float | None:
    found = [e["value"] for e in evals if e["model"] == model and e["metric"] == metric
             and e["benchmark"] == benchmark]
    return found[0] if found else None


def _model(row: dict[str, Any], evals: list[dict[str, Any]], metric: str | None, benchmark: str | None,
           diversity: str | None) -> dict[str, Any]:
    composition = json.loads(row["composition"]) if row["composition"] else {}
    size = row["size"] or 0
    shares = {dim: {str(g): n / size for g, n in composition.get(dim, {}).items()} if size else {}
              for dim in ("origin", "source")}
    build = f"{row['build_name']}@v{row['build_version']}" if row["build_name"] else None
    return {
        "name": row["name"],
        "parent": row["parent"],
        "notes": row["notes"],
        "build": build,
        "build_size": row["size"],
        "real_share": shares["origin"].get("real", 0.0) if size else None,
        "shares": shares,
        "metric": _value(evals, row["name"], metric, benchmark),
        "diversity": _value(evals, row["name"], diversity, OUTPUTS_BENCHMARK),
    }


def _lineages(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lineages with their kind; each model learns its lineage and its generation (position) in it."""
    by_name = {m["name"]: m for m in models}
    out = group_lineages(models)
    for lin in out:
        shares = [by_name[n]["real_share"] for n in lin["models"]]
        kept = mitigated(shares)
        lin["min_real_share"] = min((s for s in shares if s is not None), default=None)
        lin["mitigated"] = kept
        lin["kind"] = {True: "mitigated", False: "unmitigated", None: "unknown"}[kept]
        for position, name in enumerate(lin["models"], start=1):
            by_name[name].setdefault("lineage", lin["name"])
            by_name[name].setdefault("generation", position)
    return out


def _groups(models: list[dict[str, Any]], dim: str) -> list[str]:
    totals: Counter[str] = Counter()
    for m in models:
        totals.update(m["shares"][dim])
    if dim == "origin":
        return sorted(totals, key=lambda g: (g != "real", g))
    return sorted(totals, key=lambda g: (-totals[g], g))


def _attribution(store: Store, metric: str | None, benchmark: str | None, notes: list[str]) -> dict[str, Any] | None:
    from lineage.attribution import attribute

    if metric is None:
        return None
    try:
        result = attribute(store, metric, by="source", benchmark=benchmark)
    except LineageError as exc:
        notes.append(f"attribution of `{metric}`: {exc}")
        return None
    return result.as_dict()


def _summary(data: dict[str, Any]) -> list[dict[str, str]]:
    models, lineages = data["models"], data["lineages"]
    kinds = Counter(lin["kind"] for lin in lineages)
    out = [
        {"label": "models", "value": f"{len(models):,}"},
        {"label": "lineages", "value": f"{len(lineages):,}"},
        {"label": "mitigated", "value": f"{kinds['mitigated']}/{len(lineages)}"},
        {"label": "metric", "value": data["metric"] or "–"},
        {"label": "output diversity", "value": data["diversity_metric"] or "–"},
    ]
    suspects = (data["attribution"] or {}).get("suspects") or []
    if suspects:
        out.append({"label": "top suspect", "value": str(suspects[0]["group"])})
    return out
