"""The built-in filters: importing this module registers every one (a run imports only the module of the filter
it runs, by name: `lineage.filters.base.filter_class`)."""

from __future__ import annotations

from typing import Any

from lineage.filters import (  # noqa: F401  (each registers its filter on import)
    contamination,
    exact_dedup,
    near_dedup,
    quality,
    semantic_dedup,
    sql_filter,
    takedown,
)
from lineage.filters.base import REGISTRY, Filter


def registry() -> dict[str, type[Filter]]:
    """Every registered filter by name: the built-in ones, and user filters registered with `@register`."""
    return REGISTRY


def describe_filters() -> list[dict[str, Any]]:
    """Each registered filter: name, version, what it does, and its parameters as (name, required, default)
    (fields a filter sets itself are left out: no `--param` sets them)."""
    return [
        {
            "filter": name,
            "version": cls.version,
            "params": [(k, f.is_required(), f.default) for k, f in cls.Params.model_fields.items() if not f.exclude],
            "does": (cls.__doc__ or "").strip(),
        }
        for name, cls in sorted(REGISTRY.items())
    ]
