"""Limits on input values, kept import-free so the CLI can show them in --help instantly."""

MAX_GENERATION = 1_000_000
DEFAULT_MAX_RECORD_BYTES = 16 << 20
# DuckDB spills the ingest's staged rows to STORE/tmp beyond this: at least this much (see `ingest_memory_limit`).
DEFAULT_MEMORY_LIMIT = "384MB"
# `lineage sql`: a runaway query must end (like datasette's sql_time_limit_ms), and within a memory bound.
QUERY_TIMEOUT = 60.0  # seconds
QUERY_MEMORY_LIMIT = "2GB"


def default_ingest_memory_limit() -> str:
    """An ingest's memory limit unless one is given: a tenth of the machine's memory, at least DEFAULT_MEMORY_LIMIT.
    What ingest holds follows its input, not the store, but parent resolution joins every reference of the input
    (a generation of 1.5M synthetic samples naming their parents needs ~0.7 GB): a fixed 384MB refused such a
    generation on a machine with memory to spare."""
    floor = int(DEFAULT_MEMORY_LIMIT.removesuffix("MB"))
    return f"{max(floor, int(default_filter_memory_limit().removesuffix('MB')))}MB"


def default_filter_memory_limit() -> str:
    """What a filter run's out-of-core steps (DuckDB's sorts, joins and aggregates) may hold in memory before they
    spill to STORE/tmp: a tenth of the machine's memory (at least 256 MB), so a run leaves room for the rest."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: a safe guess
        total = 8 << 30
    return f"{max(256, total // 10 >> 20)}MB"
