"""Importing this module registers every built-in filter."""

from lineage.filters import (  # noqa: F401
    contamination,
    exact_dedup,
    near_dedup,
    quality,
    semantic_dedup,
    sql_filter,
    takedown,
)
