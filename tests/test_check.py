"""`lineage check`'s data-health symptoms (near-duplicate rate, distance to real), the per-model check of the
models report, and `lineage model rollback`, on a seeded closed loop: real WordNet sentences, a model's
mode-collapsed outputs (a few long texts repeated with one word changed) and its healthy paraphrases."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import Runner

from lineage.build import Build
from lineage.check import Thresholds
from lineage.errors import LineageError
from lineage.store import Store

CORPUS = Path(__file__).resolve().parent.parent / "lineage" / "demo" / "data" / "wordnet-sentences.jsonl.gz"


def _sentences(n: int, seed: int) -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(20_000), f, strict=False)]
    return random.Random(seed).sample(texts, n)


def collapsed_outputs(real: list[str], rng: random.Random, n: int = 1_000) -> list[dict[str, Any]]:
    """Mode collapse: 25 long texts, each written 40 times with its last word changed."""
    bases = [" ".join(rng.sample(real, 4)) for _ in range(25)]
    endings = ["again", "indeed", "too", "still", "anyway", "then", "now", "here"]
    return [{"id": f"col-{i:05d}", "text": f"{bases[i % 25].rstrip('.')} {rng.choice(endings)}."} for i in range(n)]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Store:
    rng = random.Random(7)
    real = _sentences(2_000, 7)
    store = Store.init(tmp_path_factory.mktemp("check") / "store")
    store.ingest([{"id": f"r{i:05d}", "text": t} for i, t in enumerate(real)], origin="real", source="wordnet",
                 method="human", license="cc-by-4.0")
    store.build({"name": "g1", "size": 1_500, "seed": 0})
    store.register_model("m1", trained_on="g1")
    evals = {"heldout_loss": 8.0, "heldout_accuracy": 0.2}
    store.record_eval("m1", metrics=evals, benchmark="heldout")
    store.ingest(collapsed_outputs(real, rng), origin="synthetic", source="m1-collapsed", generator="m1")
    para = [{"id": f"p{i:05d}", "text": f"In other words, {t[0].lower()}{t[1:]}"} for i, t in enumerate(real[:300])]
    store.ingest(para, origin="synthetic", source="m1-para", method="paraphrase", generator="m1")
    store.run_filter("near-dedup")
    # The collapsed outputs, near-duplicates and all (near-dedup's drops not honoured), and a governed mix.
    store.build({"name": "g2raw", "size": 800, "seed": 0,
                 "pool": {"where": "source = 'm1-collapsed'", "exclude_dropped_by": []}})
    store.build({"name": "g2good", "size": 1_500, "seed": 0, "quotas": {"origin": {"real": {"min": 0.9}}},
                 "pool": {"where": "source IN ('wordnet', 'm1-para')"}})
    for name, build in (("m2", "g2raw"), ("m2good", "g2good")):
        store.register_model(name, trained_on=build, parent="m1")
        store.record_eval(name, metrics=evals, benchmark="heldout")  # the evals alone would pass
    store.register_model("m3", trained_on="g2raw", parent="m2")
    store.record_eval("m3", metrics=evals, benchmark="heldout")
    return store


def _kinds(result: Any) -> dict[str, Any]:
    return {s.kind: s for s in result.symptoms}


def test_collapsed_training_data_fails_on_near_duplicates_and_distance_to_real(loop: Store) -> None:
    bad = _kinds(loop.check("m2"))
    assert not bad["metric_worse"].crossed and not bad["loss_up"].crossed
    near = bad["near_dup_rate"]
    assert near.crossed and near.value > 0.8, near.evidence  # 25 texts of 800 survive near-dedup
    assert near.evidence.startswith("training build g2raw@v1: ")
    assert "near-duplicates near-dedup dropped" in near.evidence
    far = bad["distance_to_real"]
    assert far.crossed and far.reference is not None and far.value > 2 * far.reference, far.evidence
    assert "for g1@v1" in far.evidence and "bits); past the 0.05 bits allowed" in far.evidence

    good = loop.check("m2good")
    assert good.passed, [s.evidence for s in good.symptoms if s.crossed]
    kinds = _kinds(good)
    assert kinds["near_dup_rate"].value == 0.0  # the build honoured near-dedup's drops
    assert kinds["distance_to_real"].value - kinds["distance_to_real"].reference < 0.05  # 10% paraphrases

    first = _kinds(loop.check("m1"))  # no parent: the value, unjudged; near-dedup ran after its build
    assert first["distance_to_real"].reference is None and not first["distance_to_real"].crossed
    assert first["near_dup_rate"].value == 0.0
    loose = loop.check("m2", thresholds=Thresholds(max_near_dup_rate=0.99, distance_up=100, max_synthetic_share=1))
    assert loose.passed


def test_check_cli_shows_the_new_symptoms_and_reads_their_thresholds(loop: Store, tmp_path: Path) -> None:
    run = Runner(loop.root)
    out = run("check", "m2", code=1).stdout
    assert "  FAIL near_dup_rate: training build g2raw@v1: " in out and "  FAIL distance_to_real: " in out
    doc = json.loads(run("check", "m2", "--json", code=1).stdout)
    assert {s["kind"] for s in doc["symptoms"] if s["crossed"]} >= {"near_dup_rate", "distance_to_real"}
    loose = tmp_path / "t.yaml"
    loose.write_text("max_near_dup_rate: 1\ndistance_up: 100\nmax_synthetic_share: 1\n", encoding="utf-8")
    assert run("check", "m2", "--thresholds", str(loose)).stdout.startswith("m2 against m1: passed")
    assert "max_near_dup_rate, distance_up" in run("check", "--help").stdout


def test_models_report_shows_each_models_check(loop: Store, tmp_path: Path) -> None:
    from lineage.report.models_data import models_data

    data = models_data(loop)
    checks = {m["name"]: m["check"] for m in data["models"]}
    assert checks["m1"]["passed"] and checks["m1"]["against"] is None
    assert checks["m2"]["passed"] is False and checks["m2"]["against"] == "m1"
    assert {"near_dup_rate", "distance_to_real", "synthetic_share"} <= set(checks["m2"]["failing"])
    assert checks["m2good"]["passed"] and checks["m3"]["passed"] is False
    assert {"label": "check failed", "value": "2/4"} in data["summary"]
    run = Runner(loop.root)
    run("report", "models", "--format", "md", "--output", str(tmp_path / "m.md"))
    md = (tmp_path / "m.md").read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| m2 |"))
    assert "| failed: " in row and "near_dup_rate" in row and row.endswith("(vs m1) |")
    assert "- m2: " in md and "near-duplicates near-dedup dropped" in md
    run("report", "models", "--output", str(tmp_path / "m.html"))
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert '<span class="badge bad">failed</span>' in html and '<span class="badge ok">passed</span>' in html


def test_rollback_records_the_snapshot_and_the_next_build_draws_from_it(loop: Store) -> None:
    first = Build(loop, "g1")
    before = loop.version
    done = loop.rollback("m2")  # no --to: the last ancestor whose check passes
    assert (done.model, done.to, done.build, done.as_of) == ("m2", "m1", "g1@v1", first.info["store_version"])
    assert done.version == before + 1
    commit = loop.sql("SELECT kind, ref_id, summary FROM commits WHERE version = ?", params=[done.version])
    assert commit.to_pylist()[0]["kind"] == "rollback" and json.loads(commit["summary"][0].as_py())["to"] == "m1"
    nxt = loop.build({"name": "g3", "size": 300, "seed": 1, "policy": {"after": "m2"}})
    decision = json.loads(nxt.info["checks"])["policy"]
    assert decision["rolled_back_to"] == "m1" and decision["as_of"] == first.info["store_version"]
    assert "rollback recorded at version" in decision["rule"] and decision["fired"]
    assert nxt.info["store_version"] == first.info["store_version"]
    assert json.loads(nxt.info["composition"])["origin"] == {"real": 300}  # no model output existed then
    other = loop.build({"name": "g3b", "size": 300, "seed": 1, "policy": {"after": "m2good"}})
    assert "rolled_back_to" not in json.loads(other.info["checks"])["policy"]  # only builds after m2


def test_a_rollback_to_a_version_gc_removed_is_refused(loop: Store, tmp_path: Path) -> None:
    """A rollback to a snapshot `gc` had removed was once recorded, and every build after it failed."""
    import shutil

    store = Store(shutil.copytree(loop.root, tmp_path / "copy"))
    store.compact()
    store.gc(dry_run=False, retain_versions=1)
    before = store.version
    with pytest.raises(LineageError, match=r"^cannot roll `m2` back to `m1`: its training build g1@v1 drew from store "
                       r"version \d+, and `lineage gc` removed the segments of versions before \d+"):
        store.rollback("m2")
    assert store.version == before
    err = Runner(store.root)("model", "rollback", "m2", code=1).stderr
    assert err.startswith("Error: cannot roll `m2` back to `m1`: ") and err.count("\n") == 1


def test_a_model_whose_training_build_leaks_fails_its_check(loop: Store, tmp_path: Path) -> None:
    """A model trained on a build that now leaks a protected set once passed its check: `contamination` fails."""
    import shutil

    store = Store(shutil.copytree(loop.root, tmp_path / "copy"))
    ok = {s.kind: s for s in store.check("m2good").symptoms}["contamination"]
    assert not ok.crossed and "no member holds, contains or descends from any of the" in ok.evidence
    leaked = Build(store, "g1").member_ids()["sample_id"][0].as_py()
    store.create_set("heldout-late", ids=[leaked], protected=True)
    result = store.check("m1")
    bad = {s.kind: s for s in result.symptoms}["contamination"]
    assert bad.crossed and not result.passed and bad.value >= 1
    assert bad.evidence.startswith("training build g1@v1: ") and f"member {leaked}" in bad.evidence
    assert "re-checked now" in bad.evidence
    out = Runner(store.root)("check", "m1", code=1).stdout
    assert "  FAIL contamination: training build g1@v1: " in out


def test_rollback_cli(loop: Store) -> None:
    run = Runner(loop.root)
    out = run("model", "rollback", "m2", "--to", "m1").stdout
    assert out.startswith("rolled m2 back to m1 (version ") and "builds with policy `after: m2` now draw from " \
        "store version" in out and "when m1's training build g1@v1 was made" in out
    assert "  ok   synthetic_share: " in out
    doc = run.json("model", "rollback", "m2")
    assert doc["to"] == "m1" and doc["build"] == "g1@v1"
    err = run("model", "rollback", "m2", "--to", "m2good", code=1).stderr
    assert err == "Error: cannot roll `m2` back to `m2good`: it is not an ancestor of `m2` (its parents: m1)\n"
    err = run("model", "rollback", "m3", "--to", "m2", code=1).stderr
    assert err.startswith("Error: cannot roll `m3` back to `m2`: its own check fails (")
    err = run("model", "rollback", "m1", code=1).stderr
    assert err == "Error: rollback: no model before `m1` passes its check; nothing to roll back to\n"
    assert run("model", "rollback", "m9", code=1).stderr.startswith("Error: no model `m9`")
    assert "lineage model rollback gen-5 --to gen-2" in run("model", "rollback", "--help").stdout
    assert run.json("model", "rollback", "m3")["to"] == "m1"  # m2 fails its check: further back
    with pytest.raises(LineageError, match="not an ancestor"):
        loop.rollback("m1", to="m2")


def test_builds_measured_together_as_each_alone(loop: Store) -> None:
    """The models report measures every build in one pass (`build_health`): the same values as one at a time."""
    from lineage.check import build_health

    builds = [("g1", 1), ("g2raw", 1), ("g2good", 1), ("g1", 1)]
    together = build_health(loop, builds)
    alone = [build_health(loop, [b])[0] for b in builds]
    assert together == alone
    assert together[1]["near_dup_rate"] > 0 and together[0]["near_dup_rate"] == 0.0  # g2raw kept near-dups
