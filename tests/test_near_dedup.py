"""near-dedup and the MinHash features: planted duplicates, keep policy, clusters, cache, datasketch as reference."""

from __future__ import annotations

import json
import re
from itertools import combinations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, Runner
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from lineage.errors import LineageError
from lineage.features import minhash
from lineage.filters.base import KEEP_ORDER_SQL, SelectionContext
from lineage.filters.near_dedup import NearDedupFilter, NearDedupParams
from lineage.filters.near_dedup_steps import kept_by_cluster, scores
from lineage.store import Store

PLANTED = json.loads((FIXTURES / "planted.json").read_text(encoding="utf-8"))
SYNTHETIC_G1 = [json.loads(line) for line in (FIXTURES / "synthetic-g1.jsonl").read_text().splitlines()]
REAL_ROWS = [json.loads(line) for line in (FIXTURES / "real.jsonl").read_text().splitlines()]
REAL, REAL_IDS = [r["text"] for r in REAL_ROWS], [r["id"] for r in REAL_ROWS]
PARENT = {r["id"]: r["parent_id"] for r in SYNTHETIC_G1}
# The planted near duplicates are 6-10 words and differ from their parent in the last word, so their word
# 5-gram Jaccard is only 0.33-0.71; word bigrams (0.67-0.8) with a lower threshold are what finds them.
SHORT_TEXT = {"ngram": "2", "threshold": "0.5"}
M64 = (1 << 64) - 1


def decisions(store: Store) -> dict[str, dict]:
    rows = store.sql(
        "SELECT s.external_id, e.decision, e.reason, e.score, k.external_id AS related, c.external_id AS cluster "
        "FROM status e JOIN samples s USING (sample_id) LEFT JOIN samples k ON k.sample_id = e.related_id "
        "JOIN samples c ON c.sample_id = e.cluster_id WHERE e.filter = 'near-dedup'"
    ).to_pylist()
    return {r.pop("external_id"): r for r in rows}


@pytest.mark.parametrize("params", [{}, SHORT_TEXT])
def test_exact_copies_are_dropped_for_their_real_parent(small_store: Store, params: dict) -> None:
    small_store.run_filter("near-dedup", params=params)
    got = decisions(small_store)
    for ext in PLANTED["exact_dup_of_parent"]:
        assert got[ext] == {
            "decision": "drop",
            "reason": "near_duplicate",
            "score": 1.0,
            "related": PARENT[ext],
            "cluster": PARENT[ext],
        }


def test_planted_near_duplicates_are_dropped_for_their_real_parent(small_store: Store) -> None:
    result = small_store.run_filter("near-dedup", params=SHORT_TEXT)
    got = decisions(small_store)
    for ext in PLANTED["near_dup_of_parent"]:
        row = got[ext]
        assert (row["decision"], row["reason"], row["related"], row["cluster"]) == (
            "drop",
            "near_duplicate",
            PARENT[ext],
            PARENT[ext],
        )
        assert 0.5 <= row["score"] < 1.0
        assert got[PARENT[ext]]["decision"] == "keep"
    assert result.reasons == {"near_duplicate": result.dropped}


def test_keep_policy_prefers_real_then_lower_generation_then_earlier(store: Store) -> None:
    one = "the committee met on a rainy tuesday to discuss the long delayed plans for the new harbour bridge"
    two = "a small grey cat slept all afternoon on the warm stone wall beside the old village bakery door"
    store.ingest([{"id": "s3", "text": one + " tonight"}], origin="synthetic", source="syn3", generation=3)
    store.ingest([{"id": "s1", "text": one + " today"}], origin="synthetic", source="syn1", generation=1)
    store.ingest([{"id": "r", "text": one + " again"}], origin="real", source="web")
    store.ingest([{"id": "r2", "text": one + " anyway"}], origin="real", source="web2")
    store.ingest([{"id": "t3", "text": two + " today"}], origin="synthetic", source="syn3b", generation=3)
    store.ingest([{"id": "t1", "text": two + " again"}], origin="synthetic", source="syn1b", generation=1)
    store.run_filter("near-dedup")
    assert {k: (v["decision"], v["related"], v["cluster"]) for k, v in decisions(store).items()} == {
        "r": ("keep", None, "r"),  # real wins, though ingested after the synthetic copies
        "r2": ("drop", "r", "r"),  # both real and generation 0: the earlier ingest wins
        "s1": ("drop", "r", "r"),
        "s3": ("drop", "r", "r"),
        "t1": ("keep", None, "t1"),  # no real copy: the lower generation wins, though ingested later
        "t3": ("drop", "t1", "t1"),
    }


