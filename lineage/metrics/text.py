"""Diversity of texts: pure functions over lists of strings or token lists, with numpy kernels.

Tokens (`tokenize`): the text lowercased (Unicode), then maximal runs of word characters (`\\w`: Unicode
letters, marks, digits and connector punctuation such as `_`), as polars' regex engine matches them;
punctuation and whitespace are dropped. "Don't stop" gives `don`, `t`, `stop`. N-grams never cross
documents. A value that is undefined on its input (no n-grams, fewer than two documents) is None.

The functions over token lists encode them as integer ids (`encode`) and call the kernels over `Encoded`
documents, which `lineage.diversity` calls directly with ids shared by a whole selection: n-grams get
dense integer codes by repeated `np.unique`, so counting them is sorting, not a Python loop.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

TOKEN_PATTERN = r"\w+"
TOKENISER = "polars: str.to_lowercase(), then str.extract_all(r'\\w+') (Unicode word characters)"
Docs = Sequence[Sequence[str]]


def token_expr(column: str = "text") -> pl.Expr:
    """The tokeniser as a polars expression, to tokenise a whole column at once."""
    import polars as pl

    return pl.col(column).fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)


def tokenize(texts: Iterable[str | None]) -> list[list[str]]:
    """Each text's lowercased word tokens (see the module doc); a null text has none."""
    import polars as pl

    frame = pl.DataFrame({"text": list(texts)}, schema={"text": pl.String})
    return frame.select(token_expr("text"))["text"].to_list()


