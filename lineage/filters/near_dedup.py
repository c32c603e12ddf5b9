"""near-dedup: MinHash LSH clusters of near-duplicate texts keep one sample each, by the keep policy.

Signatures of word n-gram shingles (`lineage.features.minhash`) are cached under
data/features/minhash/<config-hash>/, keyed by the hashing scheme, so a later run hashes only the
samples it has not seen and matches them against the cached signatures of the others.

Caching happens in `decide_all`, on the driver: the executor gives workers only the filter class, its
params and a batch, so `features` could not skip cached samples and would re-hash the whole selection on
every run. Hashing is vectorised numpy and cheap next to reading the selection, so the map phase passes
batches through unchanged.

Matching is the two steps of `lineage.features.minhash`: LSH candidates from the signatures, then each
candidate verified by the exact Jaccard similarity of the two texts' shingle sets (hashed again, for the
candidates only), so `threshold` is a bound on the exact similarity, not on an estimate. Clusters are the
connected components of the verified pairs and keep one sample each, by the shared keep policy.

Every event gets cluster_id = the kept sample of its cluster (a singleton is its own cluster). Drops get
reason `near_duplicate`, related_id = the kept sample, score = the exact Jaccard similarity with it. That
score is below the threshold when the sample joined the cluster through another member (A ~ B and B ~ C,
but not A ~ C): near duplicates are transitive here, similarity is not.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from lineage.features.bandindex import BandIndex
from lineage.features.cache import FeatureCache
from lineage.features.minhash import (
    candidate_bands,
    candidate_pairs,
    clusters,
    scheme,
    signatures,
    verify_exact,
)
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, register
from lineage.filters.incremental import Prior
from lineage.filters.near_dedup_steps import decisions, kept_by_cluster, scores
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.core.selection import Selection
    from lineage.filters.bounded import BoundedRun
    from lineage.filters.events import Decided


class NearDedupParams(FilterParams):
    ngram: int = Field(5, ge=1, le=64, description="words per shingle")
    num_perm: int = Field(128, ge=2, le=1024, description="MinHash permutations")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity that makes a near duplicate")
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
    data = pa.py_buffer(np.ascontiguousarray(sigs, dtype="<u4"))  # no copy: the buffer keeps the array alive
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
    spills = True
    Params = NearDedupParams
    columns = ("text",)
    params: NearDedupParams

    def cache(self, store: StoreCore) -> FeatureCache:
        p = self.params
        config = scheme(ngram=p.ngram, num_perm=p.num_perm, seed=p.seed) | {"byte_order": "little"}
        return FeatureCache(store, "minhash", config, signature_schema(p.num_perm))

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        p, cache = self.params, self.cache(context.store)
        sigs, fresh = self.signatures_for(features, cache)
        with ThreadPoolExecutor(1) as pool:  # the new cache part is written while the pairs are found
            written = pool.submit(self.add_to_cache, cache, fresh)
            candidates = candidate_pairs(sigs, threshold=p.threshold)
            pairs, similarity = verify_exact(candidates, features["text"], ngram=p.ngram, threshold=p.threshold)
            written.result()
        kept = kept_by_cluster(features, clusters(len(sigs), pairs))
        return decisions(features["sample_id"], kept, scores(features["text"], kept, pairs, similarity, p.ngram))

    def decide_bounded(self, selection: Selection, run: BoundedRun) -> Decided:
        """`decide_all`'s decisions in memory bounded by `run.memory_limit` (`lineage.filters.near_dedup_bounded`):
        what the local engines run."""
        from lineage.filters.near_dedup_bounded import decide

        decided, spilled = decide(self, selection, run)
        self._note = f"out of core within {run.memory_limit}" + (
            f", {spilled / 1e6:,.0f} MB spilled to disk at most" if spilled else ", nothing spilled"
        )
        return decided

    def note(self) -> str:
        """What the run did beyond its decisions: how an out-of-core run used memory and disk."""
        return getattr(self, "_note", "")

    def decide_new(self, features: pa.Table, prior: Prior, context: SelectionContext) -> pa.Table:
        """New samples against the decided ones: the old clusters a new sample joins are decided again whole.

        Clusters are connected components, so a full run would find the same ones: the old clusters no new
        sample touches, unchanged, and the components of the new samples' verified pairs (among themselves
        and with old samples) together with every old cluster they reach. The old candidates come from the
        band-key index of the signature cache (`lineage.features.bandindex`): no old signature is read.
        """
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        p, cache = self.params, self.cache(context.store)
        index = BandIndex(cache, *candidate_bands(p.threshold, p.num_perm), p.num_perm)
        self._index_unhashed(prior, cache, index)
        new_sigs = signatures(features["text"], ngram=p.ngram, num_perm=p.num_perm, seed=p.seed)
        new_rows, hit_ids = index.lookup(new_sigs)  # before the new part is indexed: old samples only
        self.add_to_cache(cache, pa.table({"sample_id": features["sample_id"], "minhash": to_binary(new_sigs)}), index)
        hits = prior.decisions(pc.unique(hit_ids))  # indexed samples this filter decided with these params
        # Every old cluster a new sample may join, with its members' columns (texts of the candidates among
        # them): one read of the samples; the clusters no verified pair reaches are dropped below.
        member_decisions = prior.in_clusters(pc.unique(pc.coalesce(hits["cluster_id"], hits["sample_id"])))
        members = _aligned(prior.samples(list(features.column_names), member_decisions["sample_id"]),
                           member_decisions["sample_id"])
        olds = members["sample_id"].combine_chunks()
        at = pc.index_in(hit_ids, value_set=olds)
        valid = at.is_valid().to_numpy(zero_copy_only=False)
        cross = np.stack([new_rows, at.fill_null(0).to_numpy(zero_copy_only=False)], axis=1)[valid]
        cross = np.unique(cross.astype(np.int64), axis=0).reshape(-1, 2)
        linked, linked_sim = verify_exact(cross, features["text"], members["text"], ngram=p.ngram,
                                          threshold=p.threshold)
        within = candidate_pairs(new_sigs, threshold=p.threshold)
        pairs_new, sim_new = verify_exact(within, features["text"], ngram=p.ngram, threshold=p.threshold)
        clusters_of = pc.coalesce(member_decisions["cluster_id"], member_decisions["sample_id"])
        touched = pc.is_in(clusters_of, value_set=pc.unique(clusters_of.take(pa.array(linked[:, 1]))))
        # Rows of the members kept (the touched clusters), after the new samples in the table to decide.
        kept_rows = np.flatnonzero(touched.to_numpy(zero_copy_only=False))
        renumber = np.full(len(olds), -1, np.int64)
        renumber[kept_rows] = features.num_rows + np.arange(len(kept_rows))
        table = pa.concat_tables([features, members.take(pa.array(kept_rows)).cast(features.schema)])
        verified = np.concatenate([pairs_new, np.stack([linked[:, 0], renumber[linked[:, 1]]], axis=1)])
        similarity = np.concatenate([sim_new, linked_sim])
        stars = _stars(clusters_of.filter(touched), features.num_rows)
        labels = clusters(table.num_rows, np.concatenate([verified.reshape(-1, 2), stars]).astype(np.int64))
        kept = kept_by_cluster(table, labels)
        return decisions(table["sample_id"], kept, scores(table["text"], kept, verified, similarity, p.ngram))

    def _index_unhashed(self, prior: Prior, cache: FeatureCache, index: BandIndex) -> None:
        """Hash and index the samples decided before whose signatures are not cached (runs on Ray do not
        cache them; a cache removed by hand): the index must cover every decided sample."""
        missing = prior.uncached(cache)
        if len(missing) == 0:
            return
        texts = prior.samples(["sample_id", "text"], missing)
        p = self.params
        sigs = signatures(texts["text"], ngram=p.ngram, num_perm=p.num_perm, seed=p.seed)
        self.add_to_cache(cache, pa.table({"sample_id": texts["sample_id"], "minhash": to_binary(sigs)}), index)

    def add_to_cache(self, cache: FeatureCache, rows: pa.Table, index: BandIndex | None = None) -> None:
        """Add signatures to the cache, and their band keys to the index incremental runs look candidates up in."""
        part = cache.add(rows)
        if part is not None:
            p = self.params
            index = index or BandIndex(cache, *candidate_bands(p.threshold, p.num_perm), p.num_perm)
            index.add(part, rows["sample_id"], from_binary(rows["minhash"], p.num_perm))

    def cached_signatures(self, features: pa.Table, store: StoreCore) -> np.ndarray:
        """Signatures of the selection in its order: cached ones reused, missing ones hashed and cached."""
        cache = self.cache(store)
        sigs, fresh = self.signatures_for(features, cache)
        self.add_to_cache(cache, fresh)
        return sigs

    def signatures_for(self, features: pa.Table, cache: FeatureCache) -> tuple[np.ndarray, pa.Table]:
        """Signatures of the selection in its order, and the rows to add to the cache (the missing ones)."""
        p, ids = self.params, features["sample_id"]
        cached = cache.lookup(ids)
        position = pc.index_in(ids, value_set=cached["sample_id"])
        missing = pc.is_null(position)
        texts = features["text"] if cached.num_rows == 0 else features["text"].filter(missing)
        fresh = signatures(texts, ngram=p.ngram, num_perm=p.num_perm, seed=p.seed)
        rows = pa.table({"sample_id": ids.filter(missing), "minhash": to_binary(fresh)})
        if cached.num_rows == 0:
            return fresh, rows
        out = np.empty((len(ids), p.num_perm), np.uint32)
        is_missing = missing.to_numpy()
        out[is_missing] = fresh
        out[~is_missing] = from_binary(cached["minhash"], p.num_perm)[position.drop_null().to_numpy()]
        return out, rows


def _aligned(table: pa.Table, ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    """`table`'s rows in the order of `ids` (each present once)."""
    return table.take(pc.index_in(ids, value_set=table["sample_id"].combine_chunks()))


def _stars(clusters_of: pa.ChunkedArray, offset: int) -> np.ndarray:
    """Pairs linking each old member to the first member of its old cluster: the members are rows offset + i,
    in sample_id order like the prior decisions `clusters_of` comes from."""
    if len(clusters_of) == 0:
        return np.zeros((0, 2), np.int64)
    labels = np.unique(np.asarray(clusters_of.to_pylist(), dtype=object), return_inverse=True)[1].reshape(-1)
    rows = np.arange(len(labels))
    first = np.full(labels.max() + 1, len(labels), np.int64)
    np.minimum.at(first, labels, rows)
    return np.stack([offset + first[labels], offset + rows], axis=1)
