"""semantic-dedup: drop near-duplicates by meaning (cosine similarity of sentence embeddings).

Where the work runs: the embeddings are computed in `decide_all`, on the driver, not in `features()`
in the workers. The model costs seconds to load and torch already spreads one encode over every core,
so worker processes would each load the model and then compete for the same cores; the driver loads it
once per process, and it alone may read and write the store's feature cache. `features()` stays the
identity: the executor hands the selection's columns through unchanged.

How pairs are found: below `ANN_MIN_ROWS` samples exactly, blockwise. The vectors are normalised, so one
matrix product per block of rows gives cosine similarities against every later row (the upper triangle: each
pair once), and only pairs at or above `threshold` are kept. That is O(n²·d) but dense BLAS: about a minute
for 100k samples on two cores with at most 128 MiB per block. From `ANN_MIN_ROWS` on, an approximate
nearest-neighbour index (faiss's IndexIVFFlat, `ann_pairs`) searches each vector's `ANN_NPROBE` nearest cells
only; the pairs it finds have their exact cosine, and the exact pairs it misses are measured against the exact
method in the tests (recall >= 0.99 at the default threshold on a planted set).

Who is dropped: samples are ranked by the shared keep policy (real first, then lower generation, then
earliest ingested). Walking that ranking, a sample is dropped when it is at least `threshold` similar to
a sample already kept, with related_id = the most similar such kept sample and score = that similarity;
otherwise it is kept. So every drop points at a kept sample it really is close to, which connected
components alone would not promise (a~b and b~c does not make a~c). cluster_id, on every event, names
the connected component of the similarity graph by its best-ranked sample (a singleton's own id); a
kept sample's score is its highest similarity (at or above threshold) to any other sample, null when none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from lineage.features import embeddings as emb
from lineage.features.cache import config_hash
from lineage.filters.base import KEEP_ORDER_SQL, FilterParams, SelectionContext, SelectionFilter, register
from lineage.filters.incremental import Prior
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

# Floats per block of the similarity matrix (x4 bytes): bounds memory whatever the selection size.
BLOCK_FLOATS = 1 << 25
# From this many samples on, pairs are found by an approximate index (`ann_pairs`) instead of all n² products.
ANN_MIN_ROWS = 100_000
ANN_NPROBE = 16  # cells of the index searched per query
ANN_QUERY_ROWS = 8_192  # rows queried at once
ANN_MARGIN = 1e-4  # the index's inner products are float32 sums in another order: search a little wider


class SemanticDedupParams(FilterParams):
    threshold: float = Field(0.95, gt=0.0, le=1.0)
    model: str = emb.DEFAULT_MODEL
    batch_size: int = Field(64, ge=1, le=4096)

    @field_validator("model")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in emb.MODELS:
            raise ValueError(f"must be one of {', '.join(sorted(emb.MODELS))}")
        return value


@register
class SemanticDedupFilter(SelectionFilter):
    """Drop samples whose embedding is `threshold`-similar to a kept one; keep real, lower generation, earliest."""

    name = "semantic-dedup"
    Params = SemanticDedupParams
    columns = ("text",)

    def context_key(self, store: StoreCore) -> str:
        # A new model package or library version gives other vectors: run again instead of "already run".
        return config_hash(emb.config(self.params.model))  # type: ignore[attr-defined]

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        params: SemanticDedupParams = self.params  # type: ignore[assignment]
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        ranked = _ranked(features)
        vectors = emb.embeddings(
            context.store, ranked["sample_id"], ranked["text"], model=params.model, batch_size=params.batch_size
        )
        return _decisions(ranked["sample_id"], dedup(vectors, params.threshold)).sort_by("sample_id")


    def decide_new(self, features: pa.Table, prior: Prior, context: SelectionContext) -> pa.Table:
        """New samples against the decided ones: every old component (cluster_id) a new sample is similar to
        is decided again whole with the new samples; the greedy pass over a component depends on it alone."""
        params: SemanticDedupParams = self.params  # type: ignore[assignment]
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        store, model = context.store, params.model
        new = emb.embeddings(store, features["sample_id"], features["text"], model=model, batch_size=params.batch_size)
        old_ids = prior.table["sample_id"]
        old = _prior_vectors(prior, old_ids, model, params.batch_size)
        near = np.zeros(len(old_ids), dtype=bool)
        for start in range(0, len(old_ids), max(1, BLOCK_FLOATS // max(len(new), 1))):
            block = old[start : start + max(1, BLOCK_FLOATS // max(len(new), 1))]
            near[start : start + len(block)] = ((block @ new.T) >= params.threshold).any(axis=1)
        clusters_of = pc.coalesce(prior.table["cluster_id"], old_ids)
        touched = pc.unique(clusters_of.filter(pa.array(near)))
        members = prior.samples(list(features.column_names), old_ids.filter(pc.is_in(clusters_of, touched)))
        return self.decide_all(pa.concat_tables([features, members.cast(features.schema)]), context)


def _prior_vectors(prior: Prior, ids: pa.ChunkedArray, model: str, batch_size: int) -> np.ndarray:
    """Embeddings of the decided samples in the order of `ids` (from the cache; embedded where missing)."""
    cached = emb.cache(prior.store, model).lookup(ids)
    if cached.num_rows < len(ids):
        rows = prior.samples(["sample_id", "text"], ids)
        return emb.embeddings(prior.store, rows["sample_id"], rows["text"], model=model, batch_size=batch_size)
    order = pc.index_in(ids, value_set=cached["sample_id"].combine_chunks())
    return emb.to_matrix(cached["embedding"].take(order), emb.spec(model).dim)


def _ranked(features: pa.Table) -> pa.Table:
    """sample_id and text, best first by the keep policy: row i outranks row j when i < j."""
    con = duckdb.connect()
    try:
        con.register("features", features)
        table = con.sql(f"SELECT sample_id, text FROM features ORDER BY {KEEP_ORDER_SQL}").to_arrow_table()
    finally:
        con.close()
    return table.combine_chunks()


@dataclass(frozen=True)
class Dedup:
    """Per row of the ranked vectors: kept or dropped, the kept row it duplicates, similarity, component."""

    keep: np.ndarray  # bool
    related: np.ndarray  # int, -1 when kept
    score: np.ndarray  # float, nan when none
    leader: np.ndarray  # int, best-ranked row of the row's connected component


def dedup(vectors: np.ndarray, threshold: float) -> Dedup:
    """Greedy dedup over rows ranked best first (see the module doc)."""
    # scipy comes with the `embed` extra (sentence-transformers needs it), not with lineage itself.
    from scipy import sparse
    from scipy.sparse import csgraph

    n = len(vectors)
    rows, cols, sims = similar_pairs(vectors, threshold)
    # Lower triangle: row j lists the better-ranked rows i < j it is similar to.
    graph = sparse.csr_array((sims, (cols, rows)), shape=(n, n))
    keep, related, score = _greedy(graph)
    count, labels = csgraph.connected_components(graph, directed=False)
    first = np.full(count, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    best = np.full(n, np.nan)
    np.fmax.at(best, np.concatenate([rows, cols]), np.concatenate([sims, sims]))
    return Dedup(keep, related, np.where(keep, best, score), first[labels])


def similar_pairs(
    vectors: np.ndarray, threshold: float, *, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for every pair i < j with cosine >= threshold: exactly (`exact_pairs`) or, from
    `ANN_MIN_ROWS` rows on (`method="auto"`) or always (`"ann"`), by an approximate index (`ann_pairs`)."""
    if method == "ann" or (method == "auto" and len(vectors) >= ANN_MIN_ROWS):
        return ann_pairs(vectors, threshold)
    return exact_pairs(vectors, threshold)


