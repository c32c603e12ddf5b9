"""Diversity metrics on Ray: the local engine's values, with the whole selection and the whole reference read
on the workers and only what the draws need brought to the driver.

1. workers read the selection's sample_id and group dimensions (no text); the driver draws each group's
   subsamples from them exactly as `compute_group` does (groups in sample_id order, the same seeded rng);
2. workers tokenise the reference (the local tokeniser) and count its words per batch; the driver sums;
3. workers semi-join the segments with the drawn sample ids: only the drawn texts reach the driver, which
   computes each group's metrics with the local functions (`compute_draws`) over just its drawn rows;
4. near_dup_rate reads the decision log, as locally (`lineage.diversity`).

Why the values are identical, not merely close: token ids differ between the engines (locally the
vocabulary is every word of the selection and the reference, here the reference's and the drawn samples'
words), but both are ranks of the words in sorted order, so the ids here are an order-preserving
relabelling of the local ones. The metrics use ids only through equality and order: n-gram codes are ranks
of (prefix code, id) pairs, so they come out equal; distinct-n and self-BLEU count them; entropy and JS
divergence sum floats over counts in id order (the same order, so the same sums); tail coverage counts
rare words; compression ratio reads the raw texts; embeddings see the same ids and texts in the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.engines.ray.cluster import connect, one_line
from lineage.engines.ray.engine import collect, map_batches, read_segments, read_selection, tasks
from lineage.filters.events import BATCH_ROWS
from lineage.metrics import METRICS
from lineage.metrics.compute import GroupResult, Reference, compute_draws, draw_indices, embed_rows, key_json
from lineage.metrics.jobs import Job, Measured, check_tail, group_frames, no_reference, nothing_selected
from lineage.metrics.text import encode_columns, rare_mask, token_expr

if TYPE_CHECKING:
    import polars as pl
    from ray.data import Dataset

    from lineage.core.selection import Selection
    from lineage.metrics.compute import Embedder

WORDS = pa.schema([("word", pa.string()), ("count", pa.int64())])
REDUCE_ROWS = 1_000_000  # word-count rows the driver holds before summing them


@dataclass(frozen=True)
class Drawn:
    """A group's draws: its size, its drawn sample ids (the union, in sample_id order), each draw as positions
    in them."""

    key: dict[str, Any]
    size: int
    ids: pa.Array
    draws: list[np.ndarray]


def measure_on_ray(job: Job, notes: list[str], *, workers: int | None, address: str | None) -> Measured:
    """`Job` on Ray at `address`, or on a local cluster of `workers` CPUs started for it."""
    from lineage.core.selection import Selection

    selection = Selection(job.view, job.where, ["sample_id", *job.dims], job.ids)
    if selection.count == 0:
        raise nothing_selected(job.where)
    embedder = job.embedder(notes)
    with connect(address, workers) as ray:
        try:
            return _measure(ray, job, selection, embedder, workers, notes)
        except ray.exceptions.RayError as exc:
            raise one_line("diversity", exc, undone="recorded") from None


def _measure(
    ray: Any, job: Job, selection: Selection, embedder: Embedder | None, workers: int | None, notes: list[str]
) -> Measured:
    frame, fields = _narrow(ray, selection, workers)
    plan = _plan(frame, job)
    reference = _reference_selection(job, notes)
    words = _word_counts(ray, reference, workers) if _needs_words(job, reference) else None
    ref_ids = _reference_draw(reference, job) if _needs_vectors(job, reference, embedder) else None
    wanted = [d.ids for d in plan] + ([] if ref_ids is None else [ref_ids])
    drawn, ref = _encode(_texts(ray, selection, pa.concat_arrays(wanted), workers), words, job, notes)
    # Embeddings come from the driver's cached embedder, not from an actor pool as in semantic-dedup's plan:
    # the draws are at most groups x draws x sample_size texts (seconds on one core, where each actor would
    # first load the model), and the same calls in the same order give the local engine's vectors bit for
    # bit (vectors embedded in other batches differ in their last bits). The reference first, as locally.
    if ref_ids is not None and embedder is not None:
        ref.vectors = embed_rows(_rows(drawn, ref_ids), np.arange(len(ref_ids)), embedder)
    groups = [_compute(d, drawn, job, ref, embedder) for d in plan]
    return frame, fields, groups


# -- 1. the selection's narrow columns and the draws -----------------------------------------------


def _narrow(ray: Any, selection: Selection, workers: int | None) -> tuple[pl.DataFrame, list[pa.Field]]:
    """sample_id and the dimensions of the whole selection, in sample_id order; the dimensions' fields."""
    import polars as pl

    table = collect(read_selection(ray, selection, workers)).select(selection.columns)
    fields = [pa.field(d, table.schema.field(d).type) for d in selection.columns[1:]]  # nullable, as locally
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame, fields


def _plan(frame: pl.DataFrame, job: Job) -> list[Drawn]:
    """Each group's draws, as `compute_group` draws them over the group's rows in sample_id order."""
    plan = []
    for key, part in group_frames(frame, job.dims):
        draws = draw_indices(part.height, key_json(key), job.params)
        union = np.unique(np.concatenate(draws))
        ids = part["sample_id"].gather(union).to_arrow().cast(pa.string())
        plan.append(Drawn(key, part.height, ids, [np.searchsorted(union, d) for d in draws]))
    return plan


