"""near-dedup out of core (`lineage.filters.near_dedup_bounded`): the in-memory algorithm's decisions, in bounded
memory, spilling to STORE/tmp, and the faults of spilling."""

from __future__ import annotations

import sys

import pyarrow as pa
import pytest
from conftest import FIXTURES

from lineage.filters.base import BASE_COLUMNS, SelectionContext
from lineage.filters.near_dedup import NearDedupFilter, NearDedupParams
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
from neardups import documents

COLUMNS = ["sample_id", "decision", "score", "reason", "related_id", "cluster_id"]


def planted(store: Store, n: int, *, words: int = 60, dup_rate: float = 0.3, seed: int = 0) -> Store:
    store.ingest(list(documents(n, words=words, dup_rate=dup_rate, seed=seed)), source="planted", method="edit")
    return store


def recorded(store: Store) -> list[dict]:
    return store.sql(
        f"SELECT {', '.join(COLUMNS)} FROM status WHERE filter = 'near-dedup' ORDER BY sample_id"
    ).to_pylist()


def in_memory(store: Store, params: dict | None = None) -> list[dict]:
    """Today's algorithm: the whole selection in one table, `decide_all`."""
    flt = NearDedupFilter(NearDedupParams(**(params or {})))
    columns = ", ".join(dict.fromkeys([*BASE_COLUMNS, "text"]))
    features = store.sql(f"SELECT {columns} FROM samples ORDER BY sample_id")
    return flt.decide_all(features, SelectionContext(store, "reference")).select(COLUMNS).to_pylist()


def same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert {k: v for k, v in g.items() if k != "score"} == {k: v for k, v in w.items() if k != "score"}
        assert (g["score"] is None) == (w["score"] is None)
        assert g["score"] is None or g["score"] == pytest.approx(w["score"], abs=1e-12)


@pytest.mark.parametrize(("n", "params"), [(700, {}), (6_000, {}), (3_000, {"threshold": 0.6, "ngram": 3})])
def test_the_decisions_are_those_of_the_in_memory_algorithm(store: Store, n: int, params: dict) -> None:
    planted(store, n)
    result = store.run_filter("near-dedup", params=params)
    got = recorded(store)
    assert result.dropped > n // 10 and result.selected == n
    assert "out of core" in result.note
    same(got, in_memory(store, params))
    # Again over the signatures cached by the first run: the same decisions.
    store.run_filter("near-dedup", params=params, force=True)
    same(recorded(store), got)


def test_a_small_memory_limit_spills_and_decides_the_same(store: Store) -> None:
    planted(store, 20_000, words=40, dup_rate=0.3)
    result = store.run_filter("near-dedup", memory_limit="24MB")
    assert "MB spilled to disk at most" in result.note, result.note
    same(recorded(store), in_memory(store))
    assert not list((store.root / "tmp").iterdir())  # the spill folder went with the run


def test_drops_by_source_are_counted(store: Store) -> None:
    planted(store, 700)
    result = store.run_filter("near-dedup")
    assert sum(r["n"] for r in result.by_source) == 700
    assert sum(r["n"] for r in result.by_source if r["decision"] == "drop") == result.dropped > 0
    assert {r["source"] for r in result.by_source} == {"planted"}


def test_an_empty_selection_decides_nothing(store: Store) -> None:
    planted(store, 50)
    result = store.run_filter("near-dedup", where="false")
    assert (result.selected, result.kept, result.dropped) == (0, 0, 0)
    assert store.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]


def test_a_bad_memory_limit_is_one_line(store: Store) -> None:
    from lineage.errors import LineageError

    with pytest.raises(LineageError, match=r"^memory_limit='lots': must look like 512MB or 2GB$"):
        store.run_filter("near-dedup", memory_limit="lots")


def test_texts_join_with_64_bit_offsets() -> None:
    from lineage.features.minhash import signatures

    texts = ["one two three four five six", "one two three four five seven"]
    assert (signatures(pa.array(texts, pa.large_string())) == signatures(pa.array(texts))).all()
