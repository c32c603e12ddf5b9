"""Each diversity metric against values computed by hand on tiny inputs, and the metric registry."""

from __future__ import annotations

import gzip
import math
from collections import Counter

import numpy as np
import pytest

from lineage.errors import LineageError
from lineage.metrics import METRICS, SETS, resolve
from lineage.metrics import embedding as emb
from lineage.metrics import text as tx

# -- tokens and n-grams ----------------------------------------------------------------------------


def test_tokenize_lowercases_words_and_drops_punctuation() -> None:
    assert tx.tokenize(["Don't STOP_it, Ünïcode 3.5!", None, ""]) == [
        ["don", "t", "stop_it", "ünïcode", "3", "5"],
        [],
        [],
    ]


def test_distinct_n() -> None:
    assert tx.distinct_n([["a", "a", "b"]], 1) == pytest.approx(2 / 3)
    assert tx.distinct_n([["a", "a", "b"]], 2) == 1.0
    assert tx.distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5  # corpus level: both documents together
    assert tx.distinct_n([["a"], ["b"]], 2) is None  # n-grams never cross documents
    assert tx.distinct_n([], 1) is None


def test_ngram_entropy_in_bits() -> None:
    assert tx.ngram_entropy([["a", "a"]], 1) == 0.0
    assert tx.ngram_entropy([["a", "b"], ["b", "a"]], 1) == pytest.approx(1.0)
    assert tx.ngram_entropy([["a", "b", "c", "d"]], 1) == pytest.approx(2.0)
    # bigrams (a,b) twice and (b,c) once: -(2/3 log2 2/3 + 1/3 log2 1/3)
    expected = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert tx.ngram_entropy([["a", "b", "c"], ["a", "b"]], 2) == pytest.approx(expected)
    assert tx.ngram_entropy([["a"]], 2) is None


def test_compression_ratio() -> None:
    texts = ["the cat sat"] * 50
    data = "\n".join(texts).encode()
    assert tx.compression_ratio(texts) == len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))
    varied = [f"{i} {i * 7919 % 1000} {i**2}" for i in range(50)]
    assert tx.compression_ratio(texts) > 5 * tx.compression_ratio(varied)  # repetitive compresses better
    assert tx.compression_ratio([]) is None and tx.compression_ratio([""]) is None


def test_js_divergence_in_bits() -> None:
    assert tx.js_divergence({"a": 2, "b": 1}, {"a": 4, "b": 2}) == pytest.approx(0.0, abs=1e-12)
    assert tx.js_divergence({"a": 3}, {"b": 1}) == pytest.approx(1.0)  # disjoint: 1 bit (ln 2 in nats)
    # P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4): H(M) - (H(P) + H(Q)) / 2
    h_m = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert tx.js_divergence({"a": 1}, {"a": 1, "b": 1}) == pytest.approx(h_m - 0.5)
    assert tx.unigram_js_divergence([["a", "b"]], [["b"], ["a"]]) == pytest.approx(0.0, abs=1e-12)
    assert tx.js_divergence({}, {"a": 1}) is None


def test_js_divergence_does_not_depend_on_word_order() -> None:
    """Reports print the same figure for the same data: word counts arrive in whatever order polars and the
    process's string hash give, and summing in another order moved the last bit (a CI run saw ...739 vs ...738)."""
    import random

    r = random.Random(7)
    words = [f"w{i}" for i in range(20_000)]
    p = {w: int(r.paretovariate(0.7)) for w in words}
    q = {w: int(r.paretovariate(0.9)) for w in words[::2]}
    values = set()
    for seed in range(10):
        order = words[:]
        random.Random(seed).shuffle(order)
        values.add(tx.js_divergence({w: p[w] for w in order}, {w: q[w] for w in order if w in q}))
    assert len(values) == 1, values


def test_tail_coverage() -> None:
    # reference counts: a 3, b 1, c 2, d 5 -> rare (at most twice): b, c
    reference = [["a", "b", "c"], ["a", "d", "c"], ["a", "d", "d", "d", "d"]]
    assert tx.tail_coverage([["b", "x"], ["a"]], reference) == 0.5
    assert tx.tail_coverage([["c", "b"]], reference) == 1.0
    assert tx.tail_coverage([["c"]], reference) == 0.5
    assert tx.tail_coverage([["c"]], reference, max_count=1) == 0.0  # hapax only: b
    assert tx.tail_coverage([["a"]], [["a", "a", "a"]]) is None  # no rare word


# -- self-BLEU -------------------------------------------------------------------------------------


