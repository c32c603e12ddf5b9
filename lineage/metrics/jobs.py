"""The steps of a diversity computation that both engines run (`lineage.diversity` locally,
`lineage.engines.ray.metrics` on Ray): the job, its groups, the embedder, and the notes and errors they give."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.errors import LineageError, option
from lineage.metrics import METRICS
from lineage.metrics.compute import Embedder, GroupResult, Params, Reference

if TYPE_CHECKING:
    import polars as pl

    from lineage.core.handle import StoreCore


@dataclass(frozen=True)
class Job:
    """One diversity computation, as either engine sees it."""

    store: StoreCore  # the embedding cache's store
    view: StoreCore  # the store as of the version measured
    dims: list[str]
    where: str | None
    ids: pa.Array | None
    names: list[str]
    params: Params
    reference: str
    embed: Embedder | None
    embedding_model: str

    def embedder(self, notes: list[str]) -> Embedder | None:
        return embedder_for(self.store, self.names, self.embed, self.embedding_model, notes)


# The selection's sample_id and dimensions (what near_dup_rate joins), the dimensions' fields, the groups.
Measured = tuple["pl.DataFrame", list[pa.Field], list[GroupResult]]


def nothing_selected(where: str | None) -> LineageError:
    return LineageError("no samples selected" + (f" by {option('where', where)}" if where else ""))


def group_frames(frame: pl.DataFrame, dims: list[str]) -> Iterator[tuple[dict[str, Any], pl.DataFrame]]:
    if not dims:
        yield {}, frame
        return
    ordered = frame.sort(dims, nulls_last=True, maintain_order=True)  # keeps sample_id order inside groups
    for part in ordered.partition_by(dims, maintain_order=True):
        yield {d: part[d][0] for d in dims}, part


def embedder_for(
    store: StoreCore, names: list[str], embed: Embedder | None, model: str, notes: list[str]
) -> Embedder | None:
    """The embedder for the embedding metrics, or None with a note when the `embed` extra is missing."""
    if embed is not None or not any(METRICS[n].needs == "embedding" for n in names):
        return embed
    from importlib.util import find_spec

    try:
        from lineage.features import embeddings as emb

        emb.model_path(model)  # a LineageError naming the install command when the model is missing
        for module in ("torch", "sentence_transformers"):
            if find_spec(module) is None:
                raise LineageError(f"{module} is not installed; run: pip install 'lineage[embed]'")
    except (ImportError, LineageError) as exc:
        notes.append(f"embedding metrics skipped: {exc}")
        return None
    return lambda ids, texts: emb.embeddings(store, ids, texts, model=model)


def no_reference(sql: str, wanted: list[str]) -> str:
    return f"no reference samples ({sql}): {', '.join(wanted)} are null"


def check_tail(ref: Reference, names: list[str], params: Params, notes: list[str]) -> None:
    if "tail_coverage" in names and not ref.rare.any():
        notes.append(f"tail_coverage is null: no word occurs 1..{params.tail_max_count} times in the reference")