def passage(first: int, words: int = 60) -> list[str]:
    """`words` words of consecutive fixture sentences, from sentence `first`."""
    return " ".join(REAL[first : first + 12]).split()[:words]


def shingle_jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Jaccard of the two texts' sets of shingle hashes, with Python sets."""
    sa, sb = (set(h.tolist()) for h in minhash.shingle_hashes([a, b], ngram=ngram))
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def test_the_threshold_bounds_the_exact_jaccard_not_its_estimate(store: Store) -> None:
    above = [" ".join(passage(8)), " ".join(passage(8)[:-10])]  # truncated: exact Jaccard 48/59
    below = [" ".join(passage(24)), " ".join(passage(24)[:-12])]  # exact Jaccard 44/56
    sigs = minhash.signatures(above + below)
    assert shingle_jaccard(*above) == 48 / 59 and minhash.jaccard(sigs[:1], sigs[1:2])[0] < 0.8  # 0.773
    assert shingle_jaccard(*below) == 44 / 56 and minhash.jaccard(sigs[2:3], sigs[3:])[0] >= 0.8  # 0.828
    store.ingest([{"id": "above", "text": above[0]}, {"id": "below", "text": below[0]}], origin="real", source="r")
    copies = [{"id": "above-cut", "text": above[1]}, {"id": "below-cut", "text": below[1]}]
    store.ingest(copies, origin="synthetic", source="s", generation=1)
    store.run_filter("near-dedup")
    got = decisions(store)
    assert got["above-cut"] == {
        "decision": "drop",
        "reason": "near_duplicate",
        "score": 48 / 59,
        "related": "above",
        "cluster": "above",
    }
    assert [got[k]["decision"] for k in ("above", "below", "below-cut")] == ["keep"] * 3


def test_a_sample_linked_through_another_scores_its_exact_jaccard_with_the_kept_one(store: Store) -> None:
    words = passage(100)
    a, b, c = " ".join(words), " ".join(words[:-6]), " ".join(words[:-12])  # a ~ b ~ c, but not a ~ c
    assert (shingle_jaccard(a, b), shingle_jaccard(b, c), shingle_jaccard(a, c)) == (50 / 56, 44 / 50, 44 / 56)
    store.ingest([{"id": "a", "text": a}], origin="real", source="r")
    store.ingest([{"id": "b", "text": b}, {"id": "c", "text": c}], origin="synthetic", source="s", generation=1)
    store.run_filter("near-dedup")
    got = {k: (v["decision"], v["related"], v["score"]) for k, v in decisions(store).items()}
    assert got == {"a": ("keep", None, None), "b": ("drop", "a", 50 / 56), "c": ("drop", "a", 44 / 56)}


def test_scores_come_from_the_verified_pairs_in_any_order() -> None:
    texts = pa.chunked_array([pa.array(["a b c", "a b c d", "x y z", "x y z w", "q"])])
    kept = np.array([0, 0, 2, 2, 4])
    pairs = np.array([[3, 2], [0, 1]])  # neither ascending nor i < j
    score = scores(texts, kept, pairs, np.array([0.25, 0.5]), ngram=2)  # the given values, not recomputed
    assert np.isnan(score[[0, 2, 4]]).all() and score[[1, 3]].tolist() == [0.5, 0.25]