def test_self_bleu_hand_computed() -> None:
    # Each against the other: p1..p4 = 3/4, 2/3, 1/2, 0 -> floor 0.1/1; equal lengths, no brevity penalty.
    assert tx.self_bleu([["a", "b", "c", "d"], ["a", "b", "c", "e"]]) == pytest.approx(
        (0.75 * 2 / 3 * 0.5 * 0.1) ** 0.25
    )
    # The shorter one is penalised exp(1 - 6/4); the longer one has precisions 4/6, 3/5, 2/4, 1/3.
    short, long_ = ["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"]
    expected = (math.exp(1 - 6 / 4) + (4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25) / 2
    assert tx.self_bleu([short, long_]) == pytest.approx(expected)


def test_self_bleu_extremes() -> None:
    assert tx.self_bleu([["a", "b", "c", "d"]] * 3) == pytest.approx(1.0)
    assert tx.self_bleu([["a", "b"], ["c", "d"]]) == 0.0  # no unigram in common
    assert tx.self_bleu([["a", "b", "c"]]) is None


def _nltk_sentence_bleu(hyp: list[str], refs: list[list[str]], eps: float = 0.1) -> float:
    """NLTK's sentence_bleu with SmoothingFunction().method1, written out naively as a test oracle."""
    if not hyp:
        return 0.0
    logs, matched_unigrams = [], 0
    for n in range(1, 5):
        counts = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        best = Counter()
        for ref in refs:
            best |= Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matched = sum(min(c, best[g]) for g, c in counts.items())
        matched_unigrams = matched if n == 1 else matched_unigrams
        logs.append(math.log((matched or eps) / max(1, sum(counts.values()))))
    if matched_unigrams == 0:
        return 0.0
    closest = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
    penalty = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return penalty * math.exp(sum(logs) / 4)


def test_self_bleu_matches_the_nltk_definition_on_random_documents() -> None:
    rng = np.random.default_rng(3)
    vocab = list("abcdefgh")
    docs = [[vocab[i] for i in rng.integers(0, 8, rng.integers(0, 12))] for _ in range(40)]
    expected = np.mean([_nltk_sentence_bleu(d, docs[:i] + docs[i + 1 :]) for i, d in enumerate(docs)])
    assert tx.self_bleu(docs) == pytest.approx(expected)


# -- embeddings ------------------------------------------------------------------------------------


def test_dispersion() -> None:
    assert emb.dispersion(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)
    assert emb.dispersion(np.eye(3)) == pytest.approx(1.0)
    # cos = 0.6 between the two: distance 0.4, whatever their lengths
    assert emb.dispersion(np.array([[3.0, 4.0], [10.0, 0.0]])) == pytest.approx(0.4)
    assert emb.dispersion(np.ones((1, 3))) is None


def test_vendi_score() -> None:
    assert emb.vendi_score(np.tile([1.0, 2.0, 3.0], (5, 1))) == pytest.approx(1.0)  # n identical
    assert emb.vendi_score(np.eye(4)) == pytest.approx(4.0)  # n orthogonal, n x n kernel
    assert emb.vendi_score(np.eye(3, 8)) == pytest.approx(3.0)
    # n = 6 > d = 2, so the d x d kernel: two equally common directions are two distinct items
    assert emb.vendi_score(np.repeat(np.eye(2), 3, axis=0)) == pytest.approx(2.0)


def test_frechet_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 5))
    assert emb.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, 2.0, 0.0, 0.0, 2.0])
    assert emb.frechet_distance(a, a + shift) == pytest.approx(9.0)  # same covariance: |shift|^2
    assert emb.frechet_distance(a[:1], a) is None


def test_frechet_distance_agrees_with_scipy_sqrtm() -> None:
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(250, 6)) @ rng.normal(size=(6, 6)) + 0.5
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(sa + sb - 2 * sqrtm(sa @ sb).real)
    assert emb.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


# -- registry --------------------------------------------------------------------------------------


def test_resolve_sets_and_names() -> None:
    assert resolve(None) == list(SETS["default"])
    assert "near_dup_rate" in resolve(None) and not set(resolve(None)) & set(SETS["embedding"])
    assert resolve("all") == list(METRICS)
    assert resolve("self-bleu, distinct") == ["distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu"]
    assert resolve(["vendi_score", "js_divergence"]) == ["js_divergence", "vendi_score"]  # registry order


def test_resolve_unknown_lists_the_allowed() -> None:
    with pytest.raises(LineageError, match=r"unknown metric `bleu`; choose from default, text, .*frechet_distance"):
        resolve("distinct,bleu")
    with pytest.raises(LineageError, match="no metric given"):
        resolve(" , ")