def ann_pairs(
    vectors: np.ndarray, threshold: float, *, nprobe: int = ANN_NPROBE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`exact_pairs` by faiss's inverted-file index (IndexIVFFlat, inner product): each row is compared only with
    the rows of the `nprobe` cells nearest to it, so the cost is ~n * n * nprobe / cells instead of n * n.

    A pair is missed only when its two rows fall in cells so far apart that neither is probed from the other;
    near duplicates sit close together, so few are (recall against the exact pairs is measured in
    tests/test_semantic_dedup.py). Every pair found has its exact cosine (recomputed), so none below the
    threshold is kept."""
    import faiss  # the `embed` extra

    n, dim = vectors.shape
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = int(max(1, min(4 * np.sqrt(n), n // 39)))  # faiss warns below 39 training points per cell
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # cells only route the search: rough centroids serve, and k-means is most of the cost
    sample = np.random.default_rng(0).choice(n, min(n, cells * 64), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = min(nprobe, cells)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, n, ANN_QUERY_ROWS):
        lims, _, ids = index.range_search(vectors[start : start + ANN_QUERY_ROWS], threshold - ANN_MARGIN)
        i = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims.astype(np.int64)))
        upper = ids > i  # each pair once, never a row with itself
        found.append((i[upper], ids[upper]))
    i, j = (np.concatenate(parts) for parts in zip(*found, strict=True))
    sims = np.einsum("ij,ij->i", vectors[i], vectors[j])  # the exact cosine of each candidate
    keep = sims >= threshold
    return i[keep].astype(np.int64), j[keep].astype(np.int64), np.minimum(sims[keep], 1.0)


def exact_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for every pair i < j with cosine >= threshold, computed block by block."""
    n = len(vectors)
    block = max(1, min(n, BLOCK_FLOATS // max(n, 1)))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors[start:].T
        i, j = np.nonzero(sims >= threshold)
        upper = j > i  # each pair once, never a row with itself
        i, j = i[upper], j[upper]
        found.append((i + start, j + start, np.minimum(sims[i, j], 1.0)))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))  # type: ignore[return-value]


def _greedy(graph: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = graph.shape[0]
    keep = np.ones(n, dtype=bool)
    related = np.full(n, -1, dtype=np.int64)
    score = np.full(n, np.nan)
    # Rows in rank order, so every better-ranked row is decided before it is looked at.
    for j in np.flatnonzero(np.diff(graph.indptr)):
        span = slice(graph.indptr[j], graph.indptr[j + 1])
        better, sims = graph.indices[span], graph.data[span]
        alive = keep[better]
        if alive.any():
            best = np.argmax(np.where(alive, sims, -np.inf))
            keep[j], related[j], score[j] = False, better[best], sims[best]
    return keep, related, score


def _decisions(sample_ids: pa.Array, result: Dedup) -> pa.Table:
    ids = np.asarray(sample_ids.to_pylist(), dtype=object)
    dropped = ~result.keep
    return pa.table(
        {
            "sample_id": sample_ids,
            "decision": pa.array(np.where(result.keep, "keep", "drop")),
            "score": pa.array(result.score, pa.float64(), from_pandas=True),
            "reason": pa.array(np.where(dropped, "semantic_duplicate", None)),
            "related_id": pa.array(np.where(dropped, ids[result.related], None)),
            "cluster_id": pa.array(ids[result.leader]),
        }
    )
