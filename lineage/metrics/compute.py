"""Per-group computation: seeded equal-size subsamples, metric values per draw, mean and spread.

Diversity estimates depend on how many samples they see (more samples, more distinct n-grams in total
but a lower distinct-n; more rare words covered), so every group is measured on `sample_size` samples
drawn without replacement, `draws` times, and the metric is the mean over draws with the sample
standard deviation as spread. A group of at most `sample_size` samples is used whole, once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lineage.metrics import METRICS, NGRAM_ORDERS, embedding, text

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

# (sample_ids, texts) -> one embedding row per text.
Embedder = Callable[["pa.Array", "pa.Array"], np.ndarray]
Values = dict[str, float | None]


@dataclass(frozen=True)
class Params:
    sample_size: int = 1000
    draws: int = 5
    seed: int = 0
    bleu_samples: int = 200
    bleu_max_n: int = 4
    bleu_epsilon: float = 0.1
    tail_max_count: int = 2
    gzip_level: int = 9

    def config(self) -> dict[str, Any]:
        """Everything here that a value depends on, for the recorded config and its hash."""
        return {
            **asdict(self),
            "tokeniser": text.TOKENISER,
            "ngram_orders": list(NGRAM_ORDERS),
            "subsample": "numpy default_rng([seed, crc32(group key JSON)]), without replacement",
            "spread": "sample standard deviation (ddof=1) over draws",
            "self_bleu": "nltk sentence_bleu, uniform weights, SmoothingFunction().method1 (floor epsilon)",
            "tail": "reference words with count <= tail_max_count",
            "js_divergence": "word distributions, base 2 (bits)",
            "compression": "gzip of texts joined by newlines, mtime 0",
            "frechet_reference": "one draw of sample_size reference samples, seeded with key 'reference'",
        }


@dataclass
class Reference:
    """The real reference: word counts and rare words by token id, and a sample of its embeddings."""

    counts: np.ndarray
    rare: np.ndarray
    vectors: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return not self.counts.sum()

    @classmethod
    def none(cls) -> Reference:
        return cls(np.zeros(0, np.int64), np.zeros(0, bool))


@dataclass
class GroupResult:
    key: dict[str, Any]
    samples: int  # the group's size
    n_samples: int  # samples per draw
    draws: int
    values: dict[str, tuple[float | None, float | None, int]] = field(default_factory=dict)  # value, spread, n


def draw_indices(size: int, key: str, params: Params) -> list[np.ndarray]:
    """Row positions of each draw, in random order (self-BLEU takes a prefix); seeded by seed and group."""
    rng = np.random.default_rng([params.seed, zlib.crc32(key.encode("utf-8"))])
    if size <= params.sample_size:
        return [rng.permutation(size)]
    return [rng.choice(size, params.sample_size, replace=False) for _ in range(params.draws)]


def encoded(ids: pl.Series, idx: np.ndarray) -> text.Encoded:
    """Rows `idx` of an id-list column as encoded documents."""
    part = ids.gather(idx)
    flat = part.explode().drop_nulls().to_numpy().astype(np.int64)
    return text.Encoded(flat, part.list.len().to_numpy().astype(np.int64))


def reference_of(ids: pl.Series, vocab: int, params: Params) -> Reference:
    counts = np.bincount(encoded(ids, np.arange(len(ids))).ids, minlength=vocab)
    return Reference(counts, text.rare_mask(counts, max_count=params.tail_max_count))


def text_values(enc: text.Encoded, texts: list[str], names: Sequence[str], ref: Reference, p: Params) -> Values:
    """The text metrics in `names` for one draw."""
    out: Values = {}
    orders = [n for n in NGRAM_ORDERS if f"distinct_{n}" in names or f"entropy_{n}" in names]
    for n, (codes, _) in enumerate(text.ngram_codes(enc, max(orders, default=0)), start=1):
        if n in orders:
            counts = text.counts_of(codes)
            out[f"distinct_{n}"], out[f"entropy_{n}"] = text.distinct(counts), text.entropy(counts)
    if "compression_ratio" in names:
        out["compression_ratio"] = text.compression_ratio(texts, level=p.gzip_level)
    if "self_bleu" in names:
        out["self_bleu"] = text.self_bleu_encoded(enc.head(p.bleu_samples), max_n=p.bleu_max_n, epsilon=p.bleu_epsilon)
    if not ref.empty and "tail_coverage" in names:
        out["tail_coverage"] = text.coverage(enc, ref.rare)
    if not ref.empty and "js_divergence" in names:
        out["js_divergence"] = text.js_to_reference(enc, ref.counts)
    return {name: out.get(name) for name in names}


def embedding_values(vectors: np.ndarray, names: Sequence[str], ref: Reference) -> Values:
    """The embedding metrics in `names` for one draw."""
    out: Values = {}
    if "dispersion" in names:
        out["dispersion"] = embedding.dispersion(vectors)
    if "vendi_score" in names:
        out["vendi_score"] = embedding.vendi_score(vectors)
    if "frechet_distance" in names and ref.vectors is not None:
        out["frechet_distance"] = embedding.frechet_distance(vectors, ref.vectors)
    return {name: out.get(name) for name in names}


def aggregate(per_draw: list[Values], names: Sequence[str]) -> dict[str, tuple[float | None, float | None]]:
    """Mean and sample standard deviation over the draws where a metric is defined."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for name in names:
        found = [v[name] for v in per_draw if v.get(name) is not None]
        mean = float(np.mean(found)) if found else None
        out[name] = (mean, float(np.std(found, ddof=1)) if len(found) > 1 else None)
    return out


