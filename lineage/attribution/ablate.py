"""Leave-one-group-out build specs: the build's own spec with the pool restricted to exclude one group,
so a suspect group becomes a controlled experiment (`lineage build` each spec, train, compare).

The left-out group's quota goes; the other quotas of the same dimension are renormalised (divided by
1 - the group's share in the build), as in leave-one-domain-out mixture ablations, with min and max
widened outward to whole percents so that integer counts exist (0.6 / 0.9 = 0.666.. becomes 0.66..0.67).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineage.attribution import DIMENSIONS
from lineage.errors import LineageError
from lineage.outputs import atomic_write

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def ablate(store: StoreCore, ref: str, *, by: str = "source", output: str | Path) -> list[Path]:
    """Write one YAML spec per group of `by` in build `ref` to `output`; returns the paths."""
    import yaml

    from lineage.build import Build, load_spec

    if by not in DIMENSIONS:
        raise LineageError(f"cannot ablate by `{by}`; choose from {', '.join(DIMENSIONS)}")
    build = Build.parse(store, ref)
    spec = json.loads(build.info["spec"])
    groups = sorted(json.loads(build.info["composition"]).get(by, {}))
    folder = store.output_path(output)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    counts = json.loads(build.info["composition"]).get(by, {})
    for group in groups:
        doc = _without(spec, by, group, counts[group] / build.info["size"])
        load_spec(doc)  # the spec must stay valid for `lineage build`
        path = folder / f"{doc['name']}.yaml"
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        paths.append(path)
    return paths


def _without(spec: dict[str, Any], by: str, group: str, share: float) -> dict[str, Any]:
    doc = json.loads(json.dumps(spec))
    doc["name"] = _name(f"{spec['name']}-without-{by}-{group}")
    pool = doc.setdefault("pool", {}) or {}
    where = pool.get("where")
    exclude = f"{by} IS DISTINCT FROM {_literal(by, group)}"
    pool["where"] = f"({where}) AND {exclude}" if where else exclude
    doc["pool"] = pool
    # A quota on the left-out group itself could only make the spec infeasible.
    quotas = doc.get("quotas") or {}
    if group in quotas.get(by, {}):
        del quotas[by][group]
    if share < 1:
        quotas[by] = {k: _rescale(q, 1 - share) for k, q in quotas.get(by, {}).items()}
    doc["description"] = f"{spec['name']} without {by} = {group} (leave-one-group-out ablation)"
    return {k: v for k, v in doc.items() if v not in (None, [], {})}


def _rescale(quota: dict[str, float | None], rest: float) -> dict[str, float]:
    out = {}
    if quota.get("min") is not None:
        out["min"] = min(math.floor(quota["min"] / rest * 100 + 1e-9) / 100, 1.0)
    if quota.get("max") is not None:
        out["max"] = min(math.ceil(quota["max"] / rest * 100 - 1e-9) / 100, 1.0)
    if quota.get("target") is not None:
        low, high = out.get("min", 0.0), out.get("max", 1.0)
        out["target"] = max(low, min(high, round(quota["target"] / rest, 4)))
    return out


def _literal(by: str, group: str) -> str:
    if by == "generation":
        return str(int(group))
    return "'" + group.replace("'", "''") + "'"


def _name(raw: str) -> str:
    # Build names allow letters, digits, `.`, `_`, `-`; group values may hold anything else.
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:128]
