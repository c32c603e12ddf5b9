"""Diversity floors: measured on the selected members; a floor that is not met refuses the build."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.build.spec import BuildSpec, Floor
from lineage.errors import FloorNotMet

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def check_floors(store: StoreCore, spec: BuildSpec, members: pa.Table) -> list[dict[str, Any]]:
    """One row per floor and group: target, achieved, met. Raises FloorNotMet on the first miss."""
    rows = []
    for floor in spec.floors:
        rows += _measure(store, spec, floor, members["sample_id"])
    unmeasured = [r for r in rows if r["achieved"] is None and r["met"] is not None]
    if unmeasured:
        r = unmeasured[0]
        raise FloorNotMet(
            f"floor {r['metric']} {r['bound']} {r['target']:g}{_group(r)} cannot be measured: the group has "
            f"{r['samples']:,} samples; set min_group_size on the floor to report such groups as not measurable; "
            "nothing was written"
        )
    missed = [r for r in rows if r["met"] is False]
    if missed:
        r = missed[0]
        raise FloorNotMet(
            f"floor {r['metric']} {r['bound']} {r['target']:g}{_group(r)} not met: the build reaches "
            f"{r['achieved']:.4g}; picks were already spread across near-duplicate clusters, so the pool "
            "limits it: widen the pool or its quotas, run near-dedup, or relax the floor; nothing was written"
        )
    return rows


def _measure(store: StoreCore, spec: BuildSpec, floor: Floor, ids: pa.ChunkedArray) -> list[dict[str, Any]]:
    from lineage.diversity import diversity

    result = diversity(store, by=[floor.by] if floor.by else [], sample_ids=ids, metrics=[floor.metric],
                       seed=spec.seed, record=False)
    bound, target = ("min", floor.min) if floor.min is not None else ("max", floor.max)
    out = []
    for row in result.table.to_pylist():
        value, size = row[floor.metric], row["samples"]
        met: bool | None = value is not None and (value >= target if bound == "min" else value <= target)  # type: ignore[operator]
        status = "met" if met else "not met"
        if floor.min_group_size is not None and size < floor.min_group_size:
            met, status = None, "not measurable"  # too small a group for this metric: reported, not judged
        elif value is None:
            status = "not measurable"
        group = {floor.by: row[floor.by]} if floor.by else {}
        out.append({"metric": floor.metric, "bound": bound, "target": target, "group": json.dumps(group),
                    "achieved": value, "met": met, "samples": size, "status": status})
    return out


def _group(row: dict[str, Any]) -> str:
    group = json.loads(row["group"])
    return f" for {', '.join(f'{k}={v}' for k, v in group.items())}" if group else ""
