"""Attribution: which part of the training data is behind a model metric that got worse?

Four views side by side: the timeline (each model's metric and its build's composition), a mixture
regression of the metric on group shares across models, data-side health per group, and a ranked list
of suspect groups with their evidence. `ablate` turns a suspicion into leave-one-group-out build specs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lineage.attribution.health import group_health, reference_values
from lineage.attribution.regression import Regression, mixture_regression
from lineage.attribution.suspects import rank
from lineage.dimensions import PROVENANCE_DIMENSIONS
from lineage.errors import LineageError, option

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

__all__ = ["DIMENSIONS", "Attribution", "attribute"]

DIMENSIONS = PROVENANCE_DIMENSIONS
# Metrics where lower is better; anything else is taken as higher-is-better unless told otherwise.
LOWER_IS_BETTER = ("perplexity", "ppl", "loss", "bits_per_byte", "byte_perplexity", "word_perplexity", "error")


@dataclass
class Attribution:
    metric: str
    by: str
    higher_is_better: bool
    groups: list[str]
    timeline: list[dict[str, Any]]  # model, parent, build, value, shares {group: share}
    regression: Regression
    health: dict[str, dict[str, Any]]
    health_source: str
    reference: dict[str, float]
    suspects: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "by": self.by,
            "higher_is_better": self.higher_is_better,
            "groups": self.groups,
            "timeline": self.timeline,
            "regression": self.regression.as_dict(),
            "health": self.health,
            "health_source": self.health_source,
            "reference": self.reference,
            "suspects": self.suspects,
            "notes": self.notes,
        }


def attribute(
    store: StoreCore,
    metric: str,
    *,
    by: str = "source",
    models: list[str] | None = None,
    benchmark: str | None = None,
    higher_is_better: bool | None = None,
    seed: int = 0,
) -> Attribution:
    """Attribute `metric` (an eval metric of the registered models) to groups `by` of their training data."""
    if by not in DIMENSIONS:
        raise LineageError(f"cannot attribute by `{by}`; choose from {', '.join(DIMENSIONS)}")
    higher = _direction(metric) if higher_is_better is None else higher_is_better
    timeline, notes = _timeline(store, metric, by, models, benchmark)
    groups = sorted({g for t in timeline for g in t["shares"]}, key=_group_order)
    for t in timeline:
        t["shares"] = {g: t["shares"].get(g, 0.0) for g in groups}
    scored = [t for t in timeline if t["value"] is not None]
    shares = np.array([[t["shares"][g] for g in groups] for t in scored]).reshape(len(scored), len(groups))
    values = np.array([t["value"] for t in scored], dtype=float)
    regression = mixture_regression(shares, values, groups, seed=seed)
    health, source = group_health(store, by, groups)
    reference = reference_values(health)
    sign = 1.0 if higher else -1.0
    suspects = rank(groups, shares, sign * values, regression, health, reference, sign)
    return Attribution(metric, by, higher, groups, timeline, regression, health, source, reference, suspects, notes)


def _direction(metric: str) -> bool:
    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def _group_order(group: str) -> tuple[int, Any]:
    return (0, int(group)) if group.lstrip("-").isdigit() else (1, group)


def _timeline(
    store: StoreCore, metric: str, by: str, names: list[str] | None, benchmark: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    from lineage.models import lineage_order

    order = lineage_order(store, names)
    if not order:
        raise LineageError("no registered models; `lineage model register NAME --trained-on BUILD` first")
    info = {r["name"]: r for r in store.query(MODELS_SQL).to_pylist()}
    values = _values(store, metric, benchmark)
    timeline = [_entry(info[name], by, values.get(name)) for name in order]
    missing = [t["model"] for t in timeline if t["value"] is None]
    notes = [f"no `{metric}` eval for {', '.join(missing)}: left out of the regression"] if missing else []
    if len(missing) == len(timeline):
        raise LineageError(f"no model has an eval `{metric}`" + (f" on {benchmark}" if benchmark else ""))
    return timeline, notes


MODELS_SQL = """
SELECT m.name, m.parent, m.build_name || '@v' || m.build_version AS build, b.composition, b.size
FROM models m JOIN builds b ON b.name = m.build_name AND b.build_version = m.build_version
"""


def _entry(row: dict[str, Any], by: str, value: float | None) -> dict[str, Any]:
    counts = json.loads(row["composition"]).get(by, {})
    shares = {str(g): n / row["size"] for g, n in counts.items()}
    return {"model": row["name"], "parent": row["parent"], "build": row["build"], "value": value, "shares": shares}


def _values(store: StoreCore, metric: str, benchmark: str | None) -> dict[str, float]:
    """The latest value of `metric` per model; several benchmarks with that metric need `benchmark`."""
    rows = store.query(
        "SELECT model, benchmark, value FROM evals WHERE metric = ? AND (? IS NULL OR benchmark = ?) "
        "QUALIFY row_number() OVER (PARTITION BY model, benchmark ORDER BY version DESC, recorded_at DESC) = 1",
        params=[metric, benchmark, benchmark],
    ).to_pylist()
    benches = sorted({str(r["benchmark"]) for r in rows})
    if len(benches) > 1:
        raise LineageError(
            f"metric `{metric}` was recorded on several benchmarks ({', '.join(benches)}): pick one with "
            f"{option('benchmark')}"
        )
    return {r["model"]: r["value"] for r in rows}
