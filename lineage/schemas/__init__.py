"""Arrow schemas: the storage contract. DuckDB DDL is derived from them, never the reverse."""

from lineage.schemas.builds import BUILD_MEMBERS, BUILDS, EVALS, MODELS
from lineage.schemas.catalog import BATCHES, COMMITS, META, SEGMENTS
from lineage.schemas.ddl import create_table_sql, duckdb_type, select_cast_sql
from lineage.schemas.events import DECISION_VALUES, DECISIONS, EVENTS, RUNS, SET_MEMBERS, SETS
from lineage.schemas.metrics import METRICS
from lineage.schemas.samples import EDGES, ORIGINS, PROVENANCE_FIELDS, SAMPLES

__all__ = [
    "BATCHES",
    "BUILDS",
    "BUILD_MEMBERS",
    "COMMITS",
    "DECISIONS",
    "DECISION_VALUES",
    "EDGES",
    "EVALS",
    "EVENTS",
    "META",
    "METRICS",
    "MODELS",
    "ORIGINS",
    "PROVENANCE_FIELDS",
    "RUNS",
    "SAMPLES",
    "SEGMENTS",
    "SETS",
    "SET_MEMBERS",
    "create_table_sql",
    "duckdb_type",
    "select_cast_sql",
]
