"""The filter contract: pure functions over Arrow record batches, a registry, and parameter parsing.

Two kinds of filter:

* `SampleFilter.decide(batch)` judges each sample on its own (quality, sql): the executor maps it over
  batches in parallel.
* `SelectionFilter` needs the whole selection (dedup, contamination): `features(batch)` is the pure,
  parallel map phase (e.g. MinHash signatures), `decide_all(features, context)` the reduce phase.

Both return record batches of `DECISIONS`: sample_id, decision (keep|drop|flag), score, reason (short
snake_case), related_id (the duplicate kept instead, the held-out item matched), cluster_id.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from lineage.errors import LineageError, NotFound, UsageError, option
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

# Columns every filter may read; a filter names the ones it needs in `columns`.
BASE_COLUMNS = ("sample_id", "origin", "generation", "version", "input_row", "content_hash")


class FilterParams(BaseModel):
    """Base of every filter's parameters: unknown keys are errors, values are coerced from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter:
    """Shared by both kinds. Subclasses set name, version, Params, columns and a one-line doc."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: ClassVar[type[FilterParams]] = FilterParams
    columns: ClassVar[tuple[str, ...]] = ("text",)

    def __init__(self, params: FilterParams) -> None:
        self.params = params

    def context_key(self, store: StoreCore) -> str:
        """Store state, besides the selection, that the decisions depend on (e.g. protected sets)."""
        return ""

    def prepare(self, store: StoreCore) -> None:
        """Load what the filter needs from the store on the driver before the batches run."""
        return None


class SampleFilter(Filter):
    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise NotImplementedError


@dataclass(frozen=True)
class SelectionContext:
    """What the reduce phase of a selection filter may use besides the features."""

    store: StoreCore
    run_id: str


class SelectionFilter(Filter):
    # True when `decide_bounded` spills to a scratch database: a selection that surely fits in memory is then
    # decided by `decide_all` instead, as its fixed costs would outweigh the work (see lineage.filters.run).
    spills: ClassVar[bool] = False

    def features(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Pure per-batch map; its output batches are concatenated for `decide_all`."""
        return batch

    def decide_all(self, features: pa.Table, context: SelectionContext) -> pa.Table:
        raise NotImplementedError

    def decide_new(self, features: pa.Table, prior: Any, context: SelectionContext) -> pa.Table:
        """Incremental reduce: decide the new samples (`features`) against those decided before with the same
        params (`prior`, a `lineage.filters.incremental.Prior`). May also return decisions of earlier samples:
        those whose decision the new ones change (only the changes are recorded). Filters that do not override it
        run over their whole scope."""
        raise NotImplementedError


REGISTRY: dict[str, type[Filter]] = {}


def register(cls: type[Filter]) -> type[Filter]:
    REGISTRY[cls.name] = cls
    return cls


# The built-in filters' modules (under lineage.filters), each imported when its filter is first named: importing
# them all costs ~30 ms, a tenth of a short command. tests/test_startup.py checks this map against builtin.py.
BUILTINS = {
    "contamination": "contamination",
    "exact-dedup": "exact_dedup",
    "near-dedup": "near_dedup",
    "quality": "quality",
    "semantic-dedup": "semantic_dedup",
    "sql": "sql_filter",
    "takedown": "takedown",
}


def filter_class(name: str, module: str | None = None) -> type[Filter]:
    """A registered filter, or a user filter `package.module:ClassName`. A built-in filter's module is imported
    by name (`BUILTINS`), the way a user filter's is: this module stays below the filters it registers."""
    if module:
        return _load_user_filter(module)
    if name in BUILTINS:
        importlib.import_module(f"lineage.filters.{BUILTINS[name]}")  # registers on import
    if name not in REGISTRY:
        available = ", ".join(sorted({*BUILTINS, *REGISTRY}))
        raise NotFound("filter", name, f"unknown filter `{name}`; available: {available}")
    return REGISTRY[name]


def _load_user_filter(spec: str) -> type[Filter]:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise LineageError(f"{option('module')} must look like package.module:ClassName, got `{spec}`")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise LineageError(f"cannot load filter `{spec}`: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, SampleFilter | SelectionFilter)):
        raise LineageError(f"`{spec}` is not a lineage SampleFilter or SelectionFilter subclass")
    return cls


def parse_params(cls: type[Filter], raw: dict[str, Any]) -> FilterParams:
    """Validate params; errors name the param and what it accepts, in one line."""
    # Excluded fields are set by the filter itself (e.g. quality's resolved presets), never by a user.
    fields = [name for name, f in cls.Params.model_fields.items() if not f.exclude]
    allowed = ", ".join(fields) or "none"
    for key in raw:
        if key not in fields:
            raise UsageError("params", key, message=f"unknown param `{key}` for filter {cls.name}; allowed: {allowed}")
    try:
        return cls.Params(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "params"
        raise LineageError(f"param `{key}` of filter {cls.name}: {err['msg']}, got {err['input']!r}") from None


def slug(reason: str | None) -> str | None:
    """Free-text reasons become short snake_case, as every reason in the log is."""
    if reason is None:
        return None
    text = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")[:64]
    return text or None



def canonical(params: FilterParams) -> tuple[str, str]:
    """Canonical JSON of params and its sha256 (feature caches and re-run checks key on it)."""
    text = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


def decisions(
    sample_ids: pa.Array | Sequence[str],
    decision: Sequence[str] | str,
    *,
    score: Sequence[float | None] | None = None,
    reason: Sequence[str | None] | None = None,
    related_id: Sequence[str | None] | None = None,
    cluster_id: Sequence[str | None] | None = None,
) -> pa.RecordBatch:
    """Build a DECISIONS batch; scalars broadcast."""
    n = len(sample_ids)

    def col(values: Any, default: Any = None) -> list[Any]:
        if values is None or isinstance(values, str):
            return [values if values is not None else default] * n
        return list(values)

    return pa.RecordBatch.from_pydict(
        {
            "sample_id": sample_ids,
            "decision": col(decision),
            "score": col(score),
            "reason": col(reason),
            "related_id": col(related_id),
            "cluster_id": col(cluster_id),
        },
        schema=DECISIONS,
    )


MARK_SQL = """
SELECT f.sample_id, CASE WHEN h.sample_id IS NULL THEN 'keep' ELSE $decision END AS decision,
    CAST(NULL AS DOUBLE) AS score, CASE WHEN h.sample_id IS NULL THEN NULL ELSE $reason END AS reason,
    h.related AS related_id, h.related AS cluster_id
FROM features f LEFT JOIN (SELECT sample_id, min(related) AS related FROM hits GROUP BY 1) h USING (sample_id)
ORDER BY 1
"""


def mark(features: pa.Table, hits: pa.Table, *, decision: str, reason: str) -> pa.Table:
    """`decision` with `reason` for the selected samples among `hits` (sample_id[, related]); keep the rest."""
    import duckdb

    if "related" not in hits.column_names:
        hits = hits.append_column("related", pa.nulls(hits.num_rows, pa.string()))
    con = duckdb.connect()
    try:
        con.register("features", features)
        con.register("hits", hits)
        return con.sql(MARK_SQL, params={"decision": decision, "reason": reason}).to_arrow_table()
    finally:
        con.close()


# Keep policy shared by every dedup filter: real before synthetic, lower generation, earliest ingested.
KEEP_ORDER_SQL = "(origin <> 'real'), generation, version, input_row, sample_id"


def keep_order_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["origin"] != "real", row["generation"], row["version"], row["input_row"], row["sample_id"])


Describe = Callable[[type[Filter]], str]
