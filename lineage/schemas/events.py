"""Filter runs, their per-sample decisions, and named sets."""

import pyarrow as pa

DECISION_VALUES = ("keep", "drop", "flag")

# What a filter returns for each sample it saw.
DECISIONS = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("related_id", pa.string()),
        pa.field("cluster_id", pa.string()),
    ]
)

# An events segment: the decisions of one run, stamped with the run and its commit.
EVENTS = pa.schema(
    [*DECISIONS, pa.field("run_id", pa.string(), nullable=False), pa.field("version", pa.int64(), nullable=False)]
)

RUNS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("filter", pa.string(), nullable=False),
        pa.field("filter_version", pa.string(), nullable=False),
        pa.field("params", pa.string(), nullable=False),
        pa.field("params_hash", pa.string(), nullable=False),
        pa.field("selection", pa.string()),
        pa.field("selection_hash", pa.string(), nullable=False),
        pa.field("selected", pa.int64(), nullable=False),
        pa.field("kept", pa.int64(), nullable=False),
        pa.field("dropped", pa.int64(), nullable=False),
        pa.field("flagged", pa.int64(), nullable=False),
        pa.field("reasons", pa.string(), nullable=False),
        pa.field("engine", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

SETS = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("protected", pa.bool_(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

SET_MEMBERS = pa.schema(
    [
        pa.field("set_name", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)
