"""The demo's science, as invariants with margins over several seeds (Shumailov et al. 2024; Gerstgrasser et
al. 2024): replacing data with model output raises held-out loss every generation and loses the rare words;
keeping real data (accumulate, governed) bounds it; attribution blames the deep synthetic generations."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import Runner

from lineage.demo.loop import DemoConfig, DemoResult, run_demo
from lineage.errors import LineageError
from lineage.store import Store

SEEDS = (0, 1, 2)
SMALL = {"generations": 3, "train_size": 2000, "heldout_size": 400, "outputs": 2000}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, DemoResult]:
    root = tmp_path_factory.mktemp("demo")
    return {seed: run_demo(root / f"seed-{seed}", DemoConfig(seed=seed, **SMALL)) for seed in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
def test_replace_collapses(runs: dict[int, DemoResult], seed: int) -> None:
    loss = runs[seed].series("replace", "heldout_loss")
    assert all(b > a for a, b in pairwise(loss)), loss
    assert loss[-1] >= 1.10 * loss[0]
    survival = {p: runs[seed].series(p, "rare_survival")[-1] for p in ("replace", "accumulate", "governed")}
    assert survival["replace"] <= min(survival["accumulate"], survival["governed"]) - 0.10, survival
    accuracy = {p: runs[seed].series(p, "heldout_accuracy") for p in ("replace", "governed")}
    assert accuracy["replace"][-1] < accuracy["replace"][0] and accuracy["replace"][-1] < accuracy["governed"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_real_data_bounds_the_loss(runs: dict[int, DemoResult], seed: int) -> None:
    governed = runs[seed].series("governed", "heldout_loss")
    assert max(governed) <= 1.04 * governed[0], governed
    kept = runs[seed].series("governed", "rare_survival")
    assert kept[-1] >= 0.9 * kept[0], kept
    assert runs[seed].series("accumulate", "heldout_loss")[-1] < runs[seed].series("replace", "heldout_loss")[-1]
    assert min(runs[seed].series("governed", "real_share")) >= 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_attribution_blames_deep_generations(runs: dict[int, DemoResult], seed: int) -> None:
    attribution = runs[seed].attribution
    coef = dict(zip(attribution.regression.groups, attribution.regression.coefficients, strict=True))
    assert all(coef["0"] < coef[g] for g in coef if g != "0"), coef
    assert attribution.suspects[0]["group"] == max(coef, key=int)


def test_lineage_records_the_whole_loop(runs: dict[int, DemoResult]) -> None:
    store = runs[0].store
    models = store.sql("SELECT name, parent, build_name FROM models ORDER BY version").to_pylist()
    assert [m["name"] for m in models][:3] == ["replace-m1", "replace-m2", "replace-m3"]
    assert models[1]["parent"] == "replace-m1"
    depth = store.sql(
        "SELECT generator, max(generation) AS g FROM samples WHERE generator IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert {d["generator"]: d["g"] for d in depth}["replace-m3"] == 3  # inferred from the model's training build
    assert {d["generator"]: d["g"] for d in depth}["governed-m3"] <= 3
    leaked = store.sql(
        "SELECT count(*) AS n FROM builds b, json_each(b.checks) j WHERE j.key IN ('exact_matches', 'lineage_matches') "
        "AND CAST(j.value AS INTEGER) > 0"
    )["n"][0].as_py()
    assert leaked == 0
    assert store.doctor().ok


def test_same_seed_same_numbers(tmp_path: Path, runs: dict[int, DemoResult]) -> None:
    again = run_demo(tmp_path / "again", DemoConfig(seed=0, **SMALL))
    assert again.rows == runs[0].rows


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(LineageError, match="is not empty; pass force=True"):
        run_demo(tmp_path / "x", DemoConfig(**SMALL))
    with pytest.raises(LineageError, match="is not a lineage store; refusing to delete it"):
        run_demo(tmp_path / "x", DemoConfig(**SMALL), force=True)
    assert (tmp_path / "x" / "notes.txt").exists()


def test_cli_help() -> None:
    out = Runner(Path("unused"))("demo", "--help").stdout
    assert "replace" in out and "governed" in out and "Example" in out


def test_output_fits_80_columns_and_concludes_from_the_numbers(runs: dict[int, DemoResult]) -> None:
    from lineage.demo.summary import conclusion, summary_text

    text = summary_text(runs[0])
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "accumula…" not in text and "…" not in text
    assert text.splitlines()[-1].startswith("  ") or text.splitlines()[-1].startswith("conclusion:")
    rows = runs[0].rows
    rep = [r for r in rows if r.policy == "replace"]
    gov = [r for r in rows if r.policy == "governed"]
    said = conclusion(runs[0])
    assert f"{rep[-1].heldout_loss / rep[0].heldout_loss - 1:+.1%} under replace" in said
    assert f"vs {gov[-1].heldout_loss / gov[0].heldout_loss - 1:+.1%} governed" in said


def test_conclusion_says_when_mitigation_did_not_help(runs: dict[int, DemoResult]) -> None:
    """Swap the two policies' numbers: the same code must now report that governed did worse."""
    from dataclasses import replace as copy

    from lineage.demo.summary import conclusion

    rows = runs[0].rows
    swapped = [copy(r, policy={"replace": "governed", "governed": "replace"}.get(r.policy, r.policy)) for r in rows]
    said = conclusion(DemoResult(runs[0].store, swapped))
    assert "governed did NOT do better than replace on any measure" in said, said
    assert "governed did better on all four measures" in conclusion(runs[0]) or "but not on" in conclusion(runs[0])


