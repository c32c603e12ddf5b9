"""The `samples` segment schema: one row per ingested record, never updated."""

import pyarrow as pa

ORIGINS = ("real", "synthetic")

SAMPLES = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("external_id", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("method", pa.string()),
        pa.field("generator", pa.string()),
        pa.field("generation", pa.int32(), nullable=False),
        pa.field("parent_ids", pa.list_(pa.string()), nullable=False),
        pa.field("gen_params", pa.string()),
        pa.field("license", pa.string()),
        pa.field("language", pa.string()),
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("input_uri", pa.string(), nullable=False),
        pa.field("input_row", pa.int64(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

# Columns a record may carry to override the ingest flags row by row.
PROVENANCE_FIELDS = (
    "origin",
    "source",
    "method",
    "generator",
    "generation",
    "parent_ids",
    "gen_params",
    "license",
    "language",
    "tags",
)

# The `edges` segment schema (store format 4): every parent link of the samples, stored twice, once from each end,
# sorted by sample_id, so that one point lookup serves both directions (`lineage.core.edges`). A row says that
# `related_id` is a `parent` (or a `child`) of `sample_id`; edges are exactly unnest(samples.parent_ids).
EDGES = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),
        pa.field("related_id", pa.string(), nullable=False),
    ]
)
