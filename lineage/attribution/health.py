"""Data-side health of each group: diversity, distance to real, tail coverage, near-duplicates, filter
drops and generation depth. Recorded `metrics` rows are reused when they cover every group; otherwise the
text metrics are computed on a small seeded sample (nothing is written)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

DIVERSITY = ("distinct_2", "self_bleu", "tail_coverage", "js_divergence", "near_dup_rate")
SAMPLE_SIZE = 200

COUNTS_SQL = """
SELECT CAST({dim} AS VARCHAR) AS grp, count(*) AS samples, avg(generation) AS mean_generation,
       bool_and(origin = 'real') AS real,
       count(*) FILTER (WHERE sample_id IN (SELECT sample_id FROM status WHERE decision = 'drop')) AS dropped
FROM samples GROUP BY 1
"""

RECORDED_SQL = """
SELECT group_key, metric, value, version FROM metrics
WHERE scope = 'samples' AND group_by = ? AND json_extract_string(config, '$.where') IS NULL
  AND json_extract_string(config, '$.sample_ids_sha256') IS NULL
  AND json_extract_string(config, '$.reference') = 'origin = ''real'''
QUALIFY row_number() OVER (PARTITION BY group_key, metric ORDER BY version DESC) = 1
"""


def group_health(store: StoreCore, by: str, groups: list[str]) -> tuple[dict[str, dict[str, Any]], str]:
    """Health values per group (keys: the groups), and where the diversity values came from."""
    rows = {r["grp"]: r for r in store.query(COUNTS_SQL.format(dim=by)).to_pylist()}
    out = {g: _base(rows.get(g)) for g in groups}
    values, origin = _recorded(store, by, groups)
    if values is None:
        # Equal subsample sizes: distinct-n falls and tail coverage rises with more text.
        size = max(2, min([SAMPLE_SIZE, *(out[g]["samples"] for g in groups if out[g]["samples"] >= 2)]))
        values, origin = _computed(store, by, size)
    for g in groups:
        out[g].update(values.get(g, {}))
    return out, origin


def _base(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"samples": 0, "real": False, "mean_generation": None, "drop_rate": None}
    rate = row["dropped"] / row["samples"] if row["samples"] else None
    return {
        "samples": row["samples"],
        "real": bool(row["real"]),
        "mean_generation": row["mean_generation"],
        "drop_rate": rate,
    }


def _key(group_key: str, by: str) -> str:
    value = json.loads(group_key).get(by)
    return str(value)


def _recorded(store: StoreCore, by: str, groups: list[str]) -> tuple[dict[str, dict[str, Any]] | None, str]:
    found: dict[str, dict[str, Any]] = {}
    for r in store.query(RECORDED_SQL, params=[by]).to_pylist():
        found.setdefault(_key(r["group_key"], by), {})[r["metric"]] = r["value"]
    text = [m for m in DIVERSITY if m != "near_dup_rate"]
    if all(m in found.get(g, {}) for g in groups for m in text):
        return found, "recorded `lineage diversity` values (latest per group and metric)"
    return None, ""


def _computed(store: StoreCore, by: str, size: int) -> tuple[dict[str, dict[str, Any]], str]:
    from lineage.diversity import diversity

    result = diversity(store, by=[by], metrics=list(DIVERSITY), sample_size=size, draws=1, record=False)
    out = {str(row[by]): {m: row[m] for m in DIVERSITY} for row in result.table.to_pylist()}
    return (
        out,
        f"computed now on {size} samples per group (the smallest group's size, at most {SAMPLE_SIZE}), "
        "one draw, not recorded",
    )


def reference_values(health: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over the groups made only of real data: what 'healthy' looks like here."""
    real = [h for h in health.values() if h.get("real")]
    out = {}
    for metric in DIVERSITY:
        values = [h[metric] for h in real if h.get(metric) is not None]
        if values:
            out[metric] = sum(values) / len(values)
    return out
