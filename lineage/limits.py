"""Limits on input values, kept import-free so the CLI can show them in --help instantly."""

MAX_GENERATION = 1_000_000
DEFAULT_MAX_RECORD_BYTES = 16 << 20
# DuckDB spills the ingest's staged rows to STORE/tmp beyond this.
DEFAULT_MEMORY_LIMIT = "384MB"
# `lineage sql`: a runaway query must end (like datasette's sql_time_limit_ms), and within a memory bound.
QUERY_TIMEOUT = 60.0  # seconds
QUERY_MEMORY_LIMIT = "2GB"
