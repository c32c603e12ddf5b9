"""Compaction: rewrite many small sample and events segments into few large ones, sorted by sample_id.

Every ingest writes one samples segment and every filter run one events segment, so a store that grows in small
steps reads thousands of files on every query. `compact` merges the small ones (fewer than `target_rows` rows)
into segments of up to `target_rows` rows, sorted by sample_id in row groups of ROW_GROUP rows, so DuckDB prunes
a lookup by id with the row groups' min/max statistics and Bloom filters. It is one commit: the new segments are
registered and the old ones marked retired at its version, in one catalog transaction. Readers as of an earlier
version still read exactly the segments they read before (retired ones included); `gc` with a retention removes
the retired segments no retained version reads.

The automatic policy, run after each ingest and filter run, is size-tiered (as LSM trees do): a segment of r rows
is in tier floor(log_F(r)), F = the policy's fan-in (default 16, meta key `auto_compact_segments`, 0 = off);
when a tier holds F segments they are merged into one of the next tier. Each row is rewritten about
log_F(target_rows / rows per ingest) times in all, and at most (F - 1) small segments per tier stay unmerged.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from lineage.core import catalog
from lineage.core.edgeindex import index_segments
from lineage.core.faults import crash_point
from lineage.core.ids import uuid7
from lineage.core.lock import WriterLock
from lineage.core.segments import write_parquet
from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, StoreError, StoreLocked, first_line
from lineage.schemas import EDGES, EVENTS, SAMPLES

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore, Transaction

KINDS = ("samples", "events", "edges")
DEFAULT_TARGET_ROWS = 1_000_000
ROW_GROUP = 65_536  # rows per row group: the unit DuckDB skips by min/max sample_id
DEFAULT_FAN_IN = 16
AUTO_KEY = "auto_compact_segments"
MEMORY_LIMIT = "512MB"  # the sort spills to STORE/tmp/<id>/ beyond this
SCHEMAS = {"samples": SAMPLES, "events": EVENTS, "edges": EDGES}
# Sort order per kind (deterministic where one sample has several rows), and rows per row group: an edges lookup
# reads one row group per id (`lineage.core.edges`), so theirs are small.
ORDER = {"samples": "sample_id, version", "events": "sample_id, version", "edges": "sample_id, relation, related_id"}
GROUP_ROWS = {"samples": ROW_GROUP, "events": ROW_GROUP, "edges": 8_192}
# The columns ingest looks rows up by (identity, duplicates, parents): a Bloom filter per row group lets a lookup of
# ids the store does not hold, the usual case for new data, skip every row group (see `lineage.ingest.lookup`).
BLOOM = {"samples": ("sample_id", "content_hash", "external_id"), "events": ("sample_id",), "edges": ("sample_id",)}


@dataclass(frozen=True)
class SegmentInfo:
    segment_id: str
    kind: str
    path: str
    rows: int


@dataclass
class CompactResult:
    version: int | None  # the compaction's commit; None when there was nothing to merge
    merged: dict[str, int] = field(default_factory=dict)  # per kind: segments replaced
    written: dict[str, int] = field(default_factory=dict)  # per kind: segments written
    rows: dict[str, int] = field(default_factory=dict)  # per kind: rows rewritten

    def summary(self) -> str:
        if self.version is None:
            return "nothing to compact"
        parts = [
            f"{kind}: {self.merged[kind]:,} segments -> {self.written[kind]:,} ({self.rows[kind]:,} rows)"
            for kind in self.merged
        ]
        return f"compacted {'; '.join(parts)} (version {self.version})"


def live_segments(store: StoreCore, kind: str) -> list[SegmentInfo]:
    with store.catalog() as con:
        return _live(con, [kind])


def _live(con: duckdb.DuckDBPyConnection, kinds: list[str]) -> list[SegmentInfo]:
    rows = con.execute(
        f"SELECT segment_id, kind, path, row_count FROM {catalog.SCHEMA}.segments "
        "WHERE list_contains(?, kind) AND retired_version IS NULL ORDER BY version, segment_id",
        [kinds],
    ).fetchall()
    return [SegmentInfo(*r) for r in rows]


def compact(
    store: StoreCore, *, kinds: tuple[str, ...] = KINDS, target_rows: int = DEFAULT_TARGET_ROWS
) -> CompactResult:
    """Merge every live segment of `kinds` smaller than `target_rows`, when there are at least two of a kind."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise LineageError(f"cannot compact `{unknown[0]}`: choose from {', '.join(KINDS)}")
    if target_rows < 1:
        raise LineageError(f"target rows must be at least 1; got {target_rows:,}")

    def plan() -> dict[str, list[SegmentInfo]]:
        groups = {kind: [s for s in live_segments(store, kind) if s.rows < target_rows] for kind in kinds}
        return {kind: segs for kind, segs in groups.items() if len(segs) > 1}

    return _merge(store, plan, target_rows)


def _merge(store: StoreCore, plan: object, target_rows: int) -> CompactResult:
    """Under the writer lock: `plan()` picks the segments to merge (read after the lock is held, so no commit
    lands between choosing and retiring them), then one commit writes their replacements and retires them."""
    compaction_id = uuid7()
    result = CompactResult(None)
    summary: dict[str, object] = {}
    try:
        with store.transaction("compact", compaction_id, summary) as txn:
            groups = plan()  # type: ignore[operator]
            if not groups:  # the transaction commits nothing
                return CompactResult(None)
            for kind, segs in groups.items():
                written = _rewrite(store, txn, compaction_id, kind, segs, target_rows)
                txn.retired += [s.segment_id for s in segs]
                result.merged[kind], result.written[kind] = len(segs), written
                result.rows[kind] = sum(s.rows for s in segs)
            summary.update(merged=result.merged, written=result.written, rows=result.rows)
            crash_point("compact_before_commit")
            result.version = txn.version
    finally:
        store.remove_scratch(compaction_id)
    index_segments(store.data, txn.segments)  # committed: the provenance indexes of the new segments
    return result


