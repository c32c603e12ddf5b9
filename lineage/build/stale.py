"""Builds never honour a filter that has not seen their pool: stale filters refuse, refresh, or are recorded.

A build honours the drops of some filters (`pool.exclude_dropped_by`, default all; contamination always).
A sample its pool takes that such a filter never decided (see `lineage.filters.incremental`) would enter
the build unjudged: the build refuses, names the filters and counts, and offers `--refresh` (run those
filters over the new samples first) or `--allow-stale` (build anyway; the counts go into the build row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage.build.pool import ALWAYS_EXCLUDED_FILTERS
from lineage.build.spec import BuildSpec
from lineage.filters.incremental import FilterState, filter_states

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.filters.run import RunResult



def describe(states: list[FilterState]) -> str:
    """One line: which filters have not seen how many pool samples, and from which sources."""
    filters = ", ".join(f"{s.filter} {s.unseen:,}" for s in states)
    sources: dict[str, int] = {}
    for s in states:
        for source, n in s.unseen_by_source.items():
            sources[source] = max(sources.get(source, 0), n)
    top = sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))
    more = f", +{len(top) - 5} more" if len(top) > 5 else ""
    where = ", ".join(f"{k} {v:,}" for k, v in top[:5]) + more
    return f"filters it honours have not seen samples of its pool: {filters} (sources: {where})"


def honoured(spec: BuildSpec) -> list[str] | None:
    """The filters whose drops the pool excludes (None: every filter that ran)."""
    named = spec.pool.exclude_dropped_by
    return None if named is None else [*named, *ALWAYS_EXCLUDED_FILTERS]


def stale_filters(store: StoreCore, spec: BuildSpec) -> list[FilterState]:
    """The honoured filters that have not seen some samples of the spec's pool."""
    states = filter_states(
        store,
        names=honoured(spec),
        where=spec.pool.where,
        max_generation=spec.pool.max_generation,
        exclude_protected=True,
        licenses=spec.pool.licenses,
    )
    return [s for s in states if s.unseen]


def refresh(store: StoreCore, spec: BuildSpec) -> list[RunResult]:
    """Run each stale honoured filter, with its current params, over the samples it has not seen."""
    from lineage.filters.run import run_filter

    return [
        run_filter(store, state.filter, params=state.params_dict, new_only=True, module=state.module)
        for state in stale_filters(store, spec)
    ]
