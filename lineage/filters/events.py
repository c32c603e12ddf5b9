"""A run's decisions as the audit log stores them: checked, counted, stamped and written as events segments.

Both engines go through here. The local engine holds one decisions table and writes one segment; the Ray
engine's workers check, stamp and stage a part each, and the driver registers the parts (`Decided.parts`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.segments import write_parquet
from lineage.core.selection import BATCH_ROWS
from lineage.errors import LineageError
from lineage.schemas import DECISION_VALUES, EVENTS

if TYPE_CHECKING:
    from lineage.core.handle import Transaction

_REASON = re.compile(r"^[a-z0-9_]+(:[^\s].*)?$")


def check(name: str, table: pa.Table | pa.RecordBatch, expected: int) -> None:
    """A filter's output is part of the audit log: one valid decision per selected sample."""
    if table.num_rows != expected or pc.count_distinct(table["sample_id"]).as_py() != expected:
        raise LineageError(f"filter {name} returned {table.num_rows:,} decisions for {expected:,} selected samples")
    bad = set(pc.unique(table["decision"]).to_pylist()) - set(DECISION_VALUES)
    if bad:
        raise LineageError(f"filter {name} returned decision `{sorted(bad)[0]}`; allowed: keep, drop, flag")
    for reason in pc.unique(table["reason"]).drop_null().to_pylist():
        if not _REASON.match(reason):
            raise LineageError(f"filter {name} returned reason `{reason}`; reasons are short snake_case")


def tally(table: pa.Table | pa.RecordBatch) -> tuple[Counter[str], Counter[str]]:
    """(decision counts, counts of the reasons of drops and flags by their part before `:`)."""
    counts = Counter(table["decision"].to_pylist())
    mask = pc.not_equal(table["decision"], "keep")
    reasons = Counter(r.split(":")[0] for r in table.filter(mask)["reason"].to_pylist() if r)
    return counts, reasons


def stamp(table: pa.Table | pa.RecordBatch, run_id: str, version: int) -> pa.Table:
    """Decisions as event rows: with the run and the version that commits them."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    n = table.num_rows
    return table.append_column("run_id", pa.array([run_id] * n, pa.string())).append_column(
        "version", pa.array([version] * n, pa.int64())
    )


def write_events(path: Path | Any, table: pa.Table, run_id: str, version: int) -> None:
    write_parquet(path, EVENTS, stamp(table, run_id, version).to_batches(max_chunksize=BATCH_ROWS))


@dataclass(frozen=True)
class Part:
    """An events file a worker staged under tmp/<run_id>/ of the data location, not yet registered."""

    path: str  # relative to the data location's base
    rows: int
    sha256: str

    def to_row(self, counts: Counter[str], reasons: Counter[str]) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "sha256": self.sha256,
            "counts": json.dumps(counts),
            "reasons": json.dumps(reasons),
        }


@dataclass
class Decided:
    """What a run decided, counted, and how its events get registered in the run's transaction."""

    rows: int
    counts: Counter[str]
    reasons: Counter[str]
    register: Callable[[Transaction], None]
    table: pa.Table | None = field(default=None, repr=False)
    # (source, decision, reason, n) rows, when the decisions are not held as `table` (an out-of-core run)
    by_source: list[dict[str, Any]] | None = None

    @classmethod
    def of_table(cls, table: pa.Table, run_id: str) -> Decided:
        """Decisions held by the driver: one events segment written at commit."""
        counts, reasons = tally(table)

        def register(txn: Transaction) -> None:
            segment = txn.write_segment("events", run_id, lambda tmp: write_events(tmp, table, run_id, txn.version))
            if txn.store.data.posix:  # the lookup index incremental runs read old decisions through
                from lineage.features.decisionindex import DecisionIndex

                DecisionIndex.write(txn.store.data, segment.path, stamp(table, run_id, txn.version))

        return cls(table.num_rows, counts, reasons, register, table)

    @classmethod
    def of_parts(cls, rows: list[dict[str, Any]], run_id: str) -> Decided:
        """Decisions staged by workers: each part is moved into data/events/ and registered by the driver."""
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        parts = []
        for row in sorted(rows, key=lambda r: r["path"]):
            counts.update(json.loads(row["counts"]))
            reasons.update(json.loads(row["reasons"]))
            parts.append(Part(row["path"], row["rows"], row["sha256"]))

        def register(txn: Transaction) -> None:
            for i, part in enumerate(parts):
                segment = txn.adopt_segment("events", f"{run_id}-{i:05d}", part.path, part.rows, part.sha256)
                if txn.store.data.posix:  # the lookup index, read back from the part (see `of_table`)
                    from lineage.features.decisionindex import DecisionIndex

                    DecisionIndex.open(txn.store.data, segment.path)

        return cls(sum(p.rows for p in parts), counts, reasons, register)