def test_kept_follows_the_shared_keep_order_of_sql() -> None:
    rng = np.random.default_rng(0)
    n = 400
    features = pa.table(
        {
            "sample_id": [f"s{i:03d}" for i in rng.permutation(n)],
            "origin": rng.choice(["real", "synthetic"], n).tolist(),
            "generation": pa.array(rng.integers(0, 3, n), mask=rng.random(n) < 0.1),
            "version": rng.integers(1, 3, n),
            "input_row": pa.array(rng.integers(0, 4, n), mask=rng.random(n) < 0.2),
        }
    )
    labels = np.concatenate([rng.integers(0, 60, n - 20), np.arange(60, 80)])  # singletons too
    table = features.append_column("cluster", pa.array(labels)).append_column("row", pa.array(np.arange(n)))
    query = f'SELECT first_value("row") OVER (PARTITION BY cluster ORDER BY {KEEP_ORDER_SQL}) FROM t ORDER BY "row"'
    with duckdb.connect() as con:
        con.register("t", table)
        expected = [row[0] for row in con.sql(query).fetchall()]
    assert kept_by_cluster(features, labels).tolist() == expected


def test_every_event_has_a_cluster_named_after_its_kept_sample(small_store: Store) -> None:
    result = small_store.run_filter("near-dedup", params=SHORT_TEXT)
    rows = small_store.sql(
        "SELECT sample_id, decision, related_id, cluster_id FROM events WHERE run_id = ?", params=[result.run_id]
    ).to_pylist()
    assert len(rows) == 1125 and all(r["cluster_id"] for r in rows)
    kept = {r["sample_id"] for r in rows if r["decision"] == "keep"}
    assert {r["cluster_id"] for r in rows} == kept  # one kept sample per cluster, and it names it
    for r in rows:
        if r["decision"] == "keep":
            assert (r["cluster_id"], r["related_id"]) == (r["sample_id"], None)
        else:
            assert r["related_id"] == r["cluster_id"] != r["sample_id"]


def test_decisions_do_not_depend_on_how_the_selection_is_chunked(small_store: Store) -> None:
    flt = NearDedupFilter(NearDedupParams(ngram=2, threshold=0.5))
    features = small_store.sql("SELECT sample_id, origin, generation, version, input_row, text FROM samples")
    context = SelectionContext(small_store, "run")
    whole = flt.decide_all(features.combine_chunks(), context)
    chunked = flt.decide_all(pa.Table.from_batches(features.to_batches(max_chunksize=100)), context)
    assert whole.num_rows == 1125 and whole.equals(chunked)
    assert flt.decide_all(features.slice(0, 0), context).num_rows == 0


def cache_parts(store: Store) -> list[pa.Table]:
    return [pq.read_table(p) for p in sorted((store.root / "data/features/minhash").glob("*/part-*.parquet"))]


def test_a_second_run_hashes_only_the_new_samples(store: Store) -> None:
    store.ingest(REAL_ROWS[:400], origin="real", source="first")
    store.run_filter("near-dedup")
    store.ingest([*REAL_ROWS[400:], {"id": "twin", "text": REAL[0] + " indeed"}], origin="real", source="second")
    second = store.run_filter("near-dedup")
    parts = cache_parts(store)
    new_ids = store.sql("SELECT sample_id FROM samples WHERE source = 'second'")["sample_id"]
    assert [p.num_rows for p in parts] == [400, 201]
    assert sorted(parts[1]["sample_id"].to_pylist()) == sorted(new_ids.to_pylist())
    # The cached and the new signatures are matched together: the new sample finds its cached near twin.
    twin = decisions(store)["twin"]
    assert (twin["decision"], twin["related"]) == ("drop", REAL_IDS[0])
    assert second.dropped >= 1
    texts = store.sql("SELECT sample_id, text FROM samples")
    cached = pa.concat_tables(parts)
    order = pc.index_in(cached["sample_id"], value_set=texts["sample_id"])
    fresh = minhash.signatures(texts["text"].take(order))
    stored = np.frombuffer(b"".join(cached["minhash"].to_pylist()), "<u4").reshape(len(fresh), -1)
    assert (stored == fresh).all()


