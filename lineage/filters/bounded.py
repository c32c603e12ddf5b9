"""What the out-of-core filter runs share: their context, and decisions staged from DuckDB in batches.

A filter that decides out of core (`decide_bounded(selection, run)`, see `lineage.filters.near_dedup_bounded`
and `lineage.filters.exact_dedup`) leaves its decisions in a table of its scratch DuckDB database
(`lineage.filters.spill`); `stage_events` counts them there, and streams them, ordered by sample_id, into one
events part under the run's staging folder, which the run registers at commit like a Ray worker's part. Nothing
the size of the selection is held in Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.ids import uuid7
from lineage.core.segments import write_parquet
from lineage.errors import LineageError
from lineage.filters.events import Decided, stamp
from lineage.schemas import DECISIONS, EVENTS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore, Transaction

Progress = Callable[[int, int | None], None]
EVENT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class BoundedRun:
    """What an out-of-core reduce needs besides its selection: where and as what version its decisions go."""

    store: StoreCore
    run_id: str
    version: int
    memory_limit: str
    progress: Progress | None = None


def stage_events(con: Any, run: BoundedRun, table: str, n: int) -> Decided:
    """The decisions in DuckDB table `table` (the DECISIONS columns and `source`), one per selected sample (`n`),
    checked, counted and staged as one events part."""
    rows, distinct = con.sql(f"SELECT count(*), count(DISTINCT sample_id) FROM {table}").fetchall()[0]
    if rows != n or distinct != n:
        raise LineageError(f"the filter returned {rows:,} decisions ({distinct:,} samples) for {n:,} selected samples")
    counts: Counter[str] = Counter({"keep": 0, "drop": 0, "flag": 0})
    reasons: Counter[str] = Counter()
    by_source = []
    query = (
        f"SELECT source, decision, split_part(reason, ':', 1) AS reason, count(*) AS n FROM {table} "
        "GROUP BY ALL ORDER BY ALL"
    )
    for source, decision, reason, count in con.sql(query).fetchall():
        counts[decision] += count
        if decision != "keep" and reason:
            reasons[reason] += count
        by_source.append({"source": source, "decision": decision, "reason": reason or None, "n": count})
    rel = f"{run.store.staging(run.run_id)}/events-{uuid7()}.parquet"
    columns = ", ".join(DECISIONS.names)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in con.sql(f"SELECT {columns} FROM {table} ORDER BY sample_id").to_arrow_reader(EVENT_BATCH_ROWS):
            yield from stamp(pa.Table.from_batches([batch]).cast(DECISIONS), run.run_id, run.version).to_batches()

    _, sha256 = run.store.data.stage(rel, lambda sink: write_parquet(sink, EVENTS, batches()))

    def register(txn: Transaction) -> None:  # one segment named after the run, as an in-memory run writes it
        segment = txn.adopt_segment("events", run.run_id, rel, n, sha256)
        if txn.store.data.posix:  # the lookup index, read back from the segment (as `Decided.of_parts` does)
            from lineage.features.decisionindex import DecisionIndex

            DecisionIndex.open(txn.store.data, segment.path)

    return Decided(n, counts, reasons, register, by_source=by_source)


def decide_streamed(
    flt: Any, selection: Any, run: BoundedRun, *, engine: str, workers: int | None
) -> Decided:
    """A sample filter's decisions (quality, sql, user filters), written as they come: the selection is streamed
    in batches (unsorted), each batch decided by the engine (in-process or a process pool, at most two batches a
    worker in flight) and staged by `stage_stream`. Memory holds a few batches, whatever the selection size."""
    from lineage.engines.local import map_batches

    given: list[pa.RecordBatch] = []  # the batches in flight, oldest first: map_batches keeps their order
    columns = list(dict.fromkeys([*selection.columns, "source"]))  # the source counts drops by source

    def inputs() -> Iterator[pa.RecordBatch]:
        for batch in selection.batches(columns, ordered=False):
            given.append(batch.select(["sample_id", "source"]))
            yield batch

    outputs = map_batches(flt, "decide", inputs(), engine=engine, total=selection.count, workers=workers,
                          progress=run.progress)
    return stage_stream(run, flt.name, ((given.pop(0), out) for out in outputs))


def stage_stream(
    run: BoundedRun, name: str, stream: Iterable[tuple[pa.RecordBatch, pa.RecordBatch | pa.Table]]
) -> Decided:
    """Decisions that come a batch at a time, each with the (sample_id, source) batch it decides: checked,
    counted (by source too) and appended to one events part under the run's staging folder."""
    from lineage.filters.events import check

    counts: Counter[str] = Counter({"keep": 0, "drop": 0, "flag": 0})
    reasons: Counter[str] = Counter()
    by_source: Counter[tuple[str, str, str | None]] = Counter()
    rows = 0

    def decisions() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for batch, out in stream:
            check(name, out, batch.num_rows)
            at = pc.index_in(out["sample_id"], value_set=batch["sample_id"])
            if at.null_count:
                raise LineageError(f"filter {name} returned decisions for samples it was not given")
            keys = pa.table({"source": batch["source"].take(at), "decision": out["decision"], "reason": out["reason"]})
            for group in keys.group_by(["source", "decision", "reason"]).aggregate([([], "count_all")]).to_pylist():
                short = group["reason"].split(":")[0] if group["reason"] else None
                counts[group["decision"]] += group["count_all"]
                if group["decision"] != "keep" and short:
                    reasons[short] += group["count_all"]
                by_source[(group["source"], group["decision"], short)] += group["count_all"]
            rows += out.num_rows
            table = out if isinstance(out, pa.Table) else pa.Table.from_batches([out])
            yield from stamp(table.cast(DECISIONS), run.run_id, run.version).to_batches()

    rel = f"{run.store.staging(run.run_id)}/events-{uuid7()}.parquet"
    _, sha256 = run.store.data.stage(rel, lambda sink: write_parquet(sink, EVENTS, decisions()))
    n = rows

    def register(txn: Transaction) -> None:
        segment = txn.adopt_segment("events", run.run_id, rel, n, sha256)
        if txn.store.data.posix:
            from lineage.features.decisionindex import DecisionIndex

            DecisionIndex.open(txn.store.data, segment.path)

    listed = [{"source": s, "decision": d, "reason": r, "n": c}
              for (s, d, r), c in sorted(by_source.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]
    return Decided(n, counts, reasons, register, by_source=listed)
