"""Distributed plans of the selection filters whose reduce phase would not fit the driver.

near-dedup, as `NearDedupFilter.decide_all` does it, with each step where the data is:

1. workers: MinHash signatures of every sample (`signatures`);
2. shuffle on the whole signature: samples with identical signatures are linked as a star to the
   smallest sample_id of the group, verified exactly in the group; the smallest goes on as representative;
3. shuffle of the representatives' ids on their LSH band keys (the recall-first bands of
   `candidate_pairs`): all pairs within a bucket are the candidates;
4. two shuffles on sample ids give each candidate the text of `a`, then of `b`, where it is verified
   exactly (`verify_exact`): each text moves twice, not once per band;
5. driver: the verified pairs (few) give the clusters, the keep policy and the scores, by the local code
   over only the samples in some pair;
6. workers: every sample's event (keep for all samples in no cluster), staged as parts.

Candidates, verification and keep policy are the local engine's, so the events are the same (identical
signatures are grouped by their bytes here and by a 64-bit hash of them locally: a difference needs a
hash collision). Signatures are computed on the workers and not cached (the cache is a local file set).

semantic-dedup: embeddings of the samples the cache lacks on an actor pool (each actor loads the model
once), written to the cache by the driver; then the local greedy dedup on the driver, from the cache.

contamination: the driver builds the protected items' n-gram index once (Ray ships it to the workers through
the object store with the task function); the workers run `detect` (exact, contained, near) on their batches
and return only the leaks; the driver adds the lineage leaks (a walk over the catalog's edges, as locally);
the workers stage every sample's event. Detection is per sample, so the decisions are the local engine's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.engines.ray.engine import Context, cluster_cpus, collect, map_batches, per_batch, stage
from lineage.features.containment import Index
from lineage.features.minhash import (
    EMPTY,
    band_keys,
    candidate_bands,
    clusters,
    pairs_within,
    signatures,
    verify_exact,
)
from lineage.filters.contamination import (
    FOUND,
    ContaminationFilter,
    ContaminationParams,
    build_index,
    decisions,
    detect,
    found_table,
    protected_items,
    with_lineage,
)
from lineage.filters.events import Decided, check
from lineage.filters.near_dedup import (
    NearDedupFilter,
    NearDedupParams,
    from_binary,
    to_binary,
)
from lineage.filters.near_dedup_steps import decisions as near_dedup_decisions
from lineage.filters.near_dedup_steps import kept_by_cluster, scores
from lineage.filters.semantic_dedup import SemanticDedupFilter
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from ray.data import Dataset

PAIRS = pa.schema([("a", pa.string()), ("b", pa.string()), ("similarity", pa.float64())])
SHUFFLE = pa.schema([("part", pa.int64()), ("a", pa.string()), ("b", pa.string()), ("text", pa.string())])
SHUFFLE_ROWS = 250_000  # samples per shuffle partition, at least
KEEP_COLUMNS = ["sample_id", "text", "origin", "generation", "version", "input_row"]
# An embedding actor is worth starting when it has more text to embed than it could in the time it takes to start:
# ~6 s to import torch and load all-MiniLM-L6-v2, in which one thread embeds ~100,000 characters of short texts
# (measured: 1,000 sentences of 61 characters in 3.9 s). A text counts up to the ~1,200 characters the model reads
# (its 256 word pieces). A small job on a big cluster then loads the model once, not once per CPU.
ACTOR_MIN_CHARS = 100_000
MODEL_CHARS = 1_200


def near_dedup(ds: Dataset, flt: NearDedupFilter, context: Context) -> Decided:
    p, partitions = flt.params, shuffle_partitions(context)
    signed = per_batch(ds.select_columns(["sample_id", "text"]), _signed, context, params=p, partitions=partitions)
    # Grouped by a partition number, not by the key itself: one call per partition, vectorised inside,
    # instead of one Python call per signature or bucket (measured: 80 s against ~4 s on 20,000 samples).
    grouped = signed.groupby("part", num_partitions=partitions).map_groups(
        _stars, batch_format="pyarrow", fn_kwargs={"params": p}
    )
    grouped = grouped.materialize()  # read twice: its star pairs, and its representatives for banding
    candidates = (
        map_batches(grouped, _band_rows, batch_format="pyarrow", fn_kwargs={"params": p, "partitions": partitions})
        .groupby("part", num_partitions=partitions)
        .map_groups(_bucket_candidates, batch_format="pyarrow", fn_kwargs={"partitions": partitions})
    )
    # Texts join the candidate pairs by two shuffles on sample ids (each text moves twice), not through
    # the band shuffle (it would move once per band: 21 times).
    # Materialised: read once for both joins, and read whole before a shuffle samples its boundaries (a read still
    # streaming beside the sort's sampling tasks can hold the only CPU of a 1-CPU cluster: a deadlock, seen with
    # Ray Data's V1 Parquet reader; see test_near_dedup_on_a_one_cpu_cluster_ends).
    texts = map_batches(
        ds.select_columns(["sample_id", "text"]),
        _text_rows,
        batch_format="pyarrow",
        fn_kwargs={"partitions": partitions},
    ).materialize()
    with_a = (
        candidates.union(texts)
        .groupby("part", num_partitions=partitions)
        .map_groups(_attach_text, batch_format="pyarrow", fn_kwargs={"partitions": partitions})
    )
    banded = (
        with_a.union(texts)
        .groupby("part", num_partitions=partitions)
        .map_groups(_verify_pairs, batch_format="pyarrow", fn_kwargs={"params": p})
    )
    stars = map_batches(grouped, _star_pairs, batch_format="pyarrow")
    table = _clustered(ds, collect(stars.union(banded), PAIRS), p)
    return stage(ds.select_columns(["sample_id"]), _near_dup_events, flt, context, clustered=table)


def shuffle_partitions(context: Context) -> int:
    """Partitions of a shuffle: a few per worker, more for big selections (Ray's default, 200, costs
    seconds of scheduling on a small cluster)."""
    return max(2 * cluster_cpus(context.workers), context.count // SHUFFLE_ROWS)


def _signed(batch: pa.Table, params: NearDedupParams, partitions: int) -> pa.Table:
    """sample_id, text, minhash and partition (by the signature) of the samples with shingles."""
    sigs = signatures(batch["text"], ngram=params.ngram, num_perm=params.num_perm, seed=params.seed)
    nonempty = pa.array((sigs != EMPTY).any(axis=1))
    table = pa.table(
        {
            "sample_id": batch["sample_id"],
            "text": batch["text"],
            "minhash": to_binary(sigs),
            "part": pa.array(sigs[:, 0].astype(np.int64) % partitions),  # equal signatures, equal partition
        }
    )
    return table.filter(nonempty)


def _stars(part: pa.Table, params: NearDedupParams) -> pa.Table:
    """A partition's samples by signature: the smallest id of each signature represents it (b null, text
    and minhash kept); the others are star pairs (a = the smallest) that reach the threshold exactly."""
    part = part.sort_by([("minhash", "ascending"), ("sample_id", "ascending")])
    sigs = from_binary(part["minhash"], params.num_perm)
    position = np.arange(part.num_rows)
    new = np.concatenate([[True], (sigs[1:] != sigs[:-1]).any(axis=1)])
    start = np.maximum.accumulate(np.where(new, position, 0))
    pairs = np.stack([start[~new], position[~new]], axis=1)
    kept, sims = verify_exact(pairs, part["text"], ngram=params.ngram, threshold=params.threshold)
    reps = part.filter(pa.array(new))
    return pa.concat_tables(
        [
            pa.table(
                {
                    "a": reps["sample_id"],
                    "b": pa.nulls(reps.num_rows, pa.string()),
                    "similarity": pa.nulls(reps.num_rows, pa.float64()),
                    "text": reps["text"],
                    "minhash": reps["minhash"],
                }
            ),
            _pair_table(part["sample_id"], kept, sims)
            .append_column("text", pa.nulls(len(kept), pa.string()))
            .append_column("minhash", pa.nulls(len(kept), part["minhash"].type)),
        ]
    )


def _star_pairs(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_valid(batch["b"])).select(["a", "b", "similarity"])


def _band_rows(batch: pa.Table, params: NearDedupParams, partitions: int) -> pa.Table:
    """(key, partition, sample_id) for every band of every representative."""
    reps = batch.filter(pc.is_null(batch["b"]))
    nb, nr = candidate_bands(params.threshold, params.num_perm)
    keys = band_keys(from_binary(reps["minhash"], params.num_perm), nb, nr).ravel().astype(np.int64)
    at = pa.array(np.repeat(np.arange(reps.num_rows), nb))
    return pa.table(
        {
            "key": pa.array(keys),
            "part": pa.array(keys % partitions),
            "sample_id": reps["a"].take(at),
        }
    )


def _bucket_candidates(part: pa.Table, partitions: int) -> pa.Table:
    """Every pair of samples (a < b) sharing a band key in this partition, unverified, in the shape of
    `_text_rows` and partitioned by `a`."""
    part = part.sort_by("sample_id")
    encoded = pc.dictionary_encode(part["sample_id"]).combine_chunks()  # codes in sample_id order
    sample = encoded.indices.to_numpy()
    rows = pairs_within(part["key"].to_numpy().reshape(-1, 1))  # rows i < j with equal keys
    pairs = np.unique(np.sort(sample[rows], axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    a, b = encoded.dictionary.take(pa.array(pairs[:, 0])), encoded.dictionary.take(pa.array(pairs[:, 1]))
    return _shuffle_rows(_partition(a, partitions), a, b, pa.nulls(len(a), pa.string()))


def _text_rows(batch: pa.Table, partitions: int) -> pa.Table:
    """(part, a = sample_id, b = null, text) rows: the texts the pair rows of a partition look up."""
    ids = batch["sample_id"]
    return _shuffle_rows(_partition(ids, partitions), ids, pa.nulls(len(ids), pa.string()), batch["text"])


def _attach_text(part: pa.Table, partitions: int) -> pa.Table:
    """The partition's pairs with the text of `a` (in `text`), moved on to the partition of `b`."""
    texts, pairs = _split(part)
    pairs = pairs.set_column(3, "text", texts["text"].take(pc.index_in(pairs["a"], value_set=texts["a"])))
    return pairs.set_column(0, "part", _partition(pairs["b"], partitions))