TINY = {"generations": 2, "train_size": 600, "heldout_size": 120, "outputs": 600}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 10))
def test_demo_runs_for_every_seed(tmp_path: Path, seed: int) -> None:
    """`lineage demo --seed 3` once crashed; the demo is deterministic per seed, so every seed the (reduced)
    demo does not already run above runs end to end here, with finite measures for every policy and generation."""
    import math

    result = run_demo(tmp_path / "store", DemoConfig(seed=seed, **TINY))
    assert {r.policy for r in result.rows} == {"replace", "accumulate", "governed"}
    assert all(math.isfinite(r.heldout_loss) and 0 <= r.rare_survival <= 1 for r in result.rows)
    assert max(r.generation for r in result.rows) == TINY["generations"]


@pytest.mark.parametrize("seed", range(10))
def test_lm_scores_every_split(seed: int) -> None:
    """The demo's split for ten seeds: no held-out bigram past the last seen key crashes the model (the
    off-by-one of `_pair_counts`), and accuracy is measured on held-out sentences, not training ones."""
    import numpy as np

    from lineage.demo.lm import BigramLM, Vocabulary, tokenize
    from lineage.demo.loop import load_corpus

    corpus = [r["text"] for r in load_corpus()]
    order = np.random.default_rng(seed).permutation(len(corpus))
    train, heldout = [corpus[i] for i in order[:2000]], [corpus[i] for i in order[2000:2400]]
    vocab = Vocabulary(t for text in train for t in tokenize(text))
    lm = BigramLM.train(vocab, train)
    assert 0 < lm.cross_entropy(heldout) < 20
    assert lm.accuracy(train) > lm.accuracy(heldout) > 0.05


def test_lm_accuracy_is_the_argmax_of_its_probabilities() -> None:
    import numpy as np

    from lineage.demo.lm import BigramLM, Vocabulary

    texts = ["a b c", "a b d", "b c a", "c c c d", "d a", "zz top"]
    lm = BigramLM.train(Vocabulary(["a", "b", "c", "d", "zz", "top"]), texts)
    size = len(lm.vocab)
    probs = np.zeros((size, size))
    for v in range(size):  # P(w | v) for every pair, the long way
        for w in range(size):
            key = np.array([v * size + w])
            c, t = lm.context[v], lm.types[v]
            pair = lm._pair_counts(key)[0]
            probs[v, w] = (pair + t * lm.unigram[w]) / (c + t) if c + t else lm.unigram[w]
    assert (lm.predict_next() == probs.argmax(axis=1)).all()
    assert lm._pair_counts(np.array([size * size - 1]))[0] == 0  # past the last key: zero, not IndexError


def test_check_fails_the_collapsed_model_and_passes_the_real_one(runs: dict[int, DemoResult], tmp_path: Path) -> None:
    store = runs[0].store
    rep = {r.generation: r for r in runs[0].rows if r.policy == "replace"}
    collapsed = store.check("replace-m3", baseline="replace-m1")
    assert not collapsed.passed and collapsed.against == "replace-m1"
    by_kind = {s.kind: s for s in collapsed.symptoms}
    assert by_kind["loss_up"].crossed and by_kind["loss_up"].value == rep[3].heldout_loss
    assert by_kind["loss_up"].change == pytest.approx(rep[3].heldout_loss / rep[1].heldout_loss - 1)
    assert by_kind["rare_lost"].crossed and by_kind["synthetic_share"].crossed
    first = store.check("governed-m1")  # no parent: the training build's health only (all real data)
    assert first.passed and {s.kind for s in first.symptoms} == {
        "synthetic_share", "generation_depth", "near_dup_rate", "distance_to_real", "contamination"}
    assert not {s.kind for s in first.symptoms if s.value is None} - {"near_dup_rate"}  # measured, unjudged

    run = Runner(store.root)
    out = run("check", "replace-m3", "--baseline", "replace-m1", code=1).stdout
    assert out.startswith("replace-m3 against replace-m1: FAILED") and "FAIL loss_up: demo/heldout_loss" in out
    assert run("check", "governed-m1").stdout.startswith("governed-m1 (no parent")
    loose = tmp_path / "loose.yaml"
    loose.write_text("loss_up: 10\nrare_down: 10\ndiversity_down: 10\nmetric_worse: 10\n"
                     "max_synthetic_share: 1\nmax_generation: 9\ndistance_up: 1\n", encoding="utf-8")
    run("check", "replace-m3", "--baseline", "replace-m1", "--thresholds", str(loose))
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss_upp: 0.1\n", encoding="utf-8")
    err = run("check", "replace-m3", "--thresholds", str(bad), code=1).stderr
    assert "unknown threshold `loss_upp`" in err


