"""What a models report shows, as plain data: per model its lineage, generation, build composition, the
chosen metric and its output diversity; lineages (mitigated or not); and the attribution of the metric.

Lineages are the chains a training loop makes, generation after generation. The rule, in order:

1. Models linked by `parent` form trees; every root-to-leaf path is one lineage (a branch shares its
   ancestors with its siblings, so each line starts where the loop started).
2. Models with neither parent nor children are grouped by name prefix: the name without a trailing
   `-g<N>`, `-m<N>`, `-gen<N>`, `-v<N>` or plain digits (`replace-m3` -> `replace`, `run7` -> `run`),
   ordered by that number, then by registration.
3. If that leaves only one-model groups, the prefixes say nothing, so all those models form one lineage
   in registration order.

A lineage is *mitigated* when every build in it keeps at least `MITIGATED_REAL_SHARE` real data: the
usual remedy against collapse (mix or accumulate real data) rather than training on the last model's
outputs alone.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from lineage.errors import LineageError, option
from lineage.evals import OUTPUTS_BENCHMARK

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

DIVERSITY_PREFERRED = "distinct_2"
RARE_MEASURES = ("rare_survival", "tail_coverage")
MODELS_SQL = """
SELECT m.name, m.parent, m.notes, m.build_name, m.build_version, b.composition, b.size
FROM models m LEFT JOIN builds b ON b.name = m.build_name AND b.build_version = m.build_version
"""
LATEST_SQL = """
SELECT model, benchmark, metric, value, stderr FROM evals
QUALIFY row_number() OVER (PARTITION BY model, benchmark, metric ORDER BY version DESC, recorded_at DESC) = 1
"""
MITIGATED_REAL_SHARE = 0.10
_SUFFIX = re.compile(r"^(?P<prefix>.+?)(?:[-_.](?:gen|g|m|v)?)?(?P<n>\d+)$", re.IGNORECASE)
RULE = (
    "Lineages follow parent links (one per root-to-leaf chain); models without links are grouped by their "
    "name without a trailing -g<N>/-m<N>/digits, or form a single lineage when no two share a prefix. "
    f"A lineage is mitigated when every build in it keeps at least {MITIGATED_REAL_SHARE:.0%} real data."
)


def models_data(
    store: StoreCore, metric: str | None = None, benchmark: str | None = None, *, by: str = "source"
) -> dict[str, Any]:
    evals, notes = store.query(LATEST_SQL).to_pylist(), []
    metric, benchmark = choose_metric(evals, metric, benchmark, notes)
    diversity = choose_diversity(evals)
    registered = _registered(store)
    models = [_model(row, evals, metric, benchmark, diversity) for row in registered]
    memo: dict[Any, Any] = {}  # each build's health measured once for all the checks
    _measure_builds(store, [(r["build_name"], r["build_version"]) for r in registered if r["build_name"]], memo)
    for m in models:
        m["check"] = model_check(store, m["name"], memo)
    extra = extra_measures(evals, metric, benchmark, diversity)
    for m in models:
        m["extra"] = {f"{b}/{x}": _value(evals, m["name"], x, b) for x, b in extra}
    data = {
        "kind": "models", "title": "models", "metric": metric, "benchmark": benchmark,
        "higher_is_better": None if metric is None else higher_is_better(metric), "diversity_metric": diversity,
        "extra_measures": [{"metric": x, "benchmark": b, "key": f"{b}/{x}"} for x, b in extra],
        "models": models, "lineages": _lineages(models), "lineage_rule": RULE,
        "groups": {dim: _groups(models, dim) for dim in ("origin", "source")},
        "attribution": _attribution(store, metric, benchmark, by, notes), "notes": notes,
    }
    return {**data, "summary": _summary(data)}


def _registered(store: StoreCore) -> list[dict[str, Any]]:
    """Registered models with their build's composition, parents before children."""
    from lineage.models import lineage_order

    order = lineage_order(store)
    if not order:
        raise LineageError("no registered models; `lineage model register NAME --trained-on BUILD` first")
    info = {r["name"]: r for r in store.query(MODELS_SQL).to_pylist()}
    return [info[name] for name in order]


def choose_metric(
    evals: list[dict[str, Any]], metric: str | None, benchmark: str | None, notes: list[str]
) -> tuple[str | None, str | None]:
    """The metric (default: the most common one not measured on outputs) and the benchmark it is read from."""
    if metric is None:
        counts = Counter(e["metric"] for e in evals if e["benchmark"] != OUTPUTS_BENCHMARK)
        if not counts:
            notes.append("no eval metric recorded (other than output diversity): nothing to chart or attribute")
            return None, benchmark
        metric = min(counts, key=lambda m: (-counts[m], m))
    return metric, benchmark if benchmark is not None else _benchmark(evals, metric, notes)


def _benchmark(evals: list[dict[str, Any]], metric: str, notes: list[str]) -> str | None:
    """The benchmark most models have `metric` on (output diversity only if asked for by name and recorded
    nowhere else); a note when there was a choice."""
    found = [e["benchmark"] for e in evals if e["metric"] == metric]
    benches = Counter(b for b in found if b != OUTPUTS_BENCHMARK) or Counter(found)
    if not benches:
        return None
    chosen = min(benches, key=lambda b: (-benches[b], str(b)))
    if len(benches) > 1:
        notes.append(f"`{metric}` was recorded on several benchmarks ({', '.join(sorted(map(str, benches)))}); "
                     f"showing {chosen} (choose with {option('benchmark')})")
    return chosen


