"""What a build report shows, as plain data (the JSON format is exactly this; HTML and Markdown render it).

Everything comes from the build's catalog row (spec, composition, allocation, floors, checks) and from the
store as of the version the build was drawn from, so a report of an old build still tells its own story.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from lineage.build.pool import ALWAYS_EXCLUDED_FILTERS

if TYPE_CHECKING:
    from lineage.build import Build
    from lineage.core.handle import StoreCore

PREVIEW_PER_GROUP = 3
PREVIEW_GROUPS = 20
PREVIEW_CHARS = 200

PREVIEW_SQL = """
SELECT s.source, s.sample_id, s.external_id, s.origin, s.method, s.generator, s.generation,
       left(s.text, ?) AS text, length(s.text) AS chars
FROM samples s SEMI JOIN _members m USING (sample_id)
QUALIFY row_number() OVER (PARTITION BY s.source ORDER BY s.sample_id) <= ?
ORDER BY s.source, s.sample_id
"""


def build_data(store: StoreCore, ref: str) -> dict[str, Any]:
    from lineage.build import Build

    build = Build.parse(store, ref)
    info = build.info
    spec, allocation = json.loads(info["spec"]), json.loads(info["allocation"])
    composition = {dim: _shares(counts, info["size"]) for dim, counts in json.loads(info["composition"]).items()}
    data = {
        "kind": "build", "title": f"{build.name}@v{build.version}", "build": _about(info), "spec": spec,
        "quotas": [_quota(r) for r in allocation if r["kind"] == "quota"],
        "cells": [r for r in allocation if r["kind"] == "cell"],
        "floors": json.loads(info["floors"]), "composition": composition, "funnel": funnel(store, info, spec),
        "drops": drops_by_source(store, info, spec),
        "checks": _contamination(build), "stale": json.loads(info["checks"]).get("stale_filters", {}),
        "preview": preview(build, [r["group"] for r in composition.get("source", [])]),
        "licenses": [r.as_dict() for r in build.licenses()],
    }
    return {**data, "summary": _summary(data)}


def _contamination(build: Build) -> dict[str, Any]:
    """The members checked against the protected sets as they are now (re-checked if they changed)."""
    from lineage.build.checks import leak_count

    check = build.contamination()
    check.pop("as_built", None)
    return {**check, "leak_count": leak_count(check)}


def _about(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "build_version", "size", "pool_size", "seed", "store_version", "spec_hash", "members_sha256",
            "created_at", "version")
    return {k: info[k] for k in keys}


def _quota(row: dict[str, Any]) -> dict[str, Any]:
    """`ok`: within the bounds; a missed target has a status of its own ("below target") and a note."""
    lo, hi, chosen, target = row["min"], row["max"], row["chosen"], row["target"]
    within = (lo is None or chosen >= lo) and (hi is None or chosen <= hi)
    if "status" in row:
        return {**row, "ok": within}
    # Builds made before targets were checked: judge them here the same way.
    status = "out of bounds" if not within else "within bounds" if target is None else (
        "on target" if chosen == target else "below target" if chosen < target else "above target")
    note = f"target {target:,}, chosen {chosen:,}" if status.endswith("target") and chosen != target else None
    return {**row, "status": status, "ok": within, "note": note}


def _shares(counts: dict[str, int], size: int) -> list[dict[str, Any]]:
    rows = [{"group": g, "count": n, "share": n / size if size else 0.0} for g, n in counts.items()]
    if all(r["group"].lstrip("-").isdigit() for r in rows):
        return sorted(rows, key=lambda r: int(r["group"]))  # generations in depth order
    return sorted(rows, key=lambda r: (-r["count"], r["group"]))


def funnel(store: StoreCore, info: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Samples ingested, then remaining after each filter's latest drops (cumulative, in the order the
    filters first ran), then the pool, then the build. A filter that ran but that the spec does not honour
    is a stage too, `honoured: false`, removing nothing: its drops stayed in the pool, and the report says so
    rather than leave it out silently."""
    at = store.at(info["store_version"])
    total = at.query("SELECT count(*) AS n FROM samples")["n"][0].as_py()
    note = f"all samples at store version {info['store_version']}"
    stages = [{"stage": "ingested", "remaining": total, "note": note, "honoured": True}]
    applied: list[str] = []
    honoured = _filters(at, spec)
    for name in _ran(at):
        if name not in honoured:
            drops = _undropped(at, []) - _undropped(at, [name])
            stages.append({"stage": f"{name} (not honoured)", "remaining": stages[-1]["remaining"], "honoured": False,
                           "note": f"ran, but the spec's pool.exclude_dropped_by leaves it out: its {drops:,} drops "
                                   "stayed in the pool"})
            continue
        applied.append(name)
        stages.append({"stage": f"after {name}", "remaining": _undropped(at, applied),
                       "note": f"latest decision of {name} is drop", "honoured": True})
    pool_note = "the spec's where and max generation; protected sets, their text and descendants excluded"
    stages.append({"stage": "pool", "remaining": info["pool_size"], "note": pool_note, "honoured": True})
    stages.append({"stage": "selected", "remaining": info["size"], "note": "members of the build", "honoured": True})
    stages[0]["removed"] = None
    for prev, stage in itertools.pairwise(stages):
        stage["removed"] = prev["remaining"] - stage["remaining"]
    return stages


