"""What the out-of-core filter runs share: their context, and decisions staged from DuckDB in batches.

A filter that decides out of core (`decide_bounded(selection, run)`, see `lineage.filters.near_dedup_bounded`
and `lineage.filters.exact_dedup`) leaves its decisions in a table of its scratch DuckDB database
(`lineage.filters.spill`); `stage_events` counts them there, and streams them, ordered by sample_id, into one
events part under the run's staging folder, which the run registers at commit like a Ray worker's part. Nothing
the size of the selection is held in Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.ids import uuid7
from lineage.core.segments import write_parquet
from lineage.errors import LineageError
from lineage.filters.events import Decided, stamp
from lineage.schemas import DECISIONS, EVENTS

if TYPE_CHECKING:
    from lineage.core.handle import Transaction
    from lineage.store import Store

Progress = Callable[[int, int | None], None]
EVENT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class BoundedRun:
    """What an out-of-core reduce needs besides its selection: where and as what version its decisions go."""

    store: Store
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