def _compute(d: Drawn, drawn: pl.DataFrame, job: Job, ref: Reference, embed: Embedder | None) -> GroupResult:
    return compute_draws(d.key, d.size, _rows(drawn, d.ids), d.draws, job.names, ref, job.params, embed)


def _rows(drawn: pl.DataFrame, ids: pa.Array) -> pl.DataFrame:
    """The rows of `ids`, in their order."""
    import polars as pl

    at = pc.index_in(ids, value_set=drawn["sample_id"].to_arrow().cast(pa.string()))
    return drawn.select(pl.all().gather(at.to_numpy(zero_copy_only=False)))


# -- 2. the reference ------------------------------------------------------------------------------


def _reference_selection(job: Job, notes: list[str]) -> Selection | None:
    """The reference's selection when a metric needs it, None with a note when it is empty."""
    from lineage.core.selection import Selection

    wanted = [n for n in job.names if METRICS[n].reference]
    if not wanted:
        return None
    reference = Selection(job.view, job.reference, ["sample_id", "text"])
    if reference.count == 0:
        notes.append(no_reference(job.reference, wanted))
        return None
    return reference


def _needs_words(job: Job, reference: Selection | None) -> bool:
    return reference is not None and any(METRICS[n].reference and METRICS[n].needs == "text" for n in job.names)


def _needs_vectors(job: Job, reference: Selection | None, embedder: Embedder | None) -> bool:
    return reference is not None and embedder is not None and "frechet_distance" in job.names


def _word_counts(ray: Any, reference: Selection, workers: int | None) -> pl.DataFrame:
    """The reference's word counts: counted per batch on the workers, summed on the driver as they come."""
    ds = map_batches(
        read_selection(ray, reference, workers).select_columns(["text"]),
        _count_words,
        batch_size=BATCH_ROWS,
        batch_format="pyarrow",
        concurrency=tasks(workers, reference.count),
    )
    return _sum_counts(ds)


def _count_words(batch: pa.Table) -> pa.Table:
    import polars as pl

    frame = pl.from_arrow(batch.select(["text"]))
    assert isinstance(frame, pl.DataFrame)
    words = frame.select(word=token_expr("text")).explode("word").drop_nulls()
    return words.group_by("word").agg(count=pl.len()).to_arrow().cast(WORDS)


def _sum_counts(ds: Dataset) -> pl.DataFrame:
    import polars as pl

    parts: list[pl.DataFrame] = []
    rows, limit = 0, REDUCE_ROWS
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        parts.append(pl.from_arrow(batch.cast(WORDS)))  # type: ignore[arg-type]
        rows += batch.num_rows
        if rows > limit:
            parts = [_summed(parts)]
            rows = parts[0].height
            limit = max(REDUCE_ROWS, 2 * rows)  # a vocabulary bigger than the limit is not summed every batch
    return _summed(parts)


def _summed(parts: list[pl.DataFrame]) -> pl.DataFrame:
    import polars as pl

    if not parts:
        return pl.from_arrow(WORDS.empty_table())  # type: ignore[return-value]
    return pl.concat(parts).group_by("word").agg(pl.col("count").sum())


def _reference_draw(reference: Selection, job: Job) -> pa.Array:
    """The sample ids of the reference's one embedding draw, in draw order (as the local engine draws it
    over the reference in sample_id order)."""
    ids = reference.sample_ids()
    ordered = ids.take(pc.array_sort_indices(ids))
    return ordered.take(pa.array(draw_indices(len(ordered), "reference", job.params)[0]))


# -- 3. the drawn texts, encoded -------------------------------------------------------------------


def _texts(ray: Any, selection: Selection, ids: pa.Array, workers: int | None) -> pa.Table:
    """sample_id and text of the samples `ids`, semi-joined on the workers (any segment of the version)."""
    ds = read_segments(ray, selection, ["sample_id", "text"], workers)
    unique = pc.unique(ids)
    return collect(map_batches(ds, _rows_of, batch_format="pyarrow", fn_kwargs={"ids": unique}))


def _rows_of(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["sample_id"], value_set=ids))


def _encode(texts: pa.Table, words: pl.DataFrame | None, job: Job, notes: list[str]) -> tuple[pl.DataFrame, Reference]:
    """The drawn rows with token ids, and the reference's counts by the same ids: one vocabulary, the sorted
    words of both (see the module doc)."""
    import polars as pl

    drawn = pl.from_arrow(texts)
    assert isinstance(drawn, pl.DataFrame)
    tokens = drawn.select(token_expr("text"))["text"]
    if words is None:
        columns, _ = encode_columns(tokens)
        return drawn.with_columns(ids=columns[0]), Reference.none()
    columns, vocab = encode_columns(tokens, words.select(pl.col("word").implode())["word"])
    counts = np.zeros(vocab, np.int64)
    counts[columns[1][0].to_numpy()] = words["count"].to_numpy()
    ref = Reference(counts, rare_mask(counts, max_count=job.params.tail_max_count))
    check_tail(ref, job.names, job.params, notes)
    return drawn.with_columns(ids=columns[0]), ref