def higher_is_better(metric: str) -> bool:
    """The direction attribution guesses from the name (loss, perplexity, error: lower is better)."""
    from lineage.attribution import LOWER_IS_BETTER

    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def extra_measures(
    evals: list[dict[str, Any]], metric: str | None, benchmark: str | None, diversity: str | None
) -> list[tuple[str, str]]:
    """What else the collapse chart draws: the other metrics recorded on the chosen metric's benchmark (a
    held-out accuracy beside a held-out loss) and rare knowledge in the outputs (the clearest collapse signal)."""
    found = {(e["metric"], e["benchmark"]) for e in evals}
    same = sorted(x for x, b in found if benchmark is not None and b == benchmark and x != metric)
    rare = sorted(x for x, b in found if b == OUTPUTS_BENCHMARK and x in RARE_MEASURES and x != diversity)
    return [(x, str(benchmark)) for x in same] + [(x, OUTPUTS_BENCHMARK) for x in rare]


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


def _measure_builds(store: StoreCore, builds: list[tuple[str, int]], memo: dict[Any, Any]) -> None:
    """Every trained-on build's health into `memo` at once (`build_health` measures them in one pass); a build that
    cannot be measured is left to its model's check, which reports why."""
    from lineage.check import build_health

    with contextlib.suppress(LineageError):
        build_health(store, builds, memo)


def model_check(store: StoreCore, name: str, memo: dict[Any, Any]) -> dict[str, Any]:
    """`lineage check NAME` (against its parent; a root model: its build's health only), as the report shows
    it: passed or not, the failing symptoms' kinds and evidence, or why it could not run."""
    from lineage.check import check_model

    try:
        result = check_model(store, name, memo=memo)
    except LineageError as exc:
        return {"against": None, "passed": None, "failing": [], "evidence": [], "error": str(exc)}
    crossed = [s for s in result.symptoms if s.crossed]
    return {"against": result.against, "passed": result.passed, "failing": [s.kind for s in crossed],
            "evidence": [s.evidence for s in crossed], "error": None}


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


def _attribution(
    store: StoreCore, metric: str | None, benchmark: str | None, by: str, notes: list[str]
) -> dict[str, Any] | None:
    from lineage.attribution import attribute

    if metric is None:
        return None
    try:
        result = attribute(store, metric, by=by, benchmark=benchmark)
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
    failed = sum(m["check"]["passed"] is False for m in models)
    out.append({"label": "check failed", "value": f"{failed}/{len(models)}"})
    suspects = (data["attribution"] or {}).get("suspects") or []
    if suspects:
        out.append({"label": f"top suspect ({data['attribution']['by']})", "value": str(suspects[0]["group"])})
    return out

# -- lineages ------------------------------------------------------------------------------------------

def prefix(name: str) -> tuple[str, int | None]:
    """`replace-m3` -> (`replace`, 3); a name without a trailing number is its own prefix."""
    found = _SUFFIX.match(name)
    return (found["prefix"], int(found["n"])) if found else (name, None)


def group_lineages(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`models`: dicts with `name` and `parent`, parents before children. Returns lineages as dicts with
    `name`, `models` (names in generation order) and `rule` (`parent`, `prefix` or `all`)."""
    names = [m["name"] for m in models]
    parent = {m["name"]: m["parent"] for m in models if m["parent"] in names}
    linked = set(parent) | set(parent.values())
    leaves = [n for n in names if n in linked and n not in parent.values()]
    chains = [_chain(leaf, parent) for leaf in leaves]
    chains.sort(key=lambda c: (names.index(c[0]), names.index(c[-1])))
    out = [{"name": "", "models": c, "rule": "parent"} for c in chains]
    out += _loose([n for n in names if n not in linked])
    return _named(out)


def _chain(leaf: str, parent: dict[str, str]) -> list[str]:
    chain = [leaf]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    return chain[::-1]


def _loose(names: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(prefix(name)[0], []).append(name)
    if len(groups) > 1 and all(len(g) == 1 for g in groups.values()):
        return [{"name": "models", "models": names, "rule": "all"}]
    for members in groups.values():
        members.sort(key=lambda n: (prefix(n)[1] is None, prefix(n)[1] or 0, names.index(n)))
    return [{"name": p, "models": m, "rule": "prefix"} for p, m in groups.items()]


def _named(lineages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chains are named by their leaf's prefix when that is unique, else by the leaf itself."""
    taken = {lin["name"] for lin in lineages if lin["rule"] != "parent"}
    stems = [prefix(lin["models"][-1])[0] for lin in lineages if lin["rule"] == "parent"]
    for lin in lineages:
        if lin["rule"] == "parent":
            stem = prefix(lin["models"][-1])[0]
            lin["name"] = stem if stems.count(stem) == 1 and stem not in taken else lin["models"][-1]
    return lineages


def mitigated(real_shares: list[float | None]) -> bool | None:
    """Whether every build of a lineage keeps enough real data (None: no build composition known)."""
    known = [s for s in real_shares if s is not None]
    return min(known) >= MITIGATED_REAL_SHARE if known else None
