"""Diversity metrics: the registry of names, what each needs, and the named sets `--metrics` accepts.

The formulas are in `lineage.metrics.text` and `lineage.metrics.embedding`; `lineage.diversity` computes
them per group of samples and records them in the `metrics` table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lineage.errors import LineageError, UsageError

NGRAM_ORDERS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Metric:
    name: str
    needs: str  # "text", "embedding" or "near-dedup" (the decision log)
    reference: bool  # compares a group with the real reference
    subsampled: bool  # computed on equal-size random subsamples, mean and spread over draws
    summary: str


def _registry() -> dict[str, Metric]:
    text = [Metric(f"distinct_{n}", "text", False, True, f"distinct {n}-grams / all {n}-grams") for n in NGRAM_ORDERS]
    text.append(Metric("compression_ratio", "text", False, True, "text bytes / gzip bytes (higher: repetitive)"))
    text += [Metric(f"entropy_{n}", "text", False, True, f"Shannon entropy (bits) of {n}-grams") for n in NGRAM_ORDERS]
    text += [
        Metric("self_bleu", "text", False, True, "mean BLEU-4 of each text against the others (higher: alike)"),
        Metric("tail_coverage", "text", True, True, "share of the reference's rare words present"),
        Metric("js_divergence", "text", True, True, "Jensen-Shannon divergence (bits) of word distributions"),
    ]
    other = [
        Metric("near_dup_rate", "near-dedup", False, False, "share dropped by the latest near-dedup decisions"),
        Metric("dispersion", "embedding", False, True, "mean pairwise cosine distance of embeddings"),
        Metric("vendi_score", "embedding", False, True, "Vendi score: effective number of distinct embeddings"),
        Metric("frechet_distance", "embedding", True, True, "Fréchet distance of embeddings to the reference"),
    ]
    return {m.name: m for m in text + other}


METRICS = _registry()
TEXT = tuple(name for name, m in METRICS.items() if m.needs == "text")
EMBEDDING = tuple(name for name, m in METRICS.items() if m.needs == "embedding")
# Embedding metrics are opt-in: embedding 10k texts on two CPU cores takes minutes, text metrics seconds.
SETS: dict[str, tuple[str, ...]] = {
    "default": (*TEXT, "near_dup_rate"),
    "text": TEXT,
    "embedding": EMBEDDING,
    "distinct": tuple(f"distinct_{n}" for n in NGRAM_ORDERS),
    "entropy": tuple(f"entropy_{n}" for n in NGRAM_ORDERS),
    "all": tuple(METRICS),
}


def resolve(names: str | Iterable[str] | None) -> list[str]:
    """Metric names from names and set names (comma-separated or a list), in registry order."""
    if names is None:
        names = ["default"]
    elif isinstance(names, str):
        names = names.split(",")
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip().replace("-", "_")
        if name in SETS:
            wanted.update(SETS[name])
        elif name in METRICS:
            wanted.add(name)
        elif name:
            choices = ", ".join([*SETS, *METRICS])
            raise UsageError("metrics", raw.strip(), message=f"unknown metric `{raw.strip()}`; choose from {choices}")
    if not wanted:
        raise LineageError(f"no metric given; choose from {', '.join([*SETS, *METRICS])}")
    return [name for name in METRICS if name in wanted]


__all__ = ["EMBEDDING", "METRICS", "NGRAM_ORDERS", "SETS", "TEXT", "Metric", "resolve"]
