"""Limits on input values, kept import-free so the CLI can show them in --help instantly."""

MAX_GENERATION = 1_000_000
DEFAULT_MAX_RECORD_BYTES = 16 << 20
# DuckDB spills the ingest's staged rows to STORE/tmp beyond this.
DEFAULT_MEMORY_LIMIT = "384MB"