def test_the_cache_records_the_hashing_scheme(small_store: Store) -> None:
    small_store.run_filter("near-dedup", params={"num_perm": "64", "seed": "7"})
    (config_path,) = (small_store.root / "data/features/minhash").glob("*/config.json")
    config = json.loads(config_path.read_text())
    assert (config["num_perm"], config["seed"], config["ngram"]) == (64, 7, 5)
    for key in ("tokeniser", "token_hash", "shingle_hash", "permutation", "permutation_params", "prime"):
        assert key in config
    small_store.run_filter("near-dedup", params={"num_perm": "64", "seed": "8"})
    assert len(list((small_store.root / "data/features/minhash").glob("*/config.json"))) == 2


def reference_shingle_hashes(text: str, ngram: int) -> list[int]:
    """The documented scheme, one document at a time in plain Python."""

    def token_hash(token: str) -> int:
        raw = token.encode()
        h = len(raw)
        for i in range(0, len(raw), 8):
            h = ((h ^ int.from_bytes(raw[i : i + 8], "little")) * 0x100000001B3) & M64
        return fmix64(h)

    def fmix64(h: int) -> int:
        h = ((h ^ (h >> 33)) * 0xFF51AFD7ED558CCD) & M64
        h = ((h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53) & M64
        return h ^ (h >> 33)

    tokens = [token_hash(t) for t in re.findall(r"\w+", pc.utf8_lower(pa.array([text]))[0].as_py())]
    out = []
    for i in range(max(len(tokens) - ngram + 1, 1) if tokens else 0):
        h = 0
        for t in tokens[i : i + ngram]:
            h = (h * 0x100000001B3 + t) & M64
        out.append(fmix64(h) >> 32)
    return out


TRICKY = [
    "Hello, World! foo_bar 42",
    "",
    "  ?!  ",
    "one two",
    "Ünïcödé STRASSE—dash naïve café’s x\u00a0y 東京 タワー ２０２４",
    "the quick brown fox jumps over the lazy dog while the cat sleeps",
    "supercalifragilisticexpialidocious antidisestablishmentarianism 12345678 1234567 123456789",
]


def test_shingle_hashes_follow_the_documented_scheme() -> None:
    for ngram in (1, 3, 5):
        got = [h.tolist() for h in minhash.shingle_hashes([*TRICKY, None], ngram=ngram)]
        assert got == [reference_shingle_hashes(t, ngram) for t in TRICKY] + [[]]


def test_signatures_equal_datasketch_given_the_same_shingle_hashes() -> None:
    sigs = minhash.signatures(TRICKY + REAL[:20], num_perm=64, seed=3)
    for row, hashes in zip(sigs, minhash.shingle_hashes(TRICKY + REAL[:20]), strict=True):
        reference = MinHash(num_perm=64, seed=3, hashfunc=lambda h: h)
        reference.update_batch(hashes.tolist())
        assert (row == reference.hashvalues).all()


def test_a_document_longer_than_a_block_is_signed_in_bounded_memory() -> None:
    """Documents of more shingles than a permutation block (one of 50 MB has 8.5 million), between short and empty
    ones: the signatures datasketch gives, with memory of a few blocks, not one of num_perm x the document's
    shingles (a 300,000-shingle document once took a 150 MB block; 50 MB, a 4.3 GB one)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(500)]
    long_texts = [" ".join(rng.choice(words, n)) for n in (300_000, minhash.BLOCK_SHINGLES + 4)]
    texts = [REAL[0], long_texts[0], "", REAL[1], long_texts[1], None, *REAL[2:6]]
    tracemalloc.start()
    try:
        sigs = minhash.signatures(texts, num_perm=128, seed=2, threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"  # the document's text and hashes; a single block was 150 MB
    for row, hashes in zip(sigs, minhash.shingle_hashes(texts), strict=True):
        reference = MinHash(num_perm=128, seed=2, hashfunc=lambda h: h)
        reference.update_batch(hashes.tolist())
        assert (row == (reference.hashvalues if len(hashes) else minhash.EMPTY)).all()


def test_jaccard_estimates_agree_with_datasketch_defaults() -> None:
    base = " ".join(REAL[:8]).split()
    texts = [" ".join(base[:-k] + ["changed"] * k) if k else " ".join(base) for k in (0, 5, 15, 30, 60)]
    ours = minhash.signatures(texts)
    theirs = []
    for text in texts:
        m = MinHash(num_perm=128, seed=1)  # sha1 over the shingle strings: an independent hash
        words = re.findall(r"\w+", text.lower())
        m.update_batch([" ".join(words[i : i + 5]).encode() for i in range(len(words) - 4)])
        theirs.append(m)
    for i, j in combinations(range(len(texts)), 2):
        ours_ij = minhash.jaccard(ours[i : i + 1], ours[j : j + 1])[0]
        assert abs(ours_ij - theirs[i].jaccard(theirs[j])) <= 0.15, (i, j)
        assert abs(ours_ij - true_jaccard(texts[i], texts[j])) <= 0.12, (i, j)


def true_jaccard(a: str, b: str, ngram: int = 5) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i : i + ngram]) for i in range(max(len(w) - ngram + 1, 1))}

    sa, sb = grams(a), grams(b)
    return len(sa & sb) / len(sa | sb)


def brute_force(sig_a: np.ndarray, sig_b: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    similar = (sig_a[:, None, :] == sig_b[None, :, :]).mean(axis=2) >= threshold
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(similar), strict=True)}


def test_lsh_pairs_are_verified_and_find_what_brute_force_finds() -> None:
    texts = [" ".join(REAL[i : i + 3]) for i in range(0, 300, 3)]
    texts += [t.rsplit(" ", k)[0] for k, t in enumerate(texts[:40], start=1)]  # graded truncations
    texts += [*texts[:5], "", "!!"]
    sigs = minhash.signatures(texts)
    pairs = minhash.lsh_pairs(sigs, threshold=0.8)
    assert all(i < j for i, j in pairs)
    assert (minhash.jaccard(sigs[pairs[:, 0]], sigs[pairs[:, 1]]) >= 0.8).all()
    truth = {(i, j) for i, j in brute_force(sigs, sigs, 0.8) if i < j and texts[i].strip("!")}
    labels = minhash.clusters(len(sigs), pairs)
    together = {(i, j) for i, j in combinations(range(len(texts)), 2) if labels[i] == labels[j]}
    assert len(truth - together) <= 0.05 * len(truth)
    assert labels[-1] != labels[-2]  # texts without words match nothing, not even each other


@pytest.mark.parametrize(("n", "edges"), [(0, 0), (1, 0), (7, 0), (50, 30), (2_000, 1_500), (20_000, 20_000)])
def test_clusters_are_scipys_connected_components(n: int, edges: int) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.random.default_rng(n).integers(0, max(n, 1), (edges, 2))
    graph = coo_matrix((np.ones(edges, np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    assert minhash.clusters(n, pairs).tolist() == connected_components(graph, directed=False)[1].tolist()
    path = np.stack([np.arange(n - 1, 0, -1), np.arange(n - 2, -1, -1)], axis=1)  # one long chain, from its end
    assert set(minhash.clusters(n, path).tolist()) <= {0}


def near_duplicate_texts() -> list[str]:
    """Passages, graded truncations of some, exact copies and texts without words."""
    texts = [" ".join(REAL[i : i + 3]) for i in range(0, 300, 3)]
    texts += [t.rsplit(" ", k)[0] for k, t in enumerate(texts[:40], start=1)]
    return [*texts, *texts[:5], "", "!!", None]


def test_candidates_verified_exactly_are_the_pairs_at_the_threshold() -> None:
    texts = near_duplicate_texts()
    n, sigs = len(texts), minhash.signatures(texts)
    candidates = minhash.candidate_pairs(sigs, threshold=0.8)
    codes = candidates[:, 0] * n + candidates[:, 1]
    assert (candidates[:, 0] < candidates[:, 1]).all() and (np.diff(codes) > 0).all()  # i < j, ascending
    assert not set(candidates.ravel().tolist()) & {n - 3, n - 2, n - 1}  # no words, no pairs
    pairs, similarity = minhash.verify_exact(candidates, texts, threshold=0.8)
    assert similarity.tolist() == [shingle_jaccard(texts[i], texts[j]) for i, j in pairs.tolist()]
    assert (similarity >= 0.8).all()
    truth = [(i, j) for i, j in combinations(range(n - 3), 2) if shingle_jaccard(texts[i], texts[j]) >= 0.8]
    found, expected = minhash.clusters(n, pairs), minhash.clusters(n, np.array(truth))
    assert all((found[i] == found[j]) == (expected[i] == expected[j]) for i, j in combinations(range(n), 2))


def test_verify_exact_is_the_jaccard_of_the_shingle_hash_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*TRICKY, None, *(" ".join(REAL[i : i + 2]) for i in range(0, 20, 2))]
    texts += [t.rsplit(" ", 2)[0] for t in texts[-6:]]
    n = len(texts)
    pairs = np.array([(i, j) for i in range(n) for j in range(n)])  # both orders, and each text with itself
    sets = [set(h.tolist()) for h in minhash.shingle_hashes(texts, ngram=3)]
    expected = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] | sets[j] else 0.0 for i, j in pairs]
    monkeypatch.setattr(minhash, "VERIFY_SHINGLES", 7)  # many blocks
    got_pairs, got = minhash.verify_exact(pairs, texts, ngram=3, threshold=0.0)
    assert got_pairs.tolist() == pairs.tolist() and got.tolist() == expected
    kept, similarity = minhash.verify_exact(pairs, texts, ngram=3, threshold=0.5)
    assert kept.tolist() == [p for p, s in zip(pairs.tolist(), expected, strict=True) if s >= 0.5]
    assert similarity.tolist() == [s for s in expected if s >= 0.5]
    # Two sets of texts: row i of the first against row j of the second.
    _, across = minhash.verify_exact(pairs, texts, texts[::-1], ngram=3, threshold=0.0)
    assert across.tolist() == [expected[i * n + (n - 1 - j)] for i, j in pairs.tolist()]
    assert minhash.verify_exact(np.zeros((0, 2), np.int64), texts, threshold=0.8)[0].shape == (0, 2)


def test_signatures_do_not_depend_on_passes_threads_or_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [*TRICKY, None, *REAL[:40], "東京 タワー", "abc"]
    whole = minhash.signatures(texts, num_perm=32, threads=1)
    monkeypatch.setattr(minhash, "DOCS_PER_PASS", 3)
    chunked = pa.chunked_array([pa.array(texts[:5], pa.string()), pa.array(texts[5:], pa.string())])
    for threads in (1, 3):
        assert (minhash.signatures(chunked, num_perm=32, threads=threads) == whole).all()
    assert (minhash.signatures(chunked.slice(4), num_perm=32) == whole[4:]).all()


def test_match_pairs_two_sets() -> None:
    held_out = [" ".join(REAL[i : i + 4]) for i in range(0, 200, 4)]
    train = [" ".join(REAL[i : i + 4]) for i in range(200, 400, 4)] + [held_out[3] + " extra", held_out[7], ""]
    a, b = minhash.signatures(train), minhash.signatures(held_out)
    got = {(int(i), int(j)) for i, j in minhash.match(a, b, threshold=0.8)}
    assert got == brute_force(a, b, 0.8) - {(52, j) for j in range(len(held_out))}
    assert {(50, 3), (51, 7)} <= got


def test_short_documents_are_one_shingle_and_empty_ones_are_empty() -> None:
    sigs = minhash.signatures(["a b", "A, B!", "b a", "", None, "..."], ngram=5, num_perm=32)
    assert (sigs[0] == sigs[1]).all() and not (sigs[0] == sigs[2]).all()
    assert (sigs[3:] == minhash.EMPTY).all()
    assert minhash.signatures([], num_perm=8).shape == (0, 8)
    # Fewer tokens in all than ngram - 1: each document is still one shingle.
    assert [h.tolist() for h in minhash.shingle_hashes(["a", "b"])] == [reference_shingle_hashes(t, 5) for t in "ab"]


def test_bands_come_from_datasketch_weighted_against_misses() -> None:
    assert minhash.bands(0.8, 128) == _optimal_param(0.8, 128, 0.01, 0.99) == (18, 7)
    candidates = minhash._optimal_bands(0.8, 128, minhash.CANDIDATE_WEIGHTS)
    assert candidates == _optimal_param(0.8, 128, 0.001, 0.999) == (21, 6)
    assert minhash.bands(0.99, 128)[0] >= 1  # datasketch's own MinHashLSH refuses this one (b < 2)


@pytest.mark.parametrize("num_perm", [32, 64, 128])
def test_band_choice_computed_locally_is_datasketchs(num_perm: int) -> None:
    """No datasketch (and its scipy) at run time: the local search picks what `_optimal_param` picks, for the
    weights lineage uses (and datasketch's own), over thresholds near-dedup and contamination take."""
    for threshold in (0.5, 0.7, 0.8, 0.85, 0.9, 0.95):
        for weights in (minhash.LSH_WEIGHTS, minhash.CANDIDATE_WEIGHTS, *([(0.5, 0.5)] if num_perm == 64 else [])):
            assert minhash._optimal_bands(threshold, num_perm, weights) == _optimal_param(threshold, num_perm, *weights)


def test_gauss_legendre_integrates_polynomials_exactly() -> None:
    nodes, weights = minhash._gauss_legendre(65)
    assert weights.sum() == pytest.approx(2.0, abs=1e-13)
    for degree in (0, 2, 64, 128):  # exact up to degree 2n - 1 = 129: ∫ x^d over [-1, 1] = 2 / (d + 1), d even
        assert (nodes**degree) @ weights == pytest.approx(2 / (degree + 1), rel=1e-12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": "2"}, "param `threshold` of filter near-dedup: Input should be less than or equal to 1"),
        ({"ngram": "0"}, "param `ngram` of filter near-dedup: Input should be greater than or equal to 1"),
        ({"bands": "3"}, "unknown param `bands` for filter near-dedup; allowed: ngram, num_perm, threshold, seed"),
    ],
)
def test_bad_params_are_one_line(store: Store, params: dict, message: str) -> None:
    with pytest.raises(LineageError, match=message):
        store.run_filter("near-dedup", params=params)


def test_bad_threshold_on_the_cli(store: Store) -> None:
    result = Runner(store.root)("filter", "run", "near-dedup", "--param", "threshold=2", code=1)
    assert result.stderr == (
        "Error: param `threshold` of filter near-dedup: Input should be less than or equal to 1, got '2'\n"
    )


def test_why_was_it_dropped_is_one_query(small_store: Store) -> None:
    small_store.run_filter("near-dedup", params=SHORT_TEXT)
    target = PLANTED["near_dup_of_parent"][0]
    why = small_store.sql(
        "SELECT e.filter, e.reason, e.score, k.external_id AS kept, k.text AS kept_text FROM status e "
        "JOIN samples s USING (sample_id) LEFT JOIN samples k ON k.sample_id = e.related_id "
        "WHERE s.external_id = ? AND e.decision = 'drop'",
        params=[target],
    ).to_pylist()
    assert len(why) == 1
    assert (why[0]["filter"], why[0]["reason"], why[0]["kept"]) == ("near-dedup", "near_duplicate", PARENT[target])
    assert why[0]["score"] == pytest.approx(0.75, abs=0.1)  # "...part of some larger system" vs "...things"
