"""Models and evals: registration, generation from model lineage, eval record / import / outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, Runner

from lineage.cli import cli, model_cmds
from lineage.errors import IngestError
from lineage.evals import eval_outputs, import_lm_eval, parse_lm_eval
from lineage.models import lineage_order, output_generations, register_model
from lineage.store import Store

for _command in model_cmds.COMMANDS:  # until lineage/cli/__init__.py registers them (same objects: harmless)
    cli.add_command(_command)


def build(store: Store, name: str, max_generation: int | None = None, size: int = 100) -> None:
    store.build({"name": name, "size": size, "seed": 1, "pool": {"max_generation": max_generation}})


def texts(path: Path, n: int) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines()[:n]]


def gen_of(store: Store, source: str) -> list[int]:
    q = "SELECT DISTINCT generation FROM samples WHERE source = ? ORDER BY 1"
    return store.sql(q, params=[source])["generation"].to_pylist()


def test_register_list_and_errors(runner: Runner, small_store: Store) -> None:
    build(small_store, "mix", max_generation=1)
    runner("model", "register", "gen-1", "--trained-on", "mix", "--notes", "first")
    runner("model", "register", "gen-2", "--trained-on", "mix@v1", "--parent", "gen-1")
    rows = runner.json("models")
    assert [(r["name"], r["trained_on"], r["parent"], r["output_generation"]) for r in rows] == [
        ("gen-1", "mix@v1", None, 2),
        ("gen-2", "mix@v1", "gen-1", 2),
    ]
    for args, message in [
        (("gen-1", "--trained-on", "mix"), "model `gen-1` is already registered"),
        (("gen-3", "--trained-on", "nope"), "no build `nope`"),
        (("gen-3", "--trained-on", "mix@v9"), "no build `mix@v9`"),
        (("gen-3", "--trained-on", "mix", "--parent", "ghost"), "parent model `ghost` is not registered"),
        (("../x", "--trained-on", "mix"), "model name `../x` is not allowed"),
    ]:
        err = runner("model", "register", *args, code=1).stderr
        assert message in err and len(err.strip().splitlines()) == 1
    assert small_store.sql("SELECT count(*) AS n FROM models")["n"][0].as_py() == 2


def test_lineage_order_puts_parents_first(small_store: Store) -> None:
    build(small_store, "mix")
    register_model(small_store, "base", trained_on="mix")
    register_model(small_store, "other", trained_on="mix")
    register_model(small_store, "child", trained_on="mix", parent="base")
    assert lineage_order(small_store) == ["base", "other", "child"]
    assert lineage_order(small_store, ["child", "base"]) == ["base", "child"]


def test_generation_from_the_generators_training_build(small_store: Store) -> None:
    build(small_store, "deep", max_generation=2)  # members reach generation 2
    build(small_store, "real-only", max_generation=0)
    register_model(small_store, "m-deep", trained_on="deep")
    register_model(small_store, "m-real", trained_on="real-only")
    assert output_generations(small_store) == {"m-deep": 3, "m-real": 1}
    ingest = {"origin": "synthetic", "method": "generate"}
    rows = [{"text": f"model output number {i}"} for i in range(3)]
    small_store.ingest(rows, source="out-deep", generator="m-deep", **ingest)
    small_store.ingest(rows, source="out-real", generator="m-real", **ingest)
    assert gen_of(small_store, "out-deep") == [3] and gen_of(small_store, "out-real") == [1]
    # Parents still win when deeper: a gen-3 parent makes 4; a real parent leaves the model's 3.
    parents = [
        {"text": "child of a deep one", "parent_ids": ["syn3-00001"]},
        {"text": "child of a real one", "parent_ids": ["wn-n-09474162-ex4"]},
    ]
    small_store.ingest(parents, source="out-parents", generator="m-deep", **ingest)
    got = small_store.sql("SELECT text, generation FROM samples WHERE source = 'out-parents' ORDER BY text")
    assert got.to_pylist() == [
        {"text": "child of a deep one", "generation": 4},
        {"text": "child of a real one", "generation": 3},
    ]


def test_generator_rule_errors_and_unregistered_generators(small_store: Store) -> None:
    build(small_store, "deep", max_generation=2)
    register_model(small_store, "m-deep", trained_on="deep")
    with pytest.raises(IngestError, match=r"generation 2 contradicts its parents and generator .* = 3"):
        small_store.ingest([{"text": "x y"}], origin="synthetic", source="s", generator="m-deep", generation=2)
    with pytest.raises(IngestError, match="neither parents nor a generation"):
        small_store.ingest([{"text": "x y"}], origin="synthetic", source="s", generator="llama-3-8b")
    small_store.ingest([{"text": "x y"}], origin="synthetic", source="s", generator="m-deep", generation=3)
    small_store.ingest([{"text": "x y"}], origin="synthetic", source="t", generator="llama-3-8b", generation=5)
    assert gen_of(small_store, "s") == [3] and gen_of(small_store, "t") == [5]


def test_eval_record_and_eval_set_warning(runner: Runner, small_store: Store) -> None:
    build(small_store, "mix")
    register_model(small_store, "m1", trained_on="mix")
    runner("set", "create", "heldout", "--protected")
    runner("set", "create", "loose")
    ok = runner("eval", "record", "m1", "--metric", "acc=0.61", "--stderr", "acc=0.01", "--eval-set", "heldout")
    assert "Warning" not in ok.stderr
    loose = runner("eval", "record", "m1", "--metric", "acc=0.6", "--metric", "f1=0.5", "--eval-set", "loose")
    assert loose.stderr.strip() == "Warning: eval set `loose` is not protected: its items may enter training builds"
    ghost = runner("eval", "record", "m1", "--metric", "acc=0.5", "--eval-set", "ghost").stderr.strip()
    assert ghost.startswith("Warning: eval set `ghost` does not exist") and "\n" not in ghost
    rows = small_store.sql("SELECT metric, value, stderr, eval_set FROM evals ORDER BY version, metric").to_pylist()
    assert [(r["metric"], r["value"], r["stderr"], r["eval_set"]) for r in rows] == [
        ("acc", 0.61, 0.01, "heldout"),
        ("acc", 0.6, None, "loose"),
        ("f1", 0.5, None, "loose"),
        ("acc", 0.5, None, "ghost"),
    ]
    assert "must look like NAME=NUMBER" in runner("eval", "record", "m1", "--metric", "acc", code=1).stderr
    assert "no model `nobody`" in runner("eval", "record", "nobody", "--metric", "acc=1", code=1).stderr


def test_lm_eval_harness_import(runner: Runner, small_store: Store) -> None:
    rows = parse_lm_eval(FIXTURES / "lm_eval_results.json")
    got = {(r["benchmark"], r["metric"]): (r["value"], r["stderr"]) for r in rows}
    assert len(got) == 6
    assert got[("hellaswag", "acc")] == (0.5701055566620195, 0.004940580442366614)
    assert got[("arc_easy", "acc_norm")] == (0.7344276094276094, 0.009062173569283613)
    assert got[("gsm8k", "exact_match,strict-match")] == (0.3502653525398029, 0.013140409455571276)
    assert got[("gsm8k", "exact_match,flexible-extract")] == (0.3601213040181956, None)  # stderr "N/A"
    build(small_store, "mix")
    register_model(small_store, "m1", trained_on="mix")
    out = runner.json("eval", "import", "m1", str(FIXTURES / "lm_eval_results.json"))
    assert len(out["evals"]) == 6 and out["warnings"] == []
    stored = small_store.sql("SELECT DISTINCT source FROM evals")["source"].to_pylist()
    assert stored == ["lm-eval-harness:lm_eval_results.json"]
    bad = small_store.root.parent / "bad.json"
    bad.write_text('{"versions": {}}')
    assert "no `results` mapping" in runner("eval", "import", "m1", str(bad), code=1).stderr
    with pytest.raises(Exception, match="no model"):
        import_lm_eval(small_store, "ghost", FIXTURES / "lm_eval_results.json")


def test_output_diversity_falls_for_collapsed_outputs(small_store: Store, tmp_path: Path) -> None:
    build(small_store, "mix")
    register_model(small_store, "healthy", trained_on="mix")
    register_model(small_store, "collapsed", trained_on="mix")
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.txt"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(FIXTURES / "synthetic-g1.jsonl", 60)))
    bad.write_text("\n".join(texts(FIXTURES / "synthetic-g3.jsonl", 60)) + "\n")
    a = eval_outputs(small_store, "healthy", good, sample_size=50, draws=2)
    b = eval_outputs(small_store, "collapsed", bad, sample_size=50, draws=2)
    va, vb = ({r["metric"]: r["value"] for r in x.rows} for x in (a, b))
    assert {r["benchmark"] for r in a.rows} == {"outputs"}
    assert va["distinct_2"] > vb["distinct_2"] and va["self_bleu"] < vb["self_bleu"]
    assert va["tail_coverage"] > vb["tail_coverage"] and va["js_divergence"] < vb["js_divergence"]
    assert va["compression_ratio"] < vb["compression_ratio"]
    n = small_store.sql("SELECT count(*) AS n FROM evals WHERE benchmark = 'outputs'")["n"][0].as_py()
    assert n == len(a.rows) + len(b.rows) == 2 * 12  # the 12 text metrics
