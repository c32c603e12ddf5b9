"""The Ray executor of a filter run: a `SampleFilter` decides on the workers, a `SelectionFilter` runs its
distributed plan (`plans`) or its reduce on the driver; see `engine` for how parts are staged and registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage.engines.local import Progress
from lineage.engines.ray.cluster import connect, one_line
from lineage.engines.ray.engine import Context, decide_batch, read_selection, reduce_on_driver, stage
from lineage.engines.ray.plans import PLANS
from lineage.errors import LineageError
from lineage.filters.base import Filter, SampleFilter, SelectionFilter
from lineage.filters.events import Decided
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.core.selection import Selection


def decide_on_ray(
    store: StoreCore,
    flt: Filter,
    selection: Selection,
    run_id: str,
    version: int,
    workers: int | None,
    address: str | None,
    progress: Progress | None,
) -> Decided:
    if selection.count == 0:
        return Decided.of_table(DECISIONS.empty_table(), run_id)
    staging = store.staging(run_id)  # removed by the run when it ends, committed or not
    with connect(address, workers) as ray:
        try:
            return _decide(
                ray, store, flt, selection, Context(store, run_id, version, staging, selection.count, workers, progress)
            )
        except ray.exceptions.RayError as exc:
            raise one_line(f"filter {flt.name}", exc, undone="registered") from None


def _decide(ray: Any, store: StoreCore, flt: Filter, selection: Selection, context: Context) -> Decided:
    ds = read_selection(ray, selection, context.workers)
    if isinstance(flt, SampleFilter):
        return stage(ds, decide_batch, flt, context)
    if not isinstance(flt, SelectionFilter):
        raise LineageError(f"{type(flt).__name__} is neither a SampleFilter nor a SelectionFilter")
    plan = PLANS.get(flt.name)
    if plan is not None:
        return plan(ds, flt, context)
    return reduce_on_driver(ds, flt, context)
