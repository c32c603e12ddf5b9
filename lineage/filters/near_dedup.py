"""near-dedup: MinHash LSH clusters of near-duplicate texts keep one sample each, by the keep policy.

Signatures of word n-gram shingles (`lineage.features.minhash`) are cached under
data/features/minhash/<config-hash>/, keyed by the hashing scheme, so a later run hashes only the
samples it has not seen and matches them against the cached signatures of the others.

Caching happens in `decide_all`, on the driver: the executor gives workers only the filter class, its
params and a batch, so `features` could not skip cached samples and would re-hash the whole selection on
every run. Hashing is vectorised numpy and cheap next to reading the selection, so the map phase passes
batches through unchanged.

Every event gets cluster_id = the kept sample of its cluster (a singleton is its own cluster). Drops get
reason `near_duplicate`, related_id = the kept sample, score = estimated Jaccard with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from lineage.features.cache import FeatureCache
from lineage.features.minhash import clusters, jaccard, lsh_pairs, scheme, signatures
from lineage.filters.base import KEEP_ORDER_SQL, FilterParams, SelectionContext, SelectionFilter, register
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.store import Store

KEPT_SQL = f"""
SELECT first_value("row") OVER (PARTITION BY cluster ORDER BY {KEEP_ORDER_SQL}) AS kept
FROM features ORDER BY "row"
"""


class NearDedupParams(FilterParams):
    ngram: int = Field(5, ge=1, le=64, description="words per shingle")
    num_perm: int = Field(128, ge=2, le=1024, description="MinHash permutations")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="estimated Jaccard that makes a near duplicate")
    seed: int = Field(1, ge=0, lt=2**32, description="seed of the permutations")


def signature_schema(num_perm: int) -> pa.Schema:
    # Fixed-size binary (little-endian uint32s), not a list column: Parquet and DuckDB move it far faster.
    return pa.schema(
        [
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("minhash", pa.binary(4 * num_perm), nullable=False),
        ]
    )


def to_binary(sigs: np.ndarray) -> pa.Array:
    data = pa.py_buffer(np.ascontiguousarray(sigs, dtype="<u4").tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * sigs.shape[1]), len(sigs), [None, data])


def from_binary(column: pa.Array | pa.ChunkedArray, num_perm: int) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, num_perm), np.uint32)
    raw = np.frombuffer(arr.buffers()[1], dtype="<u4")[arr.offset * num_perm : (arr.offset + len(arr)) * num_perm]
    return raw.reshape(len(arr), num_perm).astype(np.uint32)


@register
class NearDedupFilter(SelectionFilter):
    """Drop near duplicates (MinHash LSH over word n-grams); keep real, then lower generation, then earliest."""

    name = "near-dedup"
    Params = NearDedupParams
    columns = ("text",)
    params: NearDedupParams

    def cache(self, store: Store) -> FeatureCache:
        p = self.params
        config = scheme(ngram=p.ngram, num_perm=p.num_perm, seed=p.seed) | {"byte_order": "little"}
        return FeatureCache(store, "minhash", config, signature_schema(p.num_perm))

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        sigs = self.cached_signatures(features, context.store)
        labels = clusters(len(sigs), lsh_pairs(sigs, threshold=self.params.threshold))
        kept = _kept(features, labels)
        return _decisions(features["sample_id"], kept, jaccard(sigs, sigs[kept]))

    def cached_signatures(self, features: pa.Table, store: Store) -> np.ndarray:
        """Signatures of the selection in its order: cached ones reused, missing ones hashed and cached."""
        p, cache, ids = self.params, self.cache(store), features["sample_id"]
        cached = cache.lookup(ids)
        position = pc.index_in(ids, value_set=cached["sample_id"])
        missing = pc.is_null(position)
        fresh = signatures(features["text"].filter(missing), ngram=p.ngram, num_perm=p.num_perm, seed=p.seed)
        cache.add(pa.table({"sample_id": ids.filter(missing), "minhash": to_binary(fresh)}))
        out = np.empty((len(ids), p.num_perm), np.uint32)
        is_missing = missing.to_numpy()
        out[is_missing] = fresh
        out[~is_missing] = from_binary(cached["minhash"], p.num_perm)[position.drop_null().to_numpy()]
        return out


def _kept(features: pa.Table, labels: np.ndarray) -> np.ndarray:
    """Row of the sample each row's cluster keeps, by the shared keep policy."""
    kept = np.arange(len(labels))
    grouped = np.flatnonzero(np.bincount(labels)[labels] > 1)  # a singleton keeps itself: skip the sort
    table = features.drop_columns(["text"]).take(pa.array(grouped))
    table = table.append_column("cluster", pa.array(labels[grouped])).append_column("row", pa.array(grouped))
    con = duckdb.connect()
    try:
        con.register("features", table)
        kept[grouped] = con.sql(KEPT_SQL).to_arrow_table()["kept"].to_numpy()
    finally:
        con.close()
    return kept


def _decisions(ids: pa.ChunkedArray, kept: np.ndarray, score: np.ndarray) -> pa.Table:
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
