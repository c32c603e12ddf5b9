"""The Ray executor of a filter run: Ray Data over the store's registered sample segments.

* `SampleFilter`: `map_batches` runs `decide` on the workers; each task checks its decisions, stamps them
  with the run and version, and stages them as a Parquet part under STORE/tmp/<run_id>/ (fsynced), then
  returns only the part's path, row count, checksum and tallies. The driver registers the parts in the
  run's one transaction, so a worker that dies leaves at most an unregistered file in tmp/.
* `SelectionFilter` with a distributed plan (`lineage.scaleout.plans`: near-dedup, semantic-dedup): the plan.
* any other `SelectionFilter`: `features` on the workers, `decide_all` on the driver, as locally.

The selection is read with `read_parquet` of the segment files as of the run's version; `--where` and
explicit ids are resolved to sample ids by the driver's catalog (only it has the views) and applied on
the workers as a semi-join.
"""

from __future__ import annotations

import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage import catalog
from lineage.errors import LineageError
from lineage.filters.base import Filter, FilterParams, SampleFilter, SelectionContext, SelectionFilter
from lineage.filters.events import BATCH_ROWS, Decided, Part, check, tally, write_events
from lineage.filters.executor import Progress
from lineage.scaleout.cluster import connect
from lineage.schemas import DECISIONS
from lineage.segments import file_sha256, fsync_path

if TYPE_CHECKING:
    from ray.data import Dataset

    from lineage.filters.run import Selection
    from lineage.store import Store


# Ray Data retries a task whose worker died forever by default; a batch that kills every worker must end.
TASK_RETRIES = 3

PARTS = pa.schema(
    [
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("sha256", pa.string()),
        ("counts", pa.string()),
        ("reasons", pa.string()),
    ]
)