# -- encoded documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """Documents as integer token ids: all tokens concatenated, and each document's length."""

    ids: np.ndarray  # int64
    lengths: np.ndarray  # int64

    @property
    def doc(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def head(self, k: int) -> Encoded:
        return Encoded(self.ids[: int(self.lengths[:k].sum())], self.lengths[:k])


def encode(*doc_lists: Docs) -> list[Encoded]:
    """Token lists as ids, one vocabulary shared by all the lists given."""
    index: dict[str, int] = {}
    out = []
    for docs in doc_lists:
        ids = np.fromiter((index.setdefault(w, len(index)) for w in chain.from_iterable(docs)), np.int64)
        out.append(Encoded(ids, np.fromiter((len(d) for d in docs), np.int64, len(docs))))
    return out


def encode_columns(*columns: pl.Series) -> tuple[list[pl.Series], int]:
    """Token-list columns as id-list columns (UInt32), one vocabulary shared by all; and its size."""
    import polars as pl

    # Sorted, so ids (and the float sums over counts in id order) do not depend on polars' threads, and the
    # Ray engine's ids, from a subset of the words, keep the local ones' order: the same values
    # (see lineage.engines.ray.metrics).
    words = pl.concat([c.explode() for c in columns]).drop_nulls().unique().sort()
    ids = pl.int_range(0, len(words), dtype=pl.UInt32, eager=True)
    lookup = pl.element().replace_strict(words, ids, return_dtype=pl.UInt32)
    return [c.list.eval(lookup) for c in columns], len(words)


def ngram_codes(enc: Encoded, max_n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For n = 1..max_n: a dense code per n-gram occurrence (equal codes: equal n-grams) and its document.

    An n-gram's code is the rank of (its (n-1)-gram prefix's code, its last token) among all such pairs;
    prefix codes are below the number of tokens, so `code * vocabulary + token` fits in int64.
    """
    doc, vocab = enc.doc, int(enc.ids.max()) + 1 if len(enc.ids) else 1
    starts, codes = np.arange(len(enc.ids)), enc.ids
    yield codes, doc
    for k in range(1, max_n):
        keep = starts + k < len(enc.ids)
        keep[keep] = doc[starts[keep] + k] == doc[starts[keep]]
        starts = starts[keep]
        codes = np.unique(codes[keep] * vocab + enc.ids[starts + k], return_inverse=True)[1].reshape(-1)
        yield codes, doc[starts]


def _order(enc: Encoded, n: int) -> np.ndarray:
    """The n-gram codes alone."""
    return list(ngram_codes(enc, n))[-1][0]


def counts_of(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, return_counts=True)[1]


# -- distinct-n, entropy, compression --------------------------------------------------------------


def distinct(counts: np.ndarray) -> float | None:
    """Distinct-n from n-gram counts: distinct n-grams / all n-grams."""
    total = int(counts.sum())
    return len(counts) / total if total else None


def distinct_n(docs: Docs, n: int) -> float | None:
    """distinct-n (Li et al. 2016) = |{distinct n-grams}| / |n-grams|, over all documents together.

    Example: distinct-1 of [["a", "a", "b"]] = 2 / 3.
    """
    return distinct(counts_of(_order(encode(docs)[0], n)))


def entropy(counts: np.ndarray) -> float | None:
    """Shannon entropy in bits of the distribution the counts give: H = -sum p log2 p."""
    if not len(counts):
        return None
    from scipy.stats import entropy as shannon

    return float(shannon(counts, base=2))


def ngram_entropy(docs: Docs, n: int) -> float | None:
    """Entropy (bits) of the n-gram frequency distribution over all documents together."""
    return entropy(counts_of(_order(encode(docs)[0], n)))


def compression_ratio(texts: Sequence[str], *, level: int = 9) -> float | None:
    """gzip compression ratio = bytes of the texts joined by newlines / bytes of their gzip.

    Higher means more repetitive (Shaib et al. 2024, whose `diversity` package also uses gzip level 9).
    The raw texts are compressed, not tokens; mtime is fixed at 0 so the value is reproducible.
    """
    data = "\n".join(texts).encode("utf-8")
    if not data:
        return None
    return len(data) / len(gzip.compress(data, compresslevel=level, mtime=0))


# -- against the reference -------------------------------------------------------------------------


def js_divergence_counts(p: np.ndarray, q: np.ndarray, *, base: float = 2.0) -> float | None:
    """Jensen-Shannon divergence of two aligned count vectors; base 2: 0 for identical, 1 for disjoint.

    JS(P, Q) = H(M) - (H(P) + H(Q)) / 2 with M = (P + Q) / 2; scipy gives its square root (a distance).
    """
    if not p.sum() or not q.sum():
        return None
    from scipy.spatial.distance import jensenshannon

    return max(float(jensenshannon(p, q, base=base)) ** 2, 0.0)


def js_divergence(p: Mapping[str, int], q: Mapping[str, int], *, base: float = 2.0) -> float | None:
    """JS divergence of two word-count mappings (see `js_divergence_counts`).

    The vocabulary is sorted: a set's order follows the process's string hashing, and summing in a different
    order moves the last bit, so the same data would print different figures from run to run."""
    vocab = sorted(p.keys() | q.keys())
    pv = np.fromiter((p.get(w, 0) for w in vocab), np.float64, len(vocab))
    qv = np.fromiter((q.get(w, 0) for w in vocab), np.float64, len(vocab))
    return js_divergence_counts(pv, qv, base=base)


def js_to_reference(enc: Encoded, reference_counts: np.ndarray) -> float | None:
    """JS divergence (bits) of the documents' word distribution to the reference's, counts by token id.

    Words only the reference has are summed into one entry: with P = 0 each adds q/2 * log 2 to JS,
    linear in q, so the sum is exact and the vectors stay as small as the documents' vocabulary.
    """
    words, p = np.unique(enc.ids, return_counts=True)
    q = reference_counts[words].astype(np.float64)
    rest = float(reference_counts.sum()) - float(q.sum())
    return js_divergence_counts(np.append(p.astype(np.float64), 0.0), np.append(q, rest))


def unigram_js_divergence(docs: Docs, reference: Docs) -> float | None:
    """JS divergence (bits) between the word distributions of two sets of documents."""
    enc, ref = encode(docs, reference)
    vocab = int(max(enc.ids.max(initial=-1), ref.ids.max(initial=-1))) + 1
    return js_to_reference(enc, np.bincount(ref.ids, minlength=vocab))


def rare_mask(reference_counts: np.ndarray, *, max_count: int = 2) -> np.ndarray:
    """The reference's tail by token id: words occurring 1..max_count times (2: hapax and dis legomena)."""
    return (reference_counts > 0) & (reference_counts <= max_count)


def coverage(enc: Encoded, rare: np.ndarray) -> float | None:
    """Share of the rare words (a mask by token id) that occur at least once in the documents."""
    total = int(rare.sum())
    return int(rare[np.unique(enc.ids)].sum()) / total if total else None


def tail_coverage(docs: Docs, reference: Docs, *, max_count: int = 2) -> float | None:
    """Share of the words occurring at most `max_count` times in the reference that the documents contain."""
    enc, ref = encode(docs, reference)
    vocab = int(max(enc.ids.max(initial=-1), ref.ids.max(initial=-1))) + 1
    return coverage(enc, rare_mask(np.bincount(ref.ids, minlength=vocab), max_count=max_count))


# -- self-BLEU -------------------------------------------------------------------------------------


def self_bleu(docs: Docs, *, max_n: int = 4, epsilon: float = 0.1) -> float | None:
    """Mean BLEU-`max_n` of each document against all the others as references (Zhu et al. 2018).

    BLEU_i = BP_i * exp(sum_n log(p_n) / max_n), uniform weights, as NLTK's `sentence_bleu` with
    `SmoothingFunction().method1`: p_n = clipped matches / max(1, hypothesis n-grams), where an n-gram's
    matches are clipped to its largest count in any single reference, and a zero match count becomes
    `epsilon`; BLEU_i = 0 if no unigram matches. BP_i = exp(1 - r/c) when the hypothesis length c is at
    most the closest reference length r (ties: the shorter), else 1. Higher means more alike.
    """
    return self_bleu_encoded(encode(docs)[0], max_n=max_n, epsilon=epsilon)


def self_bleu_encoded(enc: Encoded, *, max_n: int = 4, epsilon: float = 0.1) -> float | None:
    n_docs = len(enc.lengths)
    if n_docs < 2:
        return None
    stats = [_clipped_matches(codes, doc, n_docs) for codes, doc in ngram_codes(enc, max_n)]
    matched = np.stack([m for m, _ in stats], axis=1)
    total = np.stack([t for _, t in stats], axis=1)
    precisions = np.where(matched > 0, matched, epsilon) / np.maximum(total, 1)
    bleu = _brevity(enc.lengths) * np.exp(np.log(precisions).mean(axis=1))
    return float(np.where(matched[:, 0] > 0, bleu, 0.0).mean())


def _clipped_matches(codes: np.ndarray, doc: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: n-grams matched in the others (clipped to the best single one), and its n-grams."""
    pairs, count = np.unique(codes * n_docs + doc, return_counts=True)
    gram, owner = pairs // n_docs, pairs % n_docs
    order = np.lexsort((-count, gram))  # by n-gram, then largest count first
    gram, owner, count = gram[order], owner[order], count[order]
    first = np.ones(len(gram), bool)
    first[1:] = gram[1:] != gram[:-1]
    group = np.cumsum(first) - 1
    heads = np.flatnonzero(first)
    top = count[heads]
    nxt = np.minimum(heads + 1, len(gram) - 1)
    runner_up = np.where((heads + 1 < len(gram)) & (gram[nxt] == gram[heads]), count[nxt], 0)
    # The document holding the largest count is matched against the runner-up, every other one against it.
    best_other = np.where(first, runner_up[group], top[group])
    clipped = np.minimum(count, best_other)
    return (
        np.bincount(owner, weights=clipped, minlength=n_docs),
        np.bincount(owner, weights=count, minlength=n_docs).astype(np.float64),
    )


def _brevity(lengths: np.ndarray) -> np.ndarray:
    """NLTK's brevity penalty against the closest other length (ties go to the shorter one)."""
    diff = np.abs(lengths[None, :] - lengths[:, None]).astype(np.float64)
    np.fill_diagonal(diff, math.inf)
    # Order by (distance, length): the closest reference, and among equally close ones the shortest.
    closest = np.argmin(diff * (lengths.max() + 1) + lengths[None, :], axis=1)
    ref, hyp = lengths[closest].astype(np.float64), lengths.astype(np.float64)
    with np.errstate(divide="ignore"):
        penalty = np.where(hyp > ref, 1.0, np.exp(1 - ref / np.maximum(hyp, 1e-300)))
    return np.where(hyp == 0, 0.0, penalty)
