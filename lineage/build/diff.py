"""Compare two builds: composition per dimension and membership changes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

if TYPE_CHECKING:
    from lineage.build import Build


def diff(a: Build, b: Build) -> dict[str, Any]:
    ids_a, ids_b = a.member_ids()["sample_id"], b.member_ids()["sample_id"]
    kept = pc.sum(pc.is_in(ids_a, value_set=ids_b)).as_py() or 0
    comp_a, comp_b = json.loads(a.info["composition"]), json.loads(b.info["composition"])
    composition = {}
    for dim in sorted(set(comp_a) | set(comp_b)):
        values = sorted(set(comp_a.get(dim, {})) | set(comp_b.get(dim, {})))
        composition[dim] = [
            {
                "value": v,
                "a": comp_a.get(dim, {}).get(v, 0),
                "b": comp_b.get(dim, {}).get(v, 0),
                "change": comp_b.get(dim, {}).get(v, 0) - comp_a.get(dim, {}).get(v, 0),
            }
            for v in values
        ]
    return {
        "a": f"{a.name}@v{a.version}",
        "b": f"{b.name}@v{b.version}",
        "members": {
            "a": len(ids_a),
            "b": len(ids_b),
            "both": kept,
            "removed": len(ids_a) - kept,
            "added": len(ids_b) - kept,
        },
        "spec_changed": a.info["spec_hash"] != b.info["spec_hash"],
        "store_versions": [a.info["store_version"], b.info["store_version"]],
        "composition": composition,
    }
