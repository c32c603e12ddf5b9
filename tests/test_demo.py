"""The demo's science, as invariants with margins over several seeds (Shumailov et al. 2024; Gerstgrasser et
al. 2024): replacing data with model output raises held-out loss every generation and loses the rare words;
keeping real data (accumulate, governed) bounds it; attribution blames the deep synthetic generations."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from conftest import Runner

from lineage.demo.loop import DemoConfig, DemoResult, run_demo
from lineage.errors import LineageError

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
    with pytest.raises(LineageError, match="is not empty; pass --force"):
        run_demo(tmp_path / "x", DemoConfig(**SMALL))
    with pytest.raises(LineageError, match="is not a lineage store; refusing to delete it"):
        run_demo(tmp_path / "x", DemoConfig(**SMALL), force=True)
    assert (tmp_path / "x" / "notes.txt").exists()


def test_cli_help() -> None:
    out = Runner(Path("unused"))("demo", "--help").stdout
    assert "replace" in out and "governed" in out and "Example" in out
