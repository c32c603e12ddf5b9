"""Recorded diversity metrics, so reports and attribution reuse them instead of recomputing."""

import pyarrow as pa

METRICS = pa.schema(
    [
        pa.field("metric_run_id", pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),  # "samples", "build:<name>@v<N>" or "model:<name>"
        pa.field("group_by", pa.string(), nullable=False),  # comma-separated dimensions, "" for all
        pa.field("group_key", pa.string(), nullable=False),  # JSON object of dimension values, "{}" for all
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("spread", pa.float64()),  # std over subsample draws, when drawn
        pa.field("n_samples", pa.int64(), nullable=False),
        pa.field("config", pa.string(), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
        pa.field("store_version", pa.int64(), nullable=False),
        pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)
