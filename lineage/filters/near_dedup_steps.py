"""The public steps of near-dedup that the in-memory filter (`near_dedup`), the out-of-core run
(`near_dedup_bounded`) and the Ray plan (`lineage.engines.ray.plans`) share: which sample each cluster keeps, the
scores of the dropped ones, and their decisions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.features.minhash import verify_exact
from lineage.schemas import DECISIONS

# The shared keep policy, lineage.filters.base.KEEP_ORDER_SQL, as Arrow sort keys (nulls last, as DuckDB):
# (origin <> 'real'), generation, version, input_row, sample_id.
KEEP_ORDER = [(c, "ascending", "at_end") for c in ("synthetic", "generation", "version", "input_row", "sample_id")]


def kept_by_cluster(features: pa.Table, labels: np.ndarray) -> np.ndarray:
    """Row of the sample each row's cluster keeps, by the shared keep policy."""
    kept = np.arange(len(labels))
    grouped = np.flatnonzero(np.bincount(labels)[labels] > 1)  # a singleton keeps itself: skip the sort
    if len(grouped) == 0:
        return kept
    table = features.select(["sample_id", "generation", "version", "input_row"]).take(pa.array(grouped))
    table = table.append_column("synthetic", pc.not_equal(features["origin"].take(pa.array(grouped)), "real"))
    table = table.append_column("cluster", pa.array(labels[grouped]))
    order = grouped[pc.sort_indices(table, [("cluster", "ascending", "at_end"), *KEEP_ORDER])]
    heads = order[np.flatnonzero(np.diff(labels[order], prepend=-1))]  # the first row of each cluster
    first = np.empty(labels.max() + 1, np.int64)
    first[labels[heads]] = heads
    kept[grouped] = first[labels[grouped]]
    return kept


def scores(
    texts: pa.ChunkedArray | Callable[[np.ndarray], np.ndarray],
    kept: np.ndarray,
    pairs: np.ndarray,
    similarity: np.ndarray,
    ngram: int,
) -> np.ndarray:
    """Exact Jaccard of each dropped row with its kept row (NaN for kept rows).

    Taken from the verified pairs (in any order) where the two are one; computed for rows linked only
    through others: from `texts`, or by `texts(links)` (the exact Jaccard of each (row, row) link) when the
    texts are not in memory.
    """
    n, score = len(kept), np.full(len(kept), np.nan)
    dropped = np.flatnonzero(kept != np.arange(n))
    links = np.sort(np.stack([dropped, kept[dropped]], axis=1), axis=1)
    ordered = np.sort(pairs.reshape(-1, 2), axis=1)
    verified = ordered[:, 0] * n + ordered[:, 1]
    by_code = np.argsort(verified)
    codes, verified = links[:, 0] * n + links[:, 1], verified[by_code]
    at = np.minimum(np.searchsorted(verified, codes), max(len(verified) - 1, 0))
    known = verified[at] == codes if len(verified) else np.zeros(len(codes), bool)
    score[dropped[known]] = similarity[by_code[at[known]]]
    unknown = links[~known]
    if callable(texts):
        score[dropped[~known]] = texts(unknown) if len(unknown) else np.zeros(0)
    else:
        score[dropped[~known]] = verify_exact(unknown, texts, ngram=ngram, threshold=0.0)[1]
    return score


def decisions(ids: pa.ChunkedArray, kept: np.ndarray, score: np.ndarray) -> pa.Table:
    keep = kept == np.arange(len(kept))
    kept_id = ids.take(pa.array(kept))
    columns = {
        "sample_id": ids,
        "decision": pa.array(np.where(keep, "keep", "drop")),
        "score": pa.array(score, mask=keep),
        "reason": pa.array(np.full(len(kept), "near_duplicate"), mask=keep),
        "related_id": pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), kept_id),
        "cluster_id": kept_id,
    }
    return pa.table(columns, schema=DECISIONS)
