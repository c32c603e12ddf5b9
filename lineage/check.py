"""`lineage check`: the symptoms of model degradation as a gate.

A model's latest evals are compared with a reference model's (its `--parent`, or a named baseline) and
its training build's data health is read from the build's composition. Each symptom of the article the
project grew from is a row with its evidence and threshold; the check fails when any row crosses its
threshold, so `lineage check` exits 1 and can gate a training pipeline.

Symptoms (relative changes against the reference, in the direction that is worse):

* `metric_worse`     a benchmark metric (higher is better) fell by more than `metric_worse`, or by more
                     than twice its recorded standard error when that is larger;
* `loss_up`          a loss or perplexity (lower is better) rose by more than `loss_up`;
* `diversity_down`   output diversity (distinct-n, entropy) fell, or self-BLEU / near-dup rate /
                     distance to real rose, by more than `diversity_down`;
* `rare_lost`        rare knowledge (rare-word survival, tail coverage) fell by more than `rare_down`;
* `synthetic_share`  the training build's synthetic share is above `max_synthetic_share`;
* `generation_depth` the training build holds samples deeper than `max_generation`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineage.errors import LineageError
from lineage.evals import OUTPUTS_BENCHMARK
from lineage.models import require_model

if TYPE_CHECKING:
    from lineage.store import Store

__all__ = ["CheckResult", "Symptom", "Thresholds", "check_model", "load_thresholds"]

LATEST_SQL = """
SELECT benchmark, metric, value, stderr FROM evals WHERE model = ?
QUALIFY row_number() OVER (PARTITION BY benchmark, metric ORDER BY version DESC, recorded_at DESC) = 1
"""
DIVERSITY_UP = ("distinct", "entropy")  # output measures where more is more diverse
DIVERSITY_DOWN = ("self_bleu", "near_dup_rate", "js_divergence", "compression_ratio")  # more is less diverse
RARE = ("rare_survival", "tail_coverage")


@dataclass(frozen=True)
class Thresholds:
    """Limits of each symptom; a YAML policy file overrides any of them by these names."""

    metric_worse: float = 0.01
    loss_up: float = 0.01
    diversity_down: float = 0.02
    rare_down: float = 0.05
    max_synthetic_share: float = 0.9
    max_generation: int = 3


@dataclass(frozen=True)
class Symptom:
    kind: str
    what: str  # `benchmark/metric`, or the build property
    value: float
    reference: float | None
    change: float | None  # relative change against the reference, signed (None for build properties)
    limit: float
    crossed: bool
    evidence: str


@dataclass(frozen=True)
class CheckResult:
    model: str
    against: str | None
    symptoms: list[Symptom] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(s.crossed for s in self.symptoms)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "against": self.against, "passed": self.passed,
                "symptoms": [asdict(s) for s in self.symptoms]}


def load_thresholds(path: str | Path) -> Thresholds:
    """A YAML mapping of threshold names to numbers; unknown names and non-numbers are one-line errors."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LineageError(f"cannot read thresholds `{path}`: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise LineageError(f"`{path}`: thresholds are a mapping of NAME: NUMBER")
    names = {f.name for f in fields(Thresholds)}
    for key, value in doc.items():
        if key not in names:
            raise LineageError(f"`{path}`: unknown threshold `{key}`; choose from {', '.join(sorted(names))}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise LineageError(f"`{path}`: threshold `{key}` must be a number >= 0, got {value!r}")
    return Thresholds(**doc)


def check_model(
    store: Store, model: str, *, baseline: str | None = None, thresholds: Thresholds | None = None
) -> CheckResult:
    """Compare `model` with `baseline` (default: its parent) and its training build's health."""
    limits = thresholds or Thresholds()
    info = require_model(store, model)
    against = baseline or info["parent"]
    if against is not None:
        require_model(store, against)
    symptoms = _eval_symptoms(store, model, against, limits) if against else []
    symptoms += _build_symptoms(store, info, limits)
    return CheckResult(model, against, symptoms)


def _latest(store: Store, model: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = store.sql(LATEST_SQL, params=[model]).to_pylist()
    return {(r["benchmark"] or "", r["metric"]): r for r in rows}


def _eval_symptoms(store: Store, model: str, against: str, limits: Thresholds) -> list[Symptom]:
    mine, theirs = _latest(store, model), _latest(store, against)
    out = []
    for key in sorted(mine.keys() & theirs.keys()):
        kind, limit, higher = _kind(*key, limits)
        out.append(_compare(kind, key, mine[key], theirs[key], limit, higher))
    return out


def _kind(benchmark: str, metric: str, limits: Thresholds) -> tuple[str, float, bool]:
    """Which symptom a metric belongs to, its limit, and whether higher is better."""
    from lineage.attribution import LOWER_IS_BETTER

    name = metric.lower()
    if any(word in name for word in RARE):
        return "rare_lost", limits.rare_down, True
    if benchmark == OUTPUTS_BENCHMARK and any(name.startswith(w) for w in DIVERSITY_UP):
        return "diversity_down", limits.diversity_down, True
    if benchmark == OUTPUTS_BENCHMARK and any(name.startswith(w) for w in DIVERSITY_DOWN):
        return "diversity_down", limits.diversity_down, False
    if any(word in name for word in LOWER_IS_BETTER):
        return "loss_up", limits.loss_up, False
    return "metric_worse", limits.metric_worse, True


def _compare(kind: str, key: tuple[str, str], mine: dict, ref: dict, limit: float, higher: bool) -> Symptom:
    value, base = float(mine["value"]), float(ref["value"])
    change = (value - base) / abs(base) if base else 0.0
    worse = -change if higher else change
    allowed = limit
    errors = [e for e in (mine["stderr"], ref["stderr"]) if e is not None]
    if errors and base:  # a difference within twice the combined standard error is noise, not a symptom
        allowed = max(limit, 2 * sum(e * e for e in errors) ** 0.5 / abs(base))
    crossed = worse > allowed
    what = f"{key[0]}/{key[1]}" if key[0] else key[1]
    word = "past" if crossed else "within"
    evidence = f"{what} {base:.4g} -> {value:.4g} ({change:+.1%}); {word} the {allowed:.1%} allowed"
    return Symptom(kind, what, value, base, change, allowed, crossed, evidence)


def _build_symptoms(store: Store, info: dict[str, Any], limits: Thresholds) -> list[Symptom]:
    row = store.sql("SELECT composition, size FROM builds WHERE name = ? AND build_version = ?",
                    params=[info["build_name"], info["build_version"]]).to_pylist()[0]
    composition, size = json.loads(row["composition"]), max(row["size"], 1)
    synthetic = composition.get("origin", {}).get("synthetic", 0) / size
    deepest = max((int(g) for g in composition.get("generation", {})), default=0)
    build = f"{info['build_name']}@v{info['build_version']}"
    return [
        Symptom("synthetic_share", f"{build} synthetic share", synthetic, None, None, limits.max_synthetic_share,
                synthetic > limits.max_synthetic_share,
                f"training build {build} is {synthetic:.0%} synthetic (limit {limits.max_synthetic_share:.0%})"),
        Symptom("generation_depth", f"{build} max generation", float(deepest), None, None,
                float(limits.max_generation), deepest > limits.max_generation,
                f"training build {build} reaches generation {deepest} (limit {limits.max_generation})"),
    ]
