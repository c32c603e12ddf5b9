"""Attribution: a planted scenario where one degraded source takes over the builds as the metric falls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import Runner, fill_small_store

from lineage.attribution import attribute
from lineage.attribution.ablate import ablate
from lineage.build import Build
from lineage.cli import cli, model_cmds, report_cmds
from lineage.errors import LineageError
from lineage.evals import record_eval
from lineage.models import register_model
from lineage.store import Store

for _command in [*model_cmds.COMMANDS, *report_cmds.COMMANDS]:  # until lineage/cli/__init__.py registers them
    cli.add_command(_command)

# Shares of wordnet, syn-v1, syn-v2, syn-v3 per model generation: syn-v3 (the most degraded source) grows,
# the others move independently of it so a regression can tell them apart.
PLAN = [
    (0.70, 0.20, 0.10, 0.00),
    (0.60, 0.25, 0.05, 0.10),
    (0.60, 0.10, 0.15, 0.15),
    (0.50, 0.20, 0.10, 0.20),
    (0.50, 0.10, 0.10, 0.30),
    (0.40, 0.15, 0.10, 0.35),
]
SOURCES = ("wordnet", "syn-v1", "syn-v2", "syn-v3")
NOISE = (0.004, -0.003, 0.002, -0.004, 0.003, -0.002)


def exact(share: float) -> dict[str, float]:
    return {"min": share, "max": share}


def planted(store: Store, plan: list[tuple[float, ...]] = PLAN) -> None:
    """One build, model and `acc` eval per generation; acc = 0.7 - 0.5 * share of syn-v3 (+ small noise)."""
    parent = None
    for i, shares in enumerate(plan, start=1):
        quotas = {"source": {s: exact(x) for s, x in zip(SOURCES, shares, strict=True) if x}}
        store.build({"name": "loop", "size": 200, "seed": i, "quotas": quotas})
        register_model(store, f"gen-{i}", trained_on=f"loop@v{i}", parent=parent)
        record_eval(store, f"gen-{i}", {"acc": 0.7 - 0.5 * shares[3] + NOISE[i - 1]}, benchmark="heldout-qa")
        parent = f"gen-{i}"


@pytest.fixture(scope="module")
def planted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full planted scenario, made once per module; tests work on copies (a store is a directory)."""
    store = fill_small_store(Store.init(tmp_path_factory.mktemp("planted") / "store"))
    planted(store)
    return store.root


@pytest.fixture
def full(planted_root: Path, store: Store) -> Store:
    """A copy of the planted store where the `store` fixture (and so `runner`) points."""
    shutil.rmtree(store.root)
    shutil.copytree(planted_root, store.root)
    return Store(store.root)


def test_planted_degraded_source_ranks_first(full: Store) -> None:
    small_store = full
    result = attribute(small_store, "acc", by="source")
    assert [t["model"] for t in result.timeline] == [f"gen-{i}" for i in range(1, 7)]
    assert [t["shares"]["syn-v3"] for t in result.timeline] == [p[3] for p in PLAN]
    reg = result.regression
    assert reg.identified and reg.n_models == 6 and reg.r2 is not None and reg.r2 > 0.95
    coef, low, high = reg.coefficient("syn-v3")
    assert coef == min(c for c in reg.coefficients if c is not None)
    assert low is not None and high is not None and low <= coef <= high < 0
    assert result.suspects[0]["group"] == "syn-v3"
    evidence = " | ".join(result.suspects[0]["evidence"])
    assert (
        "regression coefficient" in evidence
        and "higher where the metric is worse (correlation with the metric r = -1.00; lower metric is worse)"
        in evidence
        and "deep generation" in evidence
    )
    assert "low diversity" in evidence and "far from real" in evidence
    assert result.health["syn-v3"]["mean_generation"] == 3 and result.health["wordnet"]["real"]
    assert "computed now" in result.health_source
    assert result.reference["distinct_2"] > result.health["syn-v3"]["distinct_2"]


def test_wording_follows_the_measured_direction(full: Store) -> None:
    """A lower-is-better metric that rises with the planted share: the printed r is positive, as measured."""
    acc = {t["model"]: t["value"] for t in attribute(full, "acc", by="source").timeline}
    for model, value in acc.items():
        full.record_eval(model, metrics={"loss": 2.0 - value}, benchmark="planted")
    result = attribute(full, "loss", by="source", benchmark="planted")
    shares = np.array([t["shares"]["syn-v3"] for t in result.timeline])
    measured = float(np.corrcoef(shares, [t["value"] for t in result.timeline])[0, 1])
    evidence = " | ".join(result.suspects[0]["evidence"])
    assert result.suspects[0]["group"] == "syn-v3" and measured > 0.99
    assert f"(correlation with the metric r = {measured:+.2f}; higher metric is worse)" in evidence
    unsure = [e for s in result.suspects for e in s["evidence"] if "interval includes 0" in e]
    assert all("not distinguishable from no effect with 6 models" in e for e in unsure)