def compute_group(
    key: dict[str, Any],
    frame: pl.DataFrame,
    names: Sequence[str],
    ref: Reference,
    params: Params,
    embed: Embedder | None,
) -> GroupResult:
    """Subsampled metrics of one group; `frame` has sample_id, text and token ids, sorted by sample_id."""
    draws = draw_indices(frame.height, key_json(key), params)
    return compute_draws(key, frame.height, frame, draws, names, ref, params, embed)


def key_json(key: dict[str, Any]) -> str:
    """A group's key as canonical JSON: what seeds its draws, and how it is recorded."""
    import json

    return json.dumps(key, sort_keys=True, default=str)


def compute_draws(
    key: dict[str, Any],
    size: int,
    frame: pl.DataFrame,
    draws: list[np.ndarray],
    names: Sequence[str],
    ref: Reference,
    params: Params,
    embed: Embedder | None,
) -> GroupResult:
    """The metrics of a group of `size` samples from its `draws`, row positions in `frame` (which may hold
    just the drawn rows, in the group's sample_id order: the Ray engine's case)."""
    result = GroupResult(key, size, len(draws[0]), len(draws))
    text_names = [n for n in names if METRICS[n].needs == "text"]
    if text_names:
        per_draw = [_text_draw(frame, idx, text_names, ref, params) for idx in draws]
        _put(result, aggregate(per_draw, text_names), params)
    emb_names = [n for n in names if METRICS[n].needs == "embedding"]
    if emb_names and embed is not None:
        per_draw = [embedding_values(vectors, emb_names, ref) for vectors in _embedded_draws(frame, draws, embed)]
        _put(result, aggregate(per_draw, emb_names), params)
    return result


def _text_draw(frame: pl.DataFrame, idx: np.ndarray, names: Sequence[str], ref: Reference, params: Params) -> Values:
    texts = frame["text"].gather(idx).fill_null("").to_list() if "compression_ratio" in names else []
    return text_values(encoded(frame["ids"], idx), texts, names, ref, params)


def _embedded_draws(frame: pl.DataFrame, draws: list[np.ndarray], embed: Embedder) -> list[np.ndarray]:
    """Each draw's embeddings; the union of the draws is embedded once."""
    union = np.unique(np.concatenate(draws))
    vectors = embed_rows(frame, union, embed)
    return [vectors[np.searchsorted(union, idx)] for idx in draws]


def embed_rows(frame: pl.DataFrame, idx: np.ndarray, embed: Embedder) -> np.ndarray:
    import pyarrow as pa

    ids = frame["sample_id"].gather(idx).to_arrow().cast(pa.string())
    texts = frame["text"].gather(idx).fill_null("").to_arrow().cast(pa.string())
    return np.asarray(embed(ids, texts))


def _put(result: GroupResult, values: dict[str, tuple[float | None, float | None]], params: Params) -> None:
    for name, (value, spread) in values.items():
        n = min(result.n_samples, params.bleu_samples) if name == "self_bleu" else result.n_samples
        result.values[name] = (value, spread, n)
