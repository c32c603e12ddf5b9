"""The Ray executor of a filter run: Ray Data over the store's registered sample segments.

* `SampleFilter`: `map_batches` runs `decide` on the workers; each task checks its decisions, stamps them
  with the run and version, and stages them as a Parquet part under tmp/<run_id>/ of the data location
  (fsynced on POSIX, one PUT on object storage), then
  returns only the part's path, row count, checksum and tallies. The driver registers the parts in the
  run's one transaction, so a worker that dies leaves at most an unregistered file in tmp/.
* `SelectionFilter` with a distributed plan (`lineage.engines.ray.plans`: near-dedup, semantic-dedup): the plan.
* any other `SelectionFilter`: `features` on the workers, `decide_all` on the driver, as locally.

The selection is read from the segment files as of the run's version (`source.SegmentSource`); `--where` and
explicit ids are resolved to sample ids by the driver's catalog (only it has the views) and applied on
the workers as a semi-join.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.location import Location
from lineage.engines.local import Progress
from lineage.errors import LineageError
from lineage.filters.base import Filter, FilterParams, SampleFilter, SelectionContext, SelectionFilter
from lineage.filters.events import BATCH_ROWS, Decided, Part, check, tally, write_events
from lineage.schemas import DECISIONS, SAMPLES

if TYPE_CHECKING:
    from ray.data import Dataset

    from lineage.core.selection import Selection


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


@dataclass(frozen=True)
class Context(SelectionContext):
    """What a distributed plan needs besides the dataset: where to stage parts, and how big the run is."""

    version: int
    staging: str  # relative to the data location's base
    count: int
    workers: int | None
    progress: Progress | None


def read_selection(ray: Any, selection: Selection, workers: int | None) -> Dataset:
    """The selection's columns on the workers (`workers`: the run's, see `cluster_cpus`)."""
    ds = read_segments(ray, selection, selection.columns, workers)
    if selection.where or selection.ids is not None:
        ds = map_batches(ds, _semi_join, fn_kwargs={"ids": selection.sample_ids()}, batch_format="pyarrow")
    return ds


def read_segments(ray: Any, selection: Selection, columns: list[str], workers: int | None) -> Dataset:
    """`columns` of every sample segment the selection's version reads (no `--where` applied)."""
    from lineage.engines.ray.source import SegmentSource

    data = selection.store.data
    files = [f._replace(path=data.path(f.path)) for f in selection.segment_files()]
    # A few read tasks per CPU (each yields a block per row group): Ray Data's default of at least 200 blocks
    # splits a small selection's blocks, and every block is a task in each shuffle after it (near-dedup of
    # 200,000 documents: 27-34 s against 8-9 s).
    tasks = 2 * cluster_cpus(workers)
    return ray.data.read_datasource(SegmentSource(files, columns, data.fs, SAMPLES), override_num_blocks=tasks)


def map_batches(ds: Dataset, fn: Any, **options: Any) -> Dataset:
    """`ds.map_batches` whose tasks are retried TASK_RETRIES times, not forever, when their worker dies."""
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        # max_retries has no named parameter yet (ray 2.60); the deprecated remote-args path is the only one.
        warnings.simplefilter("ignore", RayDeprecationWarning)
        if isinstance(fn, type):  # an actor pool: Ray Data bounds actor restarts itself
            return ds.map_batches(fn, **options)
        return ds.map_batches(fn, max_retries=TASK_RETRIES, **options)


def per_batch(ds: Dataset, fn: Any, context: Context, **fn_kwargs: Any) -> Dataset:
    """`fn(batch, **fn_kwargs)` on the workers over batches of BATCH_ROWS, as many at once as `--workers`."""
    return map_batches(
        ds,
        fn,
        batch_size=BATCH_ROWS,
        batch_format="pyarrow",
        concurrency=tasks(context.workers, context.count),
        fn_kwargs=fn_kwargs,
    )


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
    parts = per_batch(
        ds,
        _stage_batch,
        context,
        decide=decide,
        cls=type(flt),
        params=flt.params,
        location=context.store.data,
        staging=context.staging,
        run_id=context.run_id,
        version=context.version,
        kwargs=kwargs,
    )
    rows: list[dict[str, Any]] = []
    done = 0
    for batch in parts.iter_batches(batch_format="pyarrow", batch_size=None):
        rows.extend(batch.to_pylist())
        done += pc.sum(batch["rows"]).as_py() or 0
        if context.progress:  # in samples, as the local engine reports them
            context.progress(min(context.count, done), context.count)
    return Decided.of_parts(rows, context.run_id)


def _stage_batch(
    batch: pa.Table,
    decide: Any,
    cls: type[Filter],
    params: FilterParams,
    location: Location,
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
    rel = f"{staging}/part-{uuid.uuid4().hex}.parquet"
    _, sha256 = location.stage(rel, lambda sink: write_events(sink, decisions, run_id, version))
    counts, reasons = tally(decisions)
    part = Part(rel, decisions.num_rows, sha256)
    return pa.Table.from_pylist([part.to_row(counts, reasons)], schema=PARTS)


def decide_batch(flt: SampleFilter, batch: pa.Table) -> pa.Table:
    return pa.Table.from_batches(_each_record_batch(flt.decide, batch), schema=DECISIONS)


def _each_record_batch(method: Any, batch: pa.Table) -> list[pa.RecordBatch]:
    """A filter's per-batch method over a Ray block (a table), one record batch at a time."""
    return [method(b) for b in batch.combine_chunks().to_batches()]


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
    out = _each_record_batch(cls(params).features, batch)
    return pa.Table.from_batches(out) if out else batch


def reduce_on_driver(ds: Dataset, flt: SelectionFilter, context: Context) -> Decided:
    mapped = ds
    if type(flt).features is not SelectionFilter.features:
        mapped = per_batch(ds, _features, context, cls=type(flt), params=flt.params)
    features = collect(mapped)
    table = flt.decide_all(features, context).cast(DECISIONS)
    check(flt.name, table, context.count)
    return Decided.of_table(table, context.run_id)