DROPS_SQL = """
SELECT st.filter, s.source, count(*) FILTER (WHERE st.decision = 'drop') AS dropped, count(*) AS decided
FROM status st JOIN samples s USING (sample_id) WHERE list_contains(?, st.filter)
GROUP BY ALL HAVING count(*) FILTER (WHERE st.decision = 'drop') > 0 ORDER BY st.filter, dropped DESC, s.source
"""


def drops_by_source(store: StoreCore, info: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per honoured filter and source: the samples its latest decisions drop, of those it decided, and
    whether that is more than 90% of the source (rules that do not fit that data, e.g. quality's presets)."""
    from lineage.filters.run import DROP_WARNING

    at = store.at(info["store_version"])
    rows = at.query(DROPS_SQL, params=[_filters(at, spec)]).to_pylist()
    return [{**r, "share": r["dropped"] / r["decided"], "warn": r["dropped"] / r["decided"] > DROP_WARNING}
            for r in rows]


def _undropped(at: StoreCore, filters: list[str]) -> int:
    return at.query(
        "SELECT count(*) AS n FROM samples WHERE sample_id NOT IN "
        "(SELECT sample_id FROM status WHERE decision = 'drop' AND list_contains(?, filter))",
        params=[filters],
    )["n"][0].as_py()


def _ran(at: StoreCore) -> list[str]:
    return at.query("SELECT filter FROM runs GROUP BY filter ORDER BY min(version), filter")["filter"].to_pylist()


def _filters(at: StoreCore, spec: dict[str, Any]) -> list[str]:
    names = _ran(at)
    honoured = (spec.get("pool") or {}).get("exclude_dropped_by")
    if honoured is None:
        return names
    return [n for n in names if n in honoured or n in ALWAYS_EXCLUDED_FILTERS]


def preview(build: Build, order: list[str]) -> list[dict[str, Any]]:
    """A few member samples per source, largest source first (the first samples by sample id, which is a
    hash: effectively a random pick)."""
    with build.store.reader() as con:
        con.register("_members", build.member_ids())
        rows = con.sql(PREVIEW_SQL, params=[PREVIEW_CHARS, PREVIEW_PER_GROUP]).to_arrow_table().to_pylist()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        source = row.pop("source")
        row["truncated"] = row.pop("chars") > PREVIEW_CHARS
        row["text"] = row["text"] + ("…" if row["truncated"] else "")
        groups.setdefault(source, []).append(row)
    ranked = sorted(groups, key=lambda g: order.index(g) if g in order else len(order))
    return [{"group": g, "samples": groups[g]} for g in ranked[:PREVIEW_GROUPS]]


def _licences(mix: list[dict[str, Any]]) -> str:
    """How many licences, flagging the shares a trainer must check: non-commercial and unknown."""
    flags = [
        f"{sum(r['share'] for r in rows):.1%} {what}"
        for what, rows in (
            ("non-commercial", [r for r in mix if r["non_commercial"]]),
            ("unknown", [r for r in mix if r["license"] == "unknown"]),
        )
        if rows
    ]
    return f"{len(mix)}" + (f" ({', '.join(flags)})" if flags else "")


def _summary(data: dict[str, Any]) -> list[dict[str, str]]:
    about, comp, checks = data["build"], data["composition"], data["checks"]
    real = next((r["share"] for r in comp.get("origin", []) if r["group"] == "real"), 0.0)
    depths = [int(r["group"]) for r in comp.get("generation", []) if r["group"].lstrip("-").isdigit()]
    leaks = checks["leak_count"]
    values = {
        "samples": f"{about['size']:,}", "pool": f"{about['pool_size']:,}", "real": f"{real:.1%}",
        "sources": f"{len(comp.get('source', [])):,}", "max generation": str(max(depths)) if depths else "–",
        "quotas met": f"{sum(q['ok'] for q in data['quotas'])}/{len(data['quotas'])}",
        "targets missed": f"{sum(bool(q.get('note')) for q in data['quotas'])}",
        "stale filters": ", ".join(f"{k} {v:,}" for k, v in data["stale"].items()) or "none",
        "floors met": f"{sum(bool(f['met']) for f in data['floors'])}/{len(data['floors'])}",
        "contamination": ("not checked" if not checks["protected_sets"] else f"{leaks:,} leaking members" if leaks
                          else "not verified" if checks.get("unverified") else "clean"),
        "licences": _licences(data["licenses"]),
    }
    return [{"label": k, "value": v} for k, v in values.items()]