def _rewrite(
    store: StoreCore, txn: Transaction, compaction_id: str, kind: str, segs: list[SegmentInfo], target_rows: int
) -> int:
    """Write the rows of `segs`, sorted by sample_id, as segments of at most `target_rows` rows; returns how many."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
        con.execute(f"SET temp_directory = {sql_string(str(store.scratch_dir(compaction_id)))}")
        catalog.segment_view(con, "src", store.data, kind, [s.path for s in segs])
        reader = con.sql(f"SELECT * FROM src ORDER BY {ORDER[kind]}").to_arrow_reader(GROUP_ROWS[kind])
        rows = _Rows(reader)
        total, written, part = sum(s.rows for s in segs), 0, 0
        prefix = uuid7()  # segment ids are unique across kinds: retiring one by id must not touch another
        while written < total:
            want = min(target_rows, total - written)
            segment = txn.write_segment(
                kind, f"{prefix}-{part}",
                lambda draft, n=want: write_parquet(
                    draft, SCHEMAS[kind], rows.take(n), bloom=BLOOM[kind], bloom_rows=GROUP_ROWS[kind]
                ),
            )
            if segment.row_count != want:
                raise StoreError(f"compaction wrote {segment.row_count:,} {kind} rows where {want:,} were due")
            written, part = written + segment.row_count, part + 1
        if next(iter(rows.take(1)), None) is not None:
            raise StoreError(f"compaction read more {kind} rows than the catalog records ({total:,})")
        return part
    except duckdb.Error as exc:
        raise StoreError(f"compaction could not read the {kind} segments ({first_line(exc)}); "
                         "`lineage doctor` lists damaged segments") from None
    finally:
        con.close()


class _Rows:
    """A sorted stream of record batches, taken in runs of exact row counts (one run per output segment); each
    batch taken becomes one row group, of at most ROW_GROUP rows."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._batches = iter(reader)
        self._carry: pa.RecordBatch | None = None

    def take(self, rows: int) -> Iterator[pa.RecordBatch]:
        left = rows
        while left > 0:
            batch = self._carry if self._carry is not None else next(self._batches, None)
            self._carry = None
            if batch is None:
                return
            if batch.num_rows > left:
                batch, self._carry = batch.slice(0, left), batch.slice(left)
            left -= batch.num_rows
            if batch.num_rows:
                yield batch


# -- the automatic policy ------------------------------------------------------------------------


def fan_in(store: StoreCore) -> int:
    """The automatic policy's fan-in: merge a tier once it holds this many segments (0: never)."""
    with store.catalog() as con:
        return _fan_in(con)


def _fan_in(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT value FROM {catalog.SCHEMA}.meta WHERE key = ?", [AUTO_KEY]).fetchall()
    return int(row[0][0]) if row else DEFAULT_FAN_IN


def set_auto_compact(store: StoreCore, segments: int | None) -> None:
    """Set the fan-in of the automatic policy (None or 0 turns it off); recorded in the catalog's meta table."""
    if segments is not None and segments < 2:
        raise LineageError(f"automatic compaction needs at least 2 segments per merge; got {segments}")
    from lineage.core.handle import LOCK_FILE

    lock = WriterLock(store.root / LOCK_FILE, wait=store.wait)
    with lock, store.catalog(write=True) as con, catalog.transaction(con):
        con.execute(f"DELETE FROM {catalog.SCHEMA}.meta WHERE key = ?", [AUTO_KEY])
        con.execute(f"INSERT INTO {catalog.SCHEMA}.meta VALUES (?, ?)", [AUTO_KEY, str(segments or 0)])


def tier(rows: int, fan: int) -> int:
    return int(math.log(max(rows, 1), fan)) if fan > 1 else 0


def due(segs: list[SegmentInfo], fan: int, target_rows: int) -> list[SegmentInfo]:
    """The lowest tier holding `fan` segments smaller than `target_rows` (empty when none does)."""
    tiers: dict[int, list[SegmentInfo]] = {}
    for seg in segs:
        if seg.rows < target_rows:
            tiers.setdefault(tier(seg.rows, fan), []).append(seg)
    full = [t for t, members in tiers.items() if len(members) >= fan]
    return tiers[min(full)] if full else []


def auto_compact(store: StoreCore, *, target_rows: int = DEFAULT_TARGET_ROWS) -> CompactResult | None:
    """Run the automatic policy once, after a commit; never fails that commit (it is already made)."""
    try:
        with store.catalog() as con:  # one look at the catalog per commit
            fan = _fan_in(con)
            segs = _live(con, list(KINDS)) if fan >= 2 else []
        if not any(due([s for s in segs if s.kind == kind], fan, target_rows) for kind in KINDS):
            return None

        def plan() -> dict[str, list[SegmentInfo]]:
            groups = {kind: due(live_segments(store, kind), fan, target_rows) for kind in KINDS}
            return {kind: segs for kind, segs in groups.items() if segs}

        return _merge(store, plan, target_rows)
    except StoreLocked:
        return None  # another writer is at work: it runs the policy after its own commit
    except (LineageError, OSError, duckdb.Error) as exc:
        print(f"lineage: automatic compaction failed, the commit stands ({first_line(exc)}); "
              "run `lineage compact`", file=sys.stderr)
        return None
