"""Importing this module registers every built-in filter."""

from lineage.filters import exact_dedup, sql_filter, takedown  # noqa: F401
