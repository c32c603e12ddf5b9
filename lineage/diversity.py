"""Diversity per group of samples, compared with the real reference, recorded in the `metrics` table.

Everything is read as of one store version (recorded as `store_version`), so a result names the data it
describes. The formulas are in `lineage.metrics.text` and `lineage.metrics.embedding`; subsampling is in
`lineage.metrics.compute`. Near-duplicate rates come from the decision log: near-dedup is never run here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

import pyarrow as pa

from lineage.errors import LineageError, UsageError, option
from lineage.inspect import STAT_DIMENSIONS
from lineage.metrics import METRICS, resolve
from lineage.metrics.compute import (
    Embedder,
    GroupResult,
    Params,
    Reference,
    compute_group,
    draw_indices,
    embed_rows,
    key_json,
)
from lineage.metrics.jobs import Job, Measured, check_tail, group_frames, no_reference, nothing_selected

if TYPE_CHECKING:
    import polars as pl

    from lineage.core.handle import StoreCore
    from lineage.progress import Progress

DEFAULT_REFERENCE = "origin = 'real'"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
NEAR_DEDUP = "near-dedup"
ENGINES = ("local", "ray")
METRICS_VERSION = 1  # bump when a formula changes, so old recorded values get a different config hash


@dataclass(frozen=True)
class DiversityResult:
    """`table`: one row per group (dimensions, samples, n_samples, draws, metrics, then `<metric>_spread`)."""

    table: pa.Table
    metrics: list[str]
    by: list[str]
    config: dict[str, Any]
    config_hash: str
    store_version: int
    notes: list[str] = field(default_factory=list)
    metric_run_id: str | None = None  # set when recorded
    recorded_version: int | None = None

    def summary(self) -> str:
        if self.metric_run_id is None:
            return f"not recorded (store version {self.store_version}, config {self.config_hash[:12]})"
        return (
            f"recorded as metric run {self.metric_run_id} (version {self.recorded_version}, computed on store "
            f"version {self.store_version}, config {self.config_hash[:12]})"
        )


class DiversityFields(TypedDict, total=False):
    """The keyword options of `diversity` a caller gives (`Store.diversity`); their defaults and meaning are there
    (`scope` is the evals' own)."""

    by: Sequence[str]
    where: str | None
    sample_ids: Sequence[str] | pa.Array | None
    build: str | None
    metrics: str | Sequence[str] | None
    reference: str
    sample_size: int
    draws: int
    seed: int
    record: bool
    embed: Embedder | None
    embedding_model: str
    engine: str
    workers: int | None
    ray_address: str | None
    progress: Progress | None


def diversity(
    store: StoreCore,
    *,
    by: Sequence[str] = (),
    where: str | None = None,
    sample_ids: Sequence[str] | pa.Array | None = None,
    build: str | None = None,
    metrics: str | Sequence[str] | None = None,
    reference: str = DEFAULT_REFERENCE,
    sample_size: int = 1000,
    draws: int = 5,
    seed: int = 0,
    record: bool = True,
    embed: Embedder | None = None,
    embedding_model: str = DEFAULT_MODEL,
    scope: str = "samples",
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> DiversityResult:
    """Diversity metrics per group of `by` over the samples selected by `where` and `sample_ids` or `build`.

    `metrics`: names or sets (default: text metrics and near_dup_rate; "all" adds embedding metrics).
    `build`: NAME or NAME@vN, whose members are the selection (recorded with scope `build:NAME@vN`).
    `embed(sample_ids, texts) -> matrix` replaces the cached sentence-transformers embeddings.
    `engine`: "local" (this process) or "ray" (`lineage.engines.ray.metrics`: the same values, the selection and
    the reference read on a Ray cluster at `ray_address`, or a local one of `workers` CPUs).
    `progress(done, total)` counts the groups measured (on Ray: all at once, when they are).
    """
    names, dims, params = resolve(metrics), _check_by(by), _params(sample_size, draws, seed)
    _check_engine(engine, workers, ray_address)
    view = store if store.as_of is not None else store.at(store.version)
    if build is not None:
        sample_ids, scope = _build_members(view, build, sample_ids)
    wanted = None if sample_ids is None else pa.array(sample_ids, pa.string())
    job = Job(store, view, dims, where, wanted, names, params, reference, embed, embedding_model)
    notes: list[str] = []
    if engine == "ray":
        from lineage.engines.ray.metrics import measure_on_ray

        frame, dim_fields, groups = measure_on_ray(job, notes, workers=workers, address=ray_address)
        if progress is not None:
            progress(len(groups), len(groups))
    else:
        frame, dim_fields, groups = _measure(job, notes, progress)
    if "near_dup_rate" in names:
        _near_dups(view, groups, frame, dims, notes)
    notes += _whole_groups(groups, params)
    config = _config(params, where, reference, sample_ids, embedding_model)
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    result = DiversityResult(_table(groups, dim_fields, names), names, dims, config, config_hash, view.version, notes)
    return _record(store, result, groups, scope, engine) if record else result


def _measure(job: Job, notes: list[str], progress: Progress | None = None) -> Measured:
    """The local engine: the selection's texts and the reference's in this process."""
    frame, dim_fields = _load(job.view, job.dims, job.where, job.ids)
    if frame.height == 0:
        raise nothing_selected(job.where)
    embedder = job.embedder(notes)
    frame, ref = _reference(job.view, frame, job.reference, job.names, job.params, embedder, notes)
    parts = list(group_frames(frame, job.dims))
    groups: list[GroupResult] = []
    for key, part in parts:
        if progress is not None:
            progress(len(groups), len(parts))
        groups.append(compute_group(key, part, job.names, ref, job.params, embedder))
    if progress is not None:
        progress(len(groups), len(parts))
    return frame, dim_fields, groups



def _check_engine(engine: str, workers: int | None, address: str | None) -> None:
    """The engine options as `lineage filter run` takes them (`--workers` counts Ray tasks only here)."""
    from lineage.engines.ray.cluster import check_engine

    check_engine(engine, ENGINES, workers, address)
    if workers is not None and engine != "ray":
        raise LineageError(
            f"{option('workers')} goes with {option('engine', 'ray')} (the local engine runs in this process)"
        )


def _build_members(view: StoreCore, ref: str, sample_ids: Any) -> tuple[pa.Array, str]:
    """A build's member ids, as a selection like any other, and its scope."""
    from lineage.build.record import BuildRecord

    if sample_ids is not None:
        raise LineageError("give a build or sample ids, not both")
    found = BuildRecord.parse(view, ref)
    return found.member_ids()["sample_id"].combine_chunks(), f"build:{found.name}@v{found.version}"


def _check_by(by: Sequence[str]) -> list[str]:
    dims = [d.strip() for d in by if d.strip()]
    unknown = [d for d in dims if d not in STAT_DIMENSIONS]
    if unknown:
        raise LineageError(f"cannot group by `{unknown[0]}`; choose from {', '.join(STAT_DIMENSIONS)}")
    return list(dict.fromkeys(dims))


def _params(sample_size: int, draws: int, seed: int) -> Params:
    if sample_size < 2:
        raise UsageError("sample_size", sample_size, ": must be at least 2")
    if draws < 1:
        raise UsageError("draws", draws, ": must be at least 1")
    return Params(sample_size=sample_size, draws=draws, seed=seed)


def _load(
    view: StoreCore, dims: list[str], where: str | None, ids: pa.Array | None
) -> tuple[pl.DataFrame, list[pa.Field]]:
    """The selection's sample_id, text, dimensions and tokens, ordered by sample_id."""
    import polars as pl

    from lineage.core.selection import Selection
    from lineage.metrics.text import token_expr

    selection = Selection(view, where, ["sample_id", "text", *dims], ids)
    batches = list(selection.batches())
    table = pa.Table.from_batches(batches) if batches else None
    fields = [table.schema.field(d) if table is not None else pa.field(d, pa.string()) for d in dims]
    if table is None:
        return pl.DataFrame(schema={"sample_id": pl.String, "text": pl.String}), fields
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(tokens=token_expr("text")), fields


def _reference(
    view: StoreCore,
    frame: pl.DataFrame,
    sql: str,
    names: list[str],
    params: Params,
    embedder: Embedder | None,
    notes: list[str],
) -> tuple[pl.DataFrame, Reference]:
    """The selection with token ids instead of tokens, and the reference with ids from the same vocabulary."""
    from lineage.metrics.compute import reference_of
    from lineage.metrics.text import encode_columns

    wanted = [n for n in names if METRICS[n].reference]
    ref_frame = _load(view, [], sql, None)[0] if wanted else None
    if ref_frame is not None and ref_frame.height == 0:
        notes.append(no_reference(sql, wanted))
        ref_frame = None
    columns, vocab = encode_columns(frame["tokens"], *([] if ref_frame is None else [ref_frame["tokens"]]))
    frame = frame.with_columns(ids=columns[0]).drop("tokens")
    if ref_frame is None:
        return frame, Reference.none()
    ref = reference_of(columns[1], vocab, params)
    check_tail(ref, names, params, notes)
    if "frechet_distance" in names and embedder is not None:
        # One fixed reference sample of the same size as the groups': the groups' draws give the spread.
        ref.vectors = embed_rows(ref_frame, draw_indices(ref_frame.height, "reference", params)[0], embedder)
    return frame, ref


def _near_dups(
    view: StoreCore, groups: list[GroupResult], frame: pl.DataFrame, dims: list[str], notes: list[str]
) -> None:
    """Share of each group's samples whose latest near-dedup decision is `drop`, among those it decided."""
    never = view.query("SELECT count(*) AS n FROM runs WHERE filter = ?", params=[NEAR_DEDUP])["n"][0].as_py() == 0
    if never:
        notes.append(f"near_dup_rate is null: {NEAR_DEDUP} has not been run (lineage filter run {NEAR_DEDUP})")
        return
    decided = view.sql_polars(
        "SELECT sample_id, decision = 'drop' AS dropped FROM status WHERE filter = ?", params=[NEAR_DEDUP]
    )
    seen = frame.select("sample_id", *dims).join(decided, on="sample_id", how="inner")
    parts = {key_json(key): part for key, part in group_frames(seen, dims)}
    for g in groups:
        part = parts.get(key_json(g.key))
        if part is not None and part.height:
            g.values["near_dup_rate"] = (float(part["dropped"].cast(float).mean()), None, part.height)
    undecided = [_label(g.key) for g in groups if "near_dup_rate" not in g.values]
    if undecided:
        notes.append(f"near_dup_rate is null where {NEAR_DEDUP} decided no sample: {', '.join(undecided)}")


def _label(key: dict[str, Any]) -> str:
    return "/".join(str(v) for v in key.values()) or "all samples"


def _whole_groups(groups: list[GroupResult], params: Params) -> list[str]:
    whole = [f"{_label(g.key)} ({g.samples:,})" for g in groups if g.samples <= params.sample_size]
    if not whole:
        return []
    return [f"used whole in one draw, having at most --sample-size {params.sample_size:,}: {', '.join(whole)}"]


def _config(params: Params, where: str | None, reference: str, ids: Any, model: str) -> dict[str, Any]:
    """What the values depend on besides the store version; the metric list is not part of it."""
    ids_hash = None
    if ids is not None:
        ids_hash = hashlib.sha256("\n".join(sorted(pa.array(ids, pa.string()).to_pylist())).encode()).hexdigest()
    return {
        "metrics_version": METRICS_VERSION,
        **params.config(),
        "where": where,
        "sample_ids_sha256": ids_hash,
        "reference": reference,
        "embedding_model": model,
        "near_dup_filter": NEAR_DEDUP,
    }


def _table(groups: list[GroupResult], dim_fields: list[pa.Field], names: list[str]) -> pa.Table:
    counts = [pa.field(c, pa.int64()) for c in ("samples", "n_samples", "draws")]
    values = [pa.field(n, pa.float64()) for n in names] + [pa.field(f"{n}_spread", pa.float64()) for n in names]
    rows = []
    for g in groups:
        row: dict[str, Any] = {**g.key, "samples": g.samples, "n_samples": g.n_samples, "draws": g.draws}
        row |= {n: g.values.get(n, (None, None, 0))[0] for n in names}
        row |= {f"{n}_spread": g.values.get(n, (None, None, 0))[1] for n in names}
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=pa.schema([*dim_fields, *counts, *values]))


def _record(
    store: StoreCore, result: DiversityResult, groups: list[GroupResult], scope: str, engine: str
) -> DiversityResult:
    """Commit every defined value as one version (scripts and reports reuse them by config hash); the engine
    goes in the commit's summary only: the values do not depend on it, so it is not in the config hash."""
    from dataclasses import replace

    from lineage.core.ids import uuid7

    if store.as_of is not None:
        return replace(result, notes=[*result.notes, f"not recorded: the store is opened --as-of {store.as_of}"])
    run_id = uuid7()
    rows = _metric_rows(result, groups, run_id, scope)
    if rows.num_rows == 0:
        return replace(result, notes=[*result.notes, "not recorded: no metric has a value"])
    summary = {"metric_run_id": run_id, "groups": len(groups), "values": rows.num_rows, "by": ",".join(result.by)}
    summary["engine"] = engine
    with store.transaction("diversity", run_id, summary) as txn:
        txn.add_rows("metrics", rows)
    return replace(result, metric_run_id=run_id, recorded_version=txn.version)


def _metric_rows(result: DiversityResult, groups: list[GroupResult], run_id: str, scope: str) -> pa.Table:
    from lineage.schemas import METRICS as SCHEMA

    config = json.dumps(result.config, sort_keys=True)
    now, group_by = datetime.now(UTC), ",".join(result.by)
    common = {"metric_run_id": run_id, "scope": scope, "group_by": group_by, "config": config}
    common |= {"config_hash": result.config_hash, "store_version": result.store_version, "computed_at": now}
    # `version` is a placeholder: the commit stamps every row with its own version.
    rows = [
        {
            **common,
            "group_key": key_json(g.key),
            "metric": name,
            "value": value,
            "spread": spread,
            "n_samples": n,
            "version": 0,
        }
        for g in groups
        for name, (value, spread, n) in g.values.items()
        if value is not None
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)
