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
* `generation_depth` the training build holds samples deeper than `max_generation`;
* `near_dup_rate`    the share of the training build's members that `near-dedup` dropped (its latest decision,
                     among the members it decided) is above `max_near_dup_rate`: the build kept the duplicates
                     that mode collapse makes; not measured (and not failed) where near-dedup decided none;
* `distance_to_real` the training build's word distribution is further from the real data's (unigram
                     Jensen-Shannon divergence, bits) than the reference model's training build was, by more
                     than `distance_up` bits (an absolute step: the divergence of a real-only build is a
                     sampling floor near 0, so a ratio to it would blow small changes up). Both builds are
                     measured on seeded draws of the same size against the same draw of real data, so they
                     compare like for like; a model without a reference shows the value, unjudged.
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
    import pyarrow as pa

    from lineage.core.handle import StoreCore

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
    max_near_dup_rate: float = 0.1
    distance_up: float = 0.05  # bits of JS divergence, not a share (see the module doc)


@dataclass(frozen=True)
class Symptom:
    kind: str
    what: str  # `benchmark/metric`, or the build property
    value: float | None  # None: not measured (the evidence says why)
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
    store: StoreCore, model: str, *, baseline: str | None = None, thresholds: Thresholds | None = None,
    memo: dict[Any, Any] | None = None,
) -> CheckResult:
    """Compare `model` with `baseline` (default: its parent) and its training build's health.

    `memo`: a dict kept across checks of one store version (the models report checks every model), so each
    build's health is measured once."""
    limits = thresholds or Thresholds()
    info = require_model(store, model)
    against = baseline or info["parent"]
    if against is not None:
        require_model(store, against)
    symptoms = _eval_symptoms(store, model, against, limits) if against else []
    symptoms += _build_symptoms(store, info, limits)
    reference = require_model(store, against) if against else None
    symptoms += _health_symptoms(store, info, reference, limits, {} if memo is None else memo)
    symptoms.append(_contamination_symptom(store, info))
    return CheckResult(model, against, symptoms)


def _contamination_symptom(store: StoreCore, info: dict[str, Any]) -> Symptom:
    """The training build holds protected data (its check against the protected sets of now): a model trained on a
    leaking build once passed its check, and a rollback could land on it."""
    from lineage.build.checks import describe, leak_count
    from lineage.build.record import BuildRecord

    build = f"{info['build_name']}@v{info['build_version']}"
    checks = BuildRecord(store, info["build_name"], info["build_version"]).contamination()
    leaks = leak_count(checks)
    when = "re-checked now: the protected sets changed since" if checks.get("rechecked") else "as built"
    if not leaks and checks.get("unverified"):
        return Symptom("contamination", f"{build} leaks", 0, None, None, 0, False,
                       f"training build {build}: NOT VERIFIED: no leak found among the "
                       f"{checks['protected_samples']:,} protected items ({when}), but "
                       f"{checks['unverified']}")
    if not leaks:
        return Symptom("contamination", f"{build} leaks", 0, None, None, 0, False,
                       f"training build {build}: no member holds, contains or descends from any of the "
                       f"{checks['protected_samples']:,} protected items ({when})")
    return Symptom("contamination", f"{build} leaks", leaks, None, None, 0, True,
                   f"training build {build}: {leaks:,} member(s) leak protected data ({when}), e.g. "
                   f"{describe(checks['leaks'][0])}")


