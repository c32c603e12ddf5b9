"""The built-in filters (importing this module registers every one), and how a filter is found by name."""

from __future__ import annotations

import importlib
from typing import Any

from lineage.errors import LineageError
from lineage.filters import (  # noqa: F401  (each registers its filter on import)
    contamination,
    exact_dedup,
    near_dedup,
    quality,
    semantic_dedup,
    sql_filter,
    takedown,
)
from lineage.filters.base import REGISTRY, Filter, SampleFilter, SelectionFilter


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


def filter_class(name: str, module: str | None = None) -> type[Filter]:
    """A registered filter, or a user filter `package.module:ClassName`."""
    if module:
        return _load_user_filter(module)
    if name not in REGISTRY:
        raise LineageError(f"unknown filter `{name}`; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def _load_user_filter(spec: str) -> type[Filter]:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise LineageError(f"--module must look like package.module:ClassName, got `{spec}`")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise LineageError(f"cannot load filter `{spec}`: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, SampleFilter | SelectionFilter)):
        raise LineageError(f"`{spec}` is not a lineage SampleFilter or SelectionFilter subclass")
    return cls
