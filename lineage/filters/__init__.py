"""Filters with a complete decision log. See `lineage.filters.base` for the contract."""

from lineage.filters.base import (
    REGISTRY,
    Filter,
    FilterParams,
    SampleFilter,
    SelectionContext,
    SelectionFilter,
    decisions,
    register,
)

__all__ = [
    "REGISTRY",
    "Filter",
    "FilterParams",
    "SampleFilter",
    "SelectionContext",
    "SelectionFilter",
    "decisions",
    "register",
]