def _latest(store: StoreCore, model: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = store.query(LATEST_SQL, params=[model]).to_pylist()
    return {(r["benchmark"] or "", r["metric"]): r for r in rows}


def _eval_symptoms(store: StoreCore, model: str, against: str, limits: Thresholds) -> list[Symptom]:
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


def _build_symptoms(store: StoreCore, info: dict[str, Any], limits: Thresholds) -> list[Symptom]:
    row = store.query("SELECT composition, size FROM builds WHERE name = ? AND build_version = ?",
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


# -- the training build's data health: near-duplicates and distance to real ------------------------------------

HEALTH_SAMPLE = 2_000  # texts per side for the word distributions: the whole build when smaller
NEAR_DEDUP = "near-dedup"
# Every build at once (`b`: its index in `_check_members`): a pass over the status view is most of a build's health
# (~0.16 s at the full demo's size), and the models report measures every model's build.
NEAR_DUP_SQL = """
SELECT m.b, count(*) AS decided, count(*) FILTER (WHERE st.decision = 'drop') AS dropped
FROM status st JOIN (SELECT DISTINCT b, sample_id FROM _check_members) m USING (sample_id) WHERE st.filter = ?
GROUP BY m.b
"""
# A seeded, deterministic draw: the same samples for every build of a store version (hash order, not SAMPLE).
TEXTS_SQL = "SELECT s.text FROM samples s {join} ORDER BY hash(s.sample_id || ?), s.sample_id LIMIT ?"


def _health_symptoms(
    store: StoreCore, info: dict[str, Any], reference: dict[str, Any] | None, limits: Thresholds, memo: dict[Any, Any]
) -> list[Symptom]:
    builds = [(info["build_name"], info["build_version"])]
    if reference is not None:
        builds.append((reference["build_name"], reference["build_version"]))
    health = build_health(store, builds, memo)
    base = health[1]["distance_to_real"] if reference is not None else None
    named = [f"{n}@v{v}" for n, v in builds]
    return [_near_dup_symptom(named[0], health[0]["near_dup_rate"], limits),
            _distance_symptom(named, health[0]["distance_to_real"], base, limits)]


def build_health(
    store: StoreCore, builds: list[tuple[str, int]], memo: dict[Any, Any] | None = None
) -> list[dict[str, float | None]]:
    """Per build (name, version): its near-duplicate rate (see the module doc) and its members' unigram JS
    divergence from one seeded draw of the real data, each None when it cannot be measured."""
    from lineage.build.record import BuildRecord
    from lineage.metrics.text import js_divergence

    memo = {} if memo is None else memo
    todo = list(dict.fromkeys(b for b in builds if b not in memo))
    if todo:
        members = {b: BuildRecord(store, *b).member_ids() for b in todo}
        with store.reader(views={"status", "samples"}) as con:  # what NEAR_DUP_SQL and TEXTS_SQL read
            if "real" not in memo:
                memo["real"] = _counts(con, "WHERE s.origin = 'real'")
            real = memo["real"]
            rates = _near_dup_rates(con, list(members.values()))
            for (b, table), rate in zip(members.items(), rates, strict=True):
                con.register("_check_members", table)
                mine = _counts(con, "SEMI JOIN _check_members m USING (sample_id)")
                con.unregister("_check_members")
                distance = js_divergence(mine, real) if mine and real else None
                memo[b] = {"near_dup_rate": rate, "distance_to_real": distance}
    return [memo[b] for b in builds]


def _near_dup_rates(con: Any, members: list[pa.Table]) -> list[float | None]:
    """Each build's share of members near-dedup dropped among those it decided (None: it decided none), for all
    the builds in one query."""
    import numpy as np
    import pyarrow as pa

    keyed = pa.concat_tables(
        [pa.table({"b": np.full(t.num_rows, i, np.int32), "sample_id": t["sample_id"]}) for i, t in enumerate(members)]
    )
    con.register("_check_members", keyed)
    try:
        found = {b: (decided, dropped) for b, decided, dropped in con.execute(NEAR_DUP_SQL, [NEAR_DEDUP]).fetchall()}
    finally:
        con.unregister("_check_members")
    return [found[i][1] / found[i][0] if i in found and found[i][0] else None for i in range(len(members))]


def _counts(con: Any, join: str) -> dict[str, int]:
    """Word counts over a seeded draw of HEALTH_SAMPLE texts (the tokeniser of the diversity metrics)."""
    import polars as pl

    from lineage.metrics.text import token_expr

    texts = [r[0] for r in con.execute(TEXTS_SQL.format(join=join), ["0", HEALTH_SAMPLE]).fetchall()]
    words = pl.DataFrame({"text": texts}, schema={"text": pl.String}).select(token_expr("text").alias("w"))
    counts = words.explode("w").drop_nulls()["w"].value_counts()
    return dict(zip(counts["w"].to_list(), counts["count"].to_list(), strict=True))


def _near_dup_symptom(build: str, rate: float | None, limits: Thresholds) -> Symptom:
    limit = limits.max_near_dup_rate
    if rate is None:
        return Symptom("near_dup_rate", f"{build} near-dup rate", None, None, None, limit, False,
                       f"training build {build}: not measured ({NEAR_DEDUP} decided none of its members)")
    crossed = rate > limit
    return Symptom("near_dup_rate", f"{build} near-dup rate", rate, None, None, limit, crossed,
                   f"training build {build}: {rate:.1%} of its members are near-duplicates {NEAR_DEDUP} dropped "
                   f"(limit {limit:.0%})")


def _distance_symptom(builds: list[str], value: float | None, base: float | None, limits: Thresholds) -> Symptom:
    what, limit = f"{builds[0]} distance to real", limits.distance_up
    if value is None:
        return Symptom("distance_to_real", what, None, None, None, limit, False,
                       f"training build {builds[0]}: not measured (no real data, or no text, to compare)")
    if not base:
        return Symptom("distance_to_real", what, value, None, None, limit, False,
                       f"training build {builds[0]} is {value:.4g} bits from real (JS divergence of words); no "
                       "reference model's build to compare with")
    step = value - base
    crossed = step > limit
    return Symptom("distance_to_real", what, value, base, step / base, limit, crossed,
                   f"training build {builds[0]} is {value:.4g} bits from real vs {base:.4g} for {builds[1]} "
                   f"({step:+.3f} bits); {'past' if crossed else 'within'} the {limit:g} bits allowed")