def test_governed_policy_responds_to_its_check(runs: dict[int, DemoResult]) -> None:
    """Each governed build after the first ran `check` on the last model against the first; when a symptom
    crossed its threshold the real floor rose by 0.2 and the generation cap fell by 1, else they held."""
    import json

    store = runs[0].store
    rows = store.sql("SELECT name, checks FROM builds WHERE name LIKE 'governed-g%' ORDER BY name").to_pylist()
    previous = {"real_min": 0.5, "max_generation": 2}
    for row in rows[1:]:
        decision = json.loads(row["checks"])["policy"]
        verdict = store.check(decision["after"], baseline="governed-m1")
        assert decision["fired"] == (not verdict.passed)
        assert decision["symptoms"] == [s.evidence for s in verdict.symptoms if s.crossed]
        step = (0.2, -1) if decision["fired"] else (0.0, 0)
        assert decision["real_min"] == pytest.approx(min(1.0, previous["real_min"] + step[0]))
        assert decision["max_generation"] == max(0, previous["max_generation"] + step[1])
        previous = decision
    shares = runs[0].series("governed", "real_share")
    assert all(s >= 0.5 for s in shares)


def test_policy_rolls_back_to_the_last_passing_snapshot(runs: dict[int, DemoResult]) -> None:
    """replace-m3 and replace-m2 fail their check against replace-m1: a rollback draws the next build from the
    store as it was when replace-m1's training build was made (real data only, no model output yet)."""
    import json

    from lineage.build import Build

    store = runs[0].store
    spec = {"name": "after-replace", "size": 500, "seed": 1,
            "pool": {"where": "source = 'wordnet' OR generator LIKE 'replace-%'"},
            "policy": {"after": "replace-m3", "baseline": "replace-m1", "on_symptoms": {"rollback": True}}}
    build = store.build(spec)
    decision = json.loads(build.info["checks"])["policy"]
    first = Build(store, "replace-g1")
    assert decision["fired"] and decision["rolled_back_to"] == "replace-m1"
    assert decision["as_of"] == first.info["store_version"] == build.info["store_version"]
    assert json.loads(build.info["composition"])["origin"] == {"real": 500}
    assert decision["real_min"] == pytest.approx(0.2)  # no floor before: the step from 0


@pytest.mark.slow
def test_make_demo_runs_at_full_size_and_every_build_is_clean(tmp_path: Path) -> None:
    """What `make demo` runs, at its default size: the reduced runs above once passed while this one failed
    (WordNet glosses contain held-out glosses, and every build refuses a leaking member)."""
    done = subprocess.run([sys.executable, "-m", "lineage", "demo", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "conclusion: governed did better" in done.stdout
    store = Store(tmp_path / "demo")
    builds = store.sql("SELECT name, checks FROM builds")
    assert builds.num_rows == 15  # three policies, five generations
    for name, checks in zip(builds["name"].to_pylist(), builds["checks"].to_pylist(), strict=True):
        assert json.loads(checks)["clean"], name


def test_every_corpus_sentence_is_a_sample_of_its_own(store: Store) -> None:
    """Adverbs and adjectives once shared ids (`wn-a-` for both): 10 ids named two texts, and a demo drawing both
    (`--train-size 20000`) refused its own input. Each sentence has an id of its own, and the whole corpus ingests."""
    from lineage.demo.loop import load_corpus

    corpus = load_corpus()
    assert len({r["id"] for r in corpus}) == len(corpus) > 100_000
    assert {r["id"][:5] for r in corpus} == {"wn-n-", "wn-v-", "wn-a-", "wn-r-"}
    result = store.ingest(list(corpus), origin="real", source="wordnet", method="human")
    assert result.rows_stored == len(corpus) and result.rows_rejected == 0
    stored = store.sql("SELECT count(DISTINCT external_id) AS ids, count(*) AS n FROM samples").to_pylist()
    assert stored == [{"ids": len(corpus), "n": len(corpus)}]