def decide_on_ray(
    store: Store,
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
    staging = store.scratch_dir(run_id)  # removed by the run when it ends, committed or not
    with connect(address, workers) as ray:
        try:
            return _decide(
                ray, store, flt, selection, Context(store, run_id, version, staging, selection.count, workers, progress)
            )
        except ray.exceptions.RayError as exc:
            raise _one_line(flt.name, exc) from None


def _decide(ray: Any, store: Store, flt: Filter, selection: Selection, context: Context) -> Decided:
    from lineage.scaleout.plans import PLANS

    ds = read_selection(ray, store, selection)
    if isinstance(flt, SampleFilter):
        return stage(ds, _decide_batch, flt, context)
    if not isinstance(flt, SelectionFilter):
        raise LineageError(f"{type(flt).__name__} is neither a SampleFilter nor a SelectionFilter")
    plan = PLANS.get(flt.name)
    if plan is not None:
        return plan(ds, flt, context)
    return _reduce_on_driver(ds, flt, context)


def _one_line(name: str, exc: Exception) -> LineageError:
    """Ray's error as lineage's one line: a LineageError a worker raised as itself, others by first line."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, LineageError):
        return cause
    first = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip().splitlines()[0] if str(cause).strip() else ""
    return LineageError(
        f"filter {name} failed on Ray: {type(cause).__name__}: {first}; nothing was registered, run it again "
        f"(Ray's logs: /tmp/ray/session_latest/logs)"
    )


@dataclass(frozen=True)
class Context(SelectionContext):
    """What a distributed plan needs besides the dataset: where to stage parts, and how big the run is."""

    version: int
    staging: Path
    count: int
    workers: int | None
    progress: Progress | None


def read_selection(ray: Any, store: Store, selection: Selection) -> Dataset:
    with store.reader() as con:
        paths = catalog.segment_paths(con, store.root, "samples", store.as_of)
    ds = ray.data.read_parquet(paths).select_columns(selection.columns)
    if selection.where or selection.ids is not None:
        ds = ds.map_batches(_semi_join, fn_kwargs={"ids": selection.sample_ids()}, batch_format="pyarrow")
    return ds


def map_batches(ds: Dataset, fn: Any, **options: Any) -> Dataset:
    """`ds.map_batches` whose tasks are retried TASK_RETRIES times, not forever, when their worker dies."""
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        # max_retries has no named parameter yet (ray 2.60); the deprecated remote-args path is the only one.
        warnings.simplefilter("ignore", RayDeprecationWarning)
        if isinstance(fn, type):  # an actor pool: Ray Data bounds actor restarts itself
            return ds.map_batches(fn, **options)
        return ds.map_batches(fn, max_retries=TASK_RETRIES, **options)


def tasks(workers: int | None, count: int) -> int | None:
    """At most one task per batch (Ray warns of a concurrency it cannot use); Ray's default when unset."""
    return None if workers is None else max(1, min(workers, -(-count // BATCH_ROWS)))


def cluster_cpus(workers: int | None) -> int:
    """`workers`, or else the CPUs of the Ray cluster."""
    import ray

    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def _semi_join(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["sample_id"], value_set=ids))


def stage(ds: Dataset, decide: Any, flt: Filter, context: Context, **kwargs: Any) -> Decided:
    """Map `decide(flt, batch, **kwargs)` over the dataset on the workers, staging one events part per batch."""
    parts = map_batches(
        ds,
        _stage_batch,
        batch_size=BATCH_ROWS,
        batch_format="pyarrow",
        concurrency=tasks(context.workers, context.count),
        fn_kwargs={
            "decide": decide,
            "cls": type(flt),
            "params": flt.params,
            "staging": str(context.staging),
            "run_id": context.run_id,
            "version": context.version,
            "kwargs": kwargs,
        },
    )
    rows: list[dict[str, Any]] = []
    total = -(-context.count // BATCH_ROWS)
    for batch in parts.iter_batches(batch_format="pyarrow", batch_size=None):
        rows.extend(batch.to_pylist())
        if context.progress:
            context.progress(min(total, -(-sum(r["rows"] for r in rows) // BATCH_ROWS)), total)
    return Decided.of_parts(rows, context.run_id)


def _stage_batch(
    batch: pa.Table,
    decide: Any,
    cls: type[Filter],
    params: FilterParams,
    staging: str,
    run_id: str,
    version: int,
    kwargs: dict[str, Any],
) -> pa.Table:
    if batch.num_rows == 0:
        return PARTS.empty_table()
    flt = cls(params)
    decisions = decide(flt, batch, **kwargs)
    check(flt.name, decisions, batch.num_rows)
    if not pc.all(pc.is_in(decisions["sample_id"], value_set=batch["sample_id"])).as_py():
        raise LineageError(f"filter {flt.name} returned decisions for samples it was not given")
    path = Path(staging) / f"part-{uuid.uuid4().hex}.parquet"
    write_events(path, decisions, run_id, version)
    fsync_path(path)
    counts, reasons = tally(decisions)
    part = Part(str(path), decisions.num_rows, file_sha256(path))
    return pa.Table.from_pylist([part.to_row(counts, reasons)], schema=PARTS)


def _decide_batch(flt: SampleFilter, batch: pa.Table) -> pa.Table:
    out = [flt.decide(b) for b in batch.combine_chunks().to_batches()]
    return pa.Table.from_batches(out, schema=DECISIONS)


def collect(ds: Dataset, empty: pa.Schema | None = None) -> pa.Table:
    """The dataset on the driver, in sample_id order (the order the local engine reads the selection in);
    `empty` is the schema of a dataset without sample_id, returned unsorted."""
    import ray

    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if empty is not None:
        return pa.concat_tables(tables).cast(empty) if tables else empty.empty_table()
    if not tables:
        return pa.table({"sample_id": pa.array([], pa.string())})
    return pa.concat_tables(tables, promote_options="permissive").sort_by("sample_id")


def _features(batch: pa.Table, cls: type[SelectionFilter], params: FilterParams) -> pa.Table:
    flt = cls(params)
    out = [flt.features(b) for b in batch.combine_chunks().to_batches()]
    return pa.Table.from_batches(out) if out else batch


def _reduce_on_driver(ds: Dataset, flt: SelectionFilter, context: Context) -> Decided:
    mapped = ds
    if type(flt).features is not SelectionFilter.features:
        mapped = map_batches(
            ds,
            _features,
            batch_size=BATCH_ROWS,
            batch_format="pyarrow",
            concurrency=tasks(context.workers, context.count),
            fn_kwargs={"cls": type(flt), "params": flt.params},
        )
    features = collect(mapped)
    table = flt.decide_all(features, context).cast(DECISIONS)
    check(flt.name, table, context.count)
    return Decided.of_table(table, context.run_id)
