"""Schemas of the catalog's own tables (they live in DuckDB, not in segments)."""

import pyarrow as pa

META = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])

COMMITS = pa.schema(
    [
        pa.field("version", pa.int64(), nullable=False),
        pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ref_id", pa.string()),
        pa.field("summary", pa.string()),
    ]
)

SEGMENTS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("row_count", pa.int64(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("ref_id", pa.string()),
        pa.field("version", pa.int64(), nullable=False),
        # Since store format 3: the version whose compaction replaced this segment (NULL while it is live). Versions
        # before it still read it; `gc` with a retention removes it. Last: the migration appends it.
        pa.field("retired_version", pa.int64()),
    ]
)

REJECT = pa.struct([("line", pa.int64()), ("field", pa.string()), ("reason", pa.string())])

BATCHES = pa.schema(
    [
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("input_uri", pa.string(), nullable=False),
        pa.field("input_sha256", pa.string()),
        pa.field("input_format", pa.string(), nullable=False),
        pa.field("options", pa.string(), nullable=False),
        pa.field("rows_read", pa.int64(), nullable=False),
        pa.field("rows_stored", pa.int64(), nullable=False),
        pa.field("rows_present", pa.int64(), nullable=False),
        pa.field("rows_rejected", pa.int64(), nullable=False),
        pa.field("rejects", pa.list_(REJECT), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        # Since store format 2 (NULL in batches ingested before): stored rows whose text an earlier sample has.
        # Last, because the format-2 migration appends it with ALTER TABLE and rows are inserted by position.
        pa.field("rows_duplicate", pa.int64()),
    ]
)