def _verify_pairs(part: pa.Table, params: NearDedupParams) -> pa.Table:
    """The partition's pairs (with the text of `a`) verified exactly against the text of `b`."""
    texts, pairs = _split(part)
    text_b = texts["text"].take(pc.index_in(pairs["b"], value_set=texts["a"]))
    rows = np.repeat(np.arange(pairs.num_rows), 2).reshape(-1, 2)
    kept, sims = verify_exact(rows, pairs["text"], text_b, ngram=params.ngram, threshold=params.threshold)
    keep = pa.array(kept[:, 0])
    return pa.table(
        {"a": pairs["a"].take(keep), "b": pairs["b"].take(keep), "similarity": pa.array(sims)}, schema=PAIRS
    )


def _split(part: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(text rows, pair rows) of a partition."""
    return part.filter(pc.is_null(part["b"])), part.filter(pc.is_valid(part["b"]))


def _shuffle_rows(part: pa.Array, a: pa.Array, b: pa.Array, text: pa.Array) -> pa.Table:
    return pa.table({"part": part, "a": a, "b": b, "text": text}, schema=SHUFFLE)


def _partition(ids: pa.Array | pa.ChunkedArray, partitions: int) -> pa.Array:
    """A partition number per sample id, the same in every process (DuckDB's hash has no seed)."""
    con = duckdb.connect()
    try:
        con.register("ids", pa.table({"id": ids}))
        return (
            con.sql(f"SELECT (hash(id) % {int(partitions)})::BIGINT AS p FROM ids")
            .to_arrow_table()["p"]
            .combine_chunks()
        )
    finally:
        con.close()


def _pair_table(ids: pa.ChunkedArray, pairs: np.ndarray, sims: np.ndarray) -> pa.Table:
    return pa.table(
        {"a": ids.take(pa.array(pairs[:, 0])), "b": ids.take(pa.array(pairs[:, 1])), "similarity": pa.array(sims)},
        schema=PAIRS,
    )


def _clustered(ds: Dataset, pairs: pa.Table, params: NearDedupParams) -> pa.Table:
    """The decisions of the samples in some verified pair, by the local code over just those samples."""
    if pairs.num_rows == 0:
        return DECISIONS.empty_table()
    ids = pc.unique(pa.concat_arrays([pairs["a"].combine_chunks(), pairs["b"].combine_chunks()]))
    members = collect(
        map_batches(ds.select_columns(KEEP_COLUMNS), _members, batch_format="pyarrow", fn_kwargs={"ids": ids})
    )
    n = members.num_rows
    at_a = pc.index_in(pairs["a"], value_set=members["sample_id"]).to_numpy()
    at_b = pc.index_in(pairs["b"], value_set=members["sample_id"]).to_numpy()
    codes, first = np.unique(at_a.astype(np.int64) * n + at_b, return_index=True)
    rows = np.stack([codes // n, codes % n], axis=1)
    kept = kept_by_cluster(members, clusters(n, rows))
    score = scores(members["text"], kept, rows, pairs["similarity"].to_numpy()[first], params.ngram)
    return near_dedup_decisions(members["sample_id"], kept, score)


def _members(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["sample_id"], value_set=ids))


def _near_dup_events(flt: NearDedupFilter, batch: pa.Table, clustered: pa.Table) -> pa.Table:
    """Every sample of the batch: its clustered decision, or keep in a cluster of its own."""
    ids = batch["sample_id"]
    at = pc.index_in(ids, value_set=clustered["sample_id"])
    found = pc.is_valid(at)
    rows = clustered.take(at.drop_null())
    alone = ids.filter(pc.invert(found))
    singletons = pa.table(
        {
            "sample_id": alone,
            "decision": pa.array(["keep"] * len(alone)),
            "score": pa.nulls(len(alone), pa.float64()),
            "reason": pa.nulls(len(alone), pa.string()),
            "related_id": pa.nulls(len(alone), pa.string()),
            "cluster_id": alone,
        },
        schema=DECISIONS,
    )
    return pa.concat_tables([rows.cast(DECISIONS), singletons])


def semantic_dedup(ds: Dataset, flt: SemanticDedupFilter, context: Context) -> Decided:
    """Embeddings of the samples the cache lacks on an actor pool; then the local reduce, from the cache."""
    from lineage.features import embeddings as emb

    p = flt.params
    features = collect(ds.select_columns(KEEP_COLUMNS))
    cache = emb.cache(context.store, p.model)
    known = cache.lookup(features["sample_id"])["sample_id"]
    lacking = pc.invert(pc.is_in(features["sample_id"], value_set=known))
    missing = features["sample_id"].filter(lacking)
    if len(missing):
        actors = embedding_actors(features["text"].filter(lacking), p.batch_size, cluster_cpus(context.workers))
        todo = (
            map_batches(
                ds.select_columns(["sample_id", "text"]),
                _members,
                batch_format="pyarrow",
                fn_kwargs={"ids": missing.combine_chunks()},
            )
            .repartition(actors)  # a block per actor
            .materialize()  # before the actors start: they hold every CPU, reading tasks would starve
        )
        vectors = map_batches(
            todo,
            _Embedder,
            batch_size=min(emb.CHUNK_ROWS, -(-len(missing) // actors)),
            batch_format="pyarrow",
            concurrency=actors,
            fn_constructor_kwargs={"model": p.model, "batch_size": p.batch_size},
        )
        cache.add(collect(vectors, cache.schema))  # the driver writes the cache, as locally
    table = flt.decide_all(features, context).cast(DECISIONS)
    check(flt.name, table, context.count)
    return Decided.of_table(table, context.run_id)


def embedding_actors(texts: pa.ChunkedArray, batch_size: int, cpus: int) -> int:
    """How many embedding actors `texts` are worth (see ACTOR_MIN_CHARS): at least one, at most one per CPU and
    one per batch."""
    chars = pc.sum(pc.min_element_wise(pc.utf8_length(texts), MODEL_CHARS)).as_py() or 0
    return max(1, min(cpus, -(-len(texts) // batch_size), chars // ACTOR_MIN_CHARS))


class _Embedder:
    """An actor holding the embedding model: loaded once per actor, not once per batch."""

    def __init__(self, model: str, batch_size: int) -> None:
        import torch

        from lineage.features import embeddings as emb

        torch.set_num_threads(1)  # one actor per CPU: torch's own threads would fight over them
        self.model, self.batch_size = model, batch_size
        emb.load_model(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lineage.features import embeddings as emb

        vectors = emb.embed(batch["text"].to_pylist(), model=self.model, batch_size=self.batch_size)
        return emb.vector_table(batch["sample_id"], vectors, emb.schema(self.model))


def contamination(ds: Dataset, flt: ContaminationFilter, context: Context) -> Decided:
    """Detection on the workers against an index built once; lineage on the driver; events on the workers."""
    protected = protected_items(context.store, flt.params.set_names())
    found = FOUND.empty_table()
    if protected.num_rows:
        leaks = per_batch(
            ds.select_columns(["sample_id", "text", "content_hash"]),
            _leaks,
            context,
            protected=protected,
            index=build_index(protected, flt.params),
            params=flt.params,
        )
        found = collect(leaks, FOUND)
    found = with_lineage(context.store, found, protected, {})
    ids = protected["sample_id"].combine_chunks()
    return stage(ds.select_columns(["sample_id"]), _contamination_events, flt, context, found=found, protected=ids)


def _leaks(batch: pa.Table, protected: pa.Table, index: Index, params: ContaminationParams) -> pa.Table:
    """The batch's leaking samples (FOUND rows)."""
    return found_table(batch["sample_id"], detect(protected, batch["text"], batch["content_hash"], params, index=index))


def _contamination_events(flt: ContaminationFilter, batch: pa.Table, found: pa.Table, protected: pa.Array) -> pa.Table:
    return decisions(batch["sample_id"], found, protected)


PLANS: dict[str, Callable[..., Any]] = {
    "near-dedup": near_dedup,
    "semantic-dedup": semantic_dedup,
    "contamination": contamination,
}
