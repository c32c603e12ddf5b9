"""Builds (immutable, versioned training sets), models trained on them, and their evaluations."""

import pyarrow as pa

BUILDS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("build_version", pa.int64(), nullable=False),
        pa.field("spec", pa.string(), nullable=False),  # canonical JSON
        pa.field("spec_hash", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("store_version", pa.int64(), nullable=False),  # the store version it was drawn from
        pa.field("size", pa.int64(), nullable=False),
        pa.field("pool_size", pa.int64(), nullable=False),
        pa.field("composition", pa.string(), nullable=False),  # JSON
        pa.field("allocation", pa.string(), nullable=False),  # JSON: per cell and per quota
        pa.field("floors", pa.string(), nullable=False),  # JSON: per floor target and achieved
        pa.field("checks", pa.string(), nullable=False),  # JSON: contamination re-check and others
        pa.field("members_path", pa.string(), nullable=False),
        pa.field("members_sha256", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

BUILD_MEMBERS = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("cell", pa.string(), nullable=False),  # JSON of the quota dimension values
    ]
)

MODELS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("build_name", pa.string()),
        pa.field("build_version", pa.int64()),
        pa.field("parent", pa.string()),
        pa.field("notes", pa.string()),
        pa.field("registered_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

EVALS = pa.schema(
    [
        pa.field("eval_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("stderr", pa.float64()),
        pa.field("benchmark", pa.string()),
        pa.field("eval_set", pa.string()),
        pa.field("source", pa.string()),  # where it came from: cli, lm-eval-harness file, outputs diversity
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)