def test_too_few_models_says_so_and_recorded_metrics_are_reused(small_store: Store) -> None:
    planted(small_store, PLAN[:3])
    small_store.diversity(by=["source"], metrics="text", sample_size=100, draws=1)
    result = attribute(small_store, "acc", by="source")
    assert not result.regression.identified
    assert "3 models with a metric for 4 groups" in result.regression.message
    assert "at least 5" in result.regression.message
    assert result.health_source.startswith("recorded")
    assert result.suspects[0]["group"] == "syn-v3"  # the share trend and the data-side symptoms remain
    assert not any("regression" in e for s in result.suspects for e in s["evidence"])


def test_attribute_cli_json_and_errors(runner: Runner, full: Store) -> None:
    small_store = full
    doc = runner.json("attribute", "--metric", "acc", "--by", "source", "--models", "gen-1,gen-3,gen-5,gen-6,gen-2")
    assert [t["model"] for t in doc["timeline"]] == ["gen-1", "gen-2", "gen-3", "gen-5", "gen-6"]
    assert doc["suspects"][0]["group"] == "syn-v3" and doc["higher_is_better"] is True
    text = runner("attribute", "--metric", "acc", "--by", "generation").stdout
    assert "timeline" in text and "1. 3 (" in text  # generation 3 is syn-v3's
    record_eval(small_store, "gen-1", {"acc": 0.1}, benchmark="other")
    err = runner("attribute", "--metric", "acc", code=1).stderr
    assert "several benchmarks (heldout-qa, other)" in err and "--benchmark" in err
    assert "no model has an eval `f1`" in runner("attribute", "--metric", "f1", code=1).stderr
    assert "no model `ghost`" in runner("attribute", "--metric", "acc", "--models", "ghost", code=1).stderr
    with pytest.raises(LineageError, match="cannot attribute by `license`"):
        attribute(small_store, "acc", by="license")


def test_lower_is_better_metrics_flip_the_sign(full: Store) -> None:
    small_store = full
    for i, shares in enumerate(PLAN, start=1):  # perplexity rises with syn-v3
        record_eval(small_store, f"gen-{i}", {"perplexity": 10 + 20 * shares[3] + NOISE[i - 1]}, benchmark="real")
    result = attribute(small_store, "perplexity", by="source")
    assert not result.higher_is_better and result.suspects[0]["group"] == "syn-v3"
    assert result.regression.coefficient("syn-v3")[0] == max(c for c in result.regression.coefficients if c)


def test_ablate_writes_valid_leave_one_out_specs(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    planted(small_store, PLAN[:2])
    out = tmp_path / "ablations"
    runner("attribute", "ablate", "loop@v2", "--by", "source", "--output", str(out))
    paths = sorted(out.glob("*.yaml"))
    assert [p.name for p in paths] == [f"loop-without-source-{s}.yaml" for s in sorted(SOURCES)]
    spec = yaml.safe_load((out / "loop-without-source-syn-v3.yaml").read_text())
    assert spec["pool"]["where"] == "source IS DISTINCT FROM 'syn-v3'" and "syn-v3" not in spec["quotas"]["source"]
    # The others' fixed shares (60/25/5 of 90%) are renormalised and widened to whole percents.
    assert spec["quotas"]["source"]["wordnet"] == {"min": 0.66, "max": 0.67}
    runner("build", str(out / "loop-without-source-syn-v3.yaml"))
    built = Build.parse(small_store, spec["name"])
    comp = json.loads(built.info["composition"])["source"]
    assert "syn-v3" not in comp and built.info["size"] == 200 and 132 <= comp["wordnet"] <= 134
    gens = ablate(small_store, "loop@v2", by="generation", output=tmp_path / "by-gen")
    assert [p.name for p in gens] == [f"loop-without-generation-{g}.yaml" for g in (0, 1, 2, 3)]
    assert yaml.safe_load(gens[3].read_text())["pool"]["where"] == "generation IS DISTINCT FROM 3"
