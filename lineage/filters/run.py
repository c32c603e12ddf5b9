"""Run a filter over a selection and commit its run and decisions atomically, like an ingest."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

import pyarrow as pa
import pyarrow.compute as pc

from lineage.core import readonly
from lineage.core.faults import crash_point
from lineage.core.ids import uuid7
from lineage.core.selection import Selection
from lineage.engines.local import ENGINES, Progress, map_batches
from lineage.engines.ray.cluster import check_engine
from lineage.errors import LineageError, flag
from lineage.filters.base import (
    BASE_COLUMNS,
    SampleFilter,
    SelectionContext,
    SelectionFilter,
    canonical,
    parse_params,
)
from lineage.filters.events import Decided, check, tally
from lineage.filters.incremental import Prior, changed_only
from lineage.filters.spill import check_memory_limit, memory_bytes
from lineage.limits import default_filter_memory_limit
from lineage.schemas import DECISIONS, RUNS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


@dataclass(frozen=True)
class RunResult:
    run_id: str
    filter: str
    selected: int
    kept: int
    dropped: int
    flagged: int
    reasons: dict[str, int]
    version: int | None
    seconds: float
    skipped: bool = False
    previous: dict[str, Any] = field(default_factory=dict)
    new_only: bool = False  # an incremental run: the unseen samples, decided against the decided ones
    redecided: int = 0  # earlier-decided samples the run decided again (incremental runs): a field changed
    changed: int = 0  # of those, the ones whose decision (keep, drop, flag) changed; the rest were re-scored
    by_source: list[dict[str, Any]] = field(default_factory=list)  # source, decision, reason, n
    dry_run: bool = False
    note: str = ""  # what the filter chose for this run (e.g. quality's presets per source)

    def summary(self) -> str:
        if self.skipped and self.new_only:
            return f"{self.filter}: no new samples to decide (every sample in its scope has a decision)"
        if self.skipped:
            return (
                f"{self.filter}: already run with these params over this selection (run {self.run_id}, version "
                f"{self.version}); nothing to do, {flag('force')} runs it again"
            )
        why = ", ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        what = f"{self.selected:,} new samples" if self.new_only else f"{self.selected:,} selected"
        rescored = self.redecided - self.changed
        again = f", {self.changed:,} earlier decisions changed" if self.new_only else ""
        again += f" ({rescored:,} re-scored)" if self.new_only and rescored else ""
        where = "dry run, nothing written" if self.dry_run else f"run {self.run_id}, version {self.version}"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.filter}: {what}, {self.kept:,} kept, {self.dropped:,} dropped, "
            f"{self.flagged:,} flagged{f' ({why})' if why else ''}{again}{note} in {self.seconds:.1f}s ({where})"
        )

    def warnings(self) -> list[str]:
        """One line per source the run dropped more than 90% of: a filter whose rules do not fit that data."""
        return [
            f"warning: {self.filter} dropped {s['dropped']:,} of {s['selected']:,} samples of source "
            f"{s['source']} ({s['dropped'] / s['selected']:.0%})"
            for s in source_totals(self.by_source)
            if s["selected"] and s["dropped"] / s["selected"] > DROP_WARNING
        ]


DROP_WARNING = 0.9  # share of a source's samples a run may drop before it says so


def source_totals(by_source: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per source: samples decided and dropped, from the (source, decision, reason, n) rows."""
    totals: dict[str, dict[str, Any]] = {}
    for row in by_source:
        t = totals.setdefault(str(row["source"]), {"source": str(row["source"]), "selected": 0, "dropped": 0})
        t["selected"] += row["n"]
        t["dropped"] += row["n"] if row["decision"] == "drop" else 0
    return sorted(totals.values(), key=lambda t: t["source"])


# The runs, with each run's drops by source from its commit summary (`by_source` rows: source, decision, reason,
# n): `sources` lists `source dropped/decided` for every source it dropped from, `warning` each source it dropped
# more than DROP_WARNING of. In SQL, so listing runs needs no Python-side table building.
HISTORY_SQL = """
WITH r AS (
    SELECT r.*, CASE WHEN json_valid(c.summary) THEN json_extract(c.summary, '$.by_source') END AS by_source
    FROM runs r JOIN commits c ON c.version = r.version
    WHERE CAST(? AS VARCHAR) IS NULL OR r.filter = ?
), per_source AS (
    SELECT run_id, s->>'source' AS source, sum(CAST(s->>'n' AS BIGINT)) AS decided,
        sum(CASE WHEN s->>'decision' = 'drop' THEN CAST(s->>'n' AS BIGINT) ELSE 0 END) AS dropped
    FROM r, unnest(CAST(coalesce(r.by_source, '[]') AS JSON[])) AS t(s) GROUP BY ALL
)
SELECT r.run_id, r.filter, r.version, r.selected, r.kept, r.dropped, r.flagged, r.reasons, r.engine,
    round(r.seconds, 2) AS seconds, r.selection,
    (SELECT string_agg(p.source || ' ' || format('{:,}', p.dropped) || '/' || format('{:,}', p.decided), '; '
        ORDER BY p.source) FROM per_source p WHERE p.run_id = r.run_id AND p.dropped > 0) AS sources,
    (SELECT string_agg('dropped ' || CAST(round(100.0 * p.dropped / p.decided) AS INTEGER) || '% of ' || p.source,
        '; ' ORDER BY p.source) FROM per_source p WHERE p.run_id = r.run_id AND p.dropped > ? * p.decided)
        AS warning,
    CAST(r.by_source AS VARCHAR) AS by_source
FROM r ORDER BY r.version
"""


def history(store: StoreCore, filter_name: str | None = None) -> pa.Table:
    """The runs, oldest first, with their drops by source (`sources`: `source dropped/decided` for every source
    the run dropped from), `warning` naming each source it dropped more than 90% of, and `by_source` (JSON: the
    run's decisions counted by source, decision and reason)."""
    return store.query(HISTORY_SQL, params=[filter_name, filter_name, DROP_WARNING])


class RunFields(TypedDict, total=False):
    """The keyword options of `run_filter` (and `Store.run_filter`); their defaults and meaning are there."""

    params: dict[str, Any] | None
    where: str | None
    force: bool
    module: str | None
    engine: str
    workers: int | None
    ray_address: str | None
    progress: Progress | None
    new_only: bool
    dry_run: bool
    memory_limit: str | None


def run_filter(
    store: StoreCore,
    name: str,
    *,
    params: dict[str, Any] | None = None,
    where: str | None = None,
    force: bool = False,
    module: str | None = None,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
    new_only: bool = False,
    dry_run: bool = False,
    memory_limit: str | None = None,
) -> RunResult:
    """`new_only`: decide only the samples no run with these params decided, against those it did (see
    `lineage.filters.incremental`); `dry_run`: decide, count by source and reason, write nothing; `memory_limit`:
    what a filter that works out of core (near-dedup) holds before it spills to STORE/tmp (DuckDB's syntax,
    e.g. 2GB; default `lineage.limits.default_filter_memory_limit()`)."""
    from lineage.filters.base import filter_class  # a built-in filter's module is imported when a run names it

    cls = filter_class(name, module)
    flt = cls(parse_params(cls, params or {}))
    return execute(
        store,
        flt,
        module=module,
        where=where,
        force=force,
        engine=engine,
        workers=workers,
        ray_address=ray_address,
        progress=progress,
        new_only=new_only,
        dry_run=dry_run,
        memory_limit=memory_limit,
    )


def execute(
    store: StoreCore,
    flt: Any,
    *,
    where: str | None = None,
    ids: pa.Array | None = None,
    force: bool = False,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
    new_only: bool = False,
    dry_run: bool = False,
    module: str | None = None,
    memory_limit: str | None = None,
    select: Callable[[StoreCore], pa.Array] | None = None,
) -> RunResult:
    """Run an instantiated filter; the whole run holds the writer lock and commits one version. `module`: the
    `module:Class` a user filter came from, recorded so that `lineage status` and builds track it. `select`: the
    ids to decide, computed under the lock (a takedown's targets), instead of `where` or `ids`."""
    check_engine(engine, ENGINES, workers, ray_address)
    if memory_limit is not None:
        check_memory_limit(memory_limit)
    params_json, params_hash = canonical(flt.params)
    run_id = uuid7()
    summary: dict[str, Any] = {"filter": flt.name, **({"module": module} if module else {})}
    started = datetime.now(UTC)
    clock = time.perf_counter()
    plan: _Incremental | None = None
    try:
        with store.transaction("filter", run_id, summary) as txn:
            incremental = plan = _Incremental.plan(store, flt, params_hash, where) if new_only else None
            min_version = None
            if incremental is not None:
                if len(incremental.new_ids) == 0:  # nothing new: the transaction commits nothing
                    return RunResult(run_id, flt.name, 0, 0, 0, 0, {}, None, 0.0, skipped=True, new_only=True)
                # A selection filter without `decide_new` decides its whole scope again.
                where, ids = incremental.scope, None if incremental.full else incremental.new_ids
                min_version = None if incremental.full else incremental.min_version
                incremental = None if incremental.full else incremental
            if select is not None:
                ids = select(store)
            shared = plan.prior.connection() if plan is not None else None  # one reader for the whole run
            with Selection.open(store, where, _columns(flt), ids, min_version, shared) as selection:
                # One reader connection serves the run's own queries; it closes before the commit opens the
                # catalog for writing (DuckDB refuses read-only and read-write connections to one file at once).
                selection_hash = _hash(selection.fingerprint, flt.context_key(store))
                previous = _previous_run(selection, flt, params_hash, selection_hash) if not new_only else None
                if previous and not force and not dry_run:
                    return _already_run(flt.name, previous)
                flt.prepare(store)
                if engine == "ray" and incremental is None:
                    from lineage.engines.ray.decide import decide_on_ray

                    decided = decide_on_ray(
                        store, flt, selection, run_id, txn.version, workers, ray_address, progress
                    )
                elif incremental is None and hasattr(flt, "decide_bounded") and not _fits_in_memory(
                    flt, selection, memory_limit or default_filter_memory_limit()
                ):
                    from lineage.filters.bounded import BoundedRun

                    limit = memory_limit or default_filter_memory_limit()
                    decided = flt.decide_bounded(selection, BoundedRun(store, run_id, txn.version, limit, progress))
                elif incremental is None and isinstance(flt, SampleFilter):
                    from lineage.filters.bounded import BoundedRun, decide_streamed

                    limit = memory_limit or default_filter_memory_limit()
                    run = BoundedRun(store, run_id, txn.version, limit, progress)
                    decided = decide_streamed(flt, selection, run, engine=engine, workers=workers)
                else:
                    table = _decide(store, flt, selection, run_id, engine, workers, progress, incremental)
                    decided = Decided.of_table(table, run_id)
                if decided.rows < selection.count or (incremental is None and decided.rows != selection.count):
                    raise LineageError(
                        f"filter {flt.name} returned {decided.rows:,} decisions for {selection.count:,} selected "
                        "samples"
                    )
                result = _result(run_id, flt.name, decided, selection.count, txn.version, time.perf_counter() - clock)
                if incremental is not None and decided.table is not None:
                    # Counts and summaries are of the new samples; re-decided earlier ones are counted apart.
                    new = decided.table.filter(pc.is_in(decided.table["sample_id"], value_set=incremental.new_ids))
                    counts, reasons = tally(new)
                    result = replace(
                        result, kept=counts["keep"], dropped=counts["drop"], flagged=counts["flag"],
                        reasons=dict(reasons), changed=_changed(decided.table, incremental),
                    )
                else:
                    new = decided.table
                by_source = selection.by_source(new) if new is not None else decided.by_source or []
                result = replace(
                    result,
                    new_only=incremental is not None,
                    redecided=decided.rows - selection.count,
                    by_source=by_source,
                    dry_run=dry_run,
                    note=flt.note() if hasattr(flt, "note") else "",
                )
            if dry_run:  # nothing registered: the transaction commits nothing
                return result
            decided.register(txn)
            txn.add_rows(
                "runs", _run_row(result, flt, params_json, params_hash, where, selection_hash, engine, started)
            )
            crash_point("filter_before_commit")
            summary.update(dropped=result.dropped, flagged=result.flagged, by_source=by_source)
            if result.note:
                summary.update(note=result.note)
            if result.warnings():
                summary.update(warnings=result.warnings())
            if incremental is not None:
                summary.update(incremental=True, redecided=result.redecided, changed=result.changed)
            if where is None and ids is None:
                # Every sample decided once (as many decisions as samples, each batch checked): the `status` view
                # reads no earlier run of this filter (see `lineage.catalog`).
                summary.update(covers_all=True)
    finally:
        store.remove_scratch(run_id)  # parts a Ray run staged: registered ones were moved out already
        if plan is not None:
            plan.prior.close()
    return result


# A filter whose out-of-core path spills (a scratch database, index files, fsyncs: ~0.25 CPU-s, a fifth of a
# 20,000-document near-dedup) decides a selection in memory when it surely fits in a quarter of the memory limit:
# the same decisions (tests/test_near_dedup_bounded.py), as DuckDB's own operators spill only when they must.
IN_MEMORY_SHARE = 4
BYTES_PER_SAMPLE = 16 << 10  # signatures, band keys and ids held per sample (~8 KB measured, doubled)
BYTES_PER_TEXT_BYTE = 16  # hashing a text briefly holds ~16x its size


def _fits_in_memory(flt: SampleFilter | SelectionFilter, selection: Selection, memory_limit: str) -> bool:
    if not getattr(flt, "spills", False):
        return False
    budget = memory_bytes(memory_limit) // IN_MEMORY_SHARE
    if selection.count * BYTES_PER_SAMPLE > budget:  # decided without reading a text
        return False
    return selection.count * BYTES_PER_SAMPLE + BYTES_PER_TEXT_BYTE * selection.text_bytes() <= budget


def _already_run(name: str, prev: dict[str, Any]) -> RunResult:
    """The result of the run that already decided this selection with these params (nothing is run again)."""
    return RunResult(
        prev["run_id"],
        name,
        prev["selected"],
        prev["kept"],
        prev["dropped"],
        prev["flagged"],
        json.loads(prev["reasons"]),
        prev["version"],
        0.0,
        skipped=True,
        previous=prev,
    )


@dataclass(frozen=True)
class _Incremental:
    """An incremental run: the samples to decide, the scope they come from, and what was decided before."""

    scope: str | None
    new_ids: pa.Array
    min_version: int  # the oldest new sample's: lets the selection skip older segments by their statistics
    prior: Prior
    full: bool  # the filter cannot decide new samples alone: run it over the whole scope

    @classmethod
    def plan(cls, store: StoreCore, flt: Any, params_hash: str, where: str | None) -> _Incremental:
        prior, state = Prior.load(store, flt.name, params_hash, flt.version)
        scope = where if where is not None else (state.scope if state else None)
        new = prior.undecided(readonly.check_predicate(scope, what="--where") if scope else "true")
        full = isinstance(flt, SelectionFilter) and type(flt).decide_new is SelectionFilter.decide_new
        oldest = pc.min(new["version"]).as_py()
        return cls(scope, new["sample_id"].combine_chunks(), oldest or 0, prior, full)


def _columns(flt: Any) -> list[str]:
    return list(dict.fromkeys([*BASE_COLUMNS, *flt.columns]))


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _previous_run(selection: Selection, flt: Any, params_hash: str, selection_hash: str) -> dict[str, Any] | None:
    rows = selection.sql(
        "SELECT * FROM runs WHERE filter = ? AND filter_version = ? AND params_hash = ? AND selection_hash = ? "
        "ORDER BY version DESC LIMIT 1",
        [flt.name, flt.version, params_hash, selection_hash],
    ).to_pylist()
    return rows[0] if rows else None


def _decide(
    store: StoreCore,
    flt: Any,
    selection: Selection,
    run_id: str,
    engine: str,
    workers: int | None,
    progress: Progress | None,
    incremental: _Incremental | None = None,
) -> pa.Table:
    if not isinstance(flt, SampleFilter | SelectionFilter):
        raise LineageError(f"{type(flt).__name__} is neither a SampleFilter nor a SelectionFilter")
    if selection.count == 0:  # nothing to decide, as on Ray (decide_all once got a table without its columns)
        return DECISIONS.empty_table()
    method = "decide" if isinstance(flt, SampleFilter) else "features"
    # Filters without a map phase just collect the selection: no worker processes for an identity.
    identity = isinstance(flt, SelectionFilter) and type(flt).features is SelectionFilter.features
    out = list(
        map_batches(
            flt,
            method,
            selection.batches(),
            engine="inline" if identity else engine,
            total=selection.count,
            workers=workers,
            progress=progress,
        )
    )
    if isinstance(flt, SampleFilter):
        table = pa.Table.from_batches(out, schema=DECISIONS)
    else:
        features = pa.Table.from_batches(out) if out else pa.table({"sample_id": pa.array([], pa.string())})
        context = SelectionContext(store, run_id)
        if incremental is None:
            table = flt.decide_all(features, context).cast(DECISIONS)
        else:
            return _decide_new(flt, features, context, incremental)
    check(flt.name, table, selection.count)
    return table


def _changed(table: pa.Table, incremental: _Incremental) -> int:
    """How many earlier-decided samples in `table` (an incremental run's decisions) got another decision."""
    old = table.filter(pc.invert(pc.is_in(table["sample_id"], value_set=incremental.new_ids)))
    if old.num_rows == 0:
        return 0
    before = incremental.prior.decisions(old["sample_id"])
    was = dict(zip(before["sample_id"].to_pylist(), before["decision"].to_pylist(), strict=True))
    return sum(was.get(s) != d for s, d in zip(old["sample_id"].to_pylist(), old["decision"].to_pylist(), strict=True))


def _decide_new(flt: Any, features: pa.Table, context: SelectionContext, incremental: _Incremental) -> pa.Table:
    """The new samples' decisions and the changed ones of samples decided before (see `decide_new`)."""
    prior = incremental.prior
    table = flt.decide_new(features, prior, context).cast(DECISIONS)
    earlier = prior.decisions(table["sample_id"].filter(pc.invert(pc.is_in(table["sample_id"],
                                                                          value_set=incremental.new_ids))))
    table = changed_only(table, earlier, incremental.new_ids, prior).cast(DECISIONS)
    check(flt.name, table, table.num_rows)
    known = pa.concat_arrays([incremental.new_ids, earlier["sample_id"].combine_chunks()])
    stray = pc.invert(pc.is_in(table["sample_id"], value_set=known))
    if pc.any(stray).as_py():
        raise LineageError(f"filter {flt.name} decided samples that are neither new nor decided before")
    missing = pc.invert(pc.is_in(incremental.new_ids, value_set=table["sample_id"].combine_chunks()))
    if pc.any(missing).as_py():
        raise LineageError(f"filter {flt.name} left new samples without a decision")
    return table


def _result(run_id: str, name: str, decided: Decided, selected: int, version: int, seconds: float) -> RunResult:
    counts = decided.counts
    return RunResult(
        run_id,
        name,
        selected,
        counts["keep"],
        counts["drop"],
        counts["flag"],
        dict(decided.reasons),
        version,
        seconds,
    )


def _run_row(
    result: RunResult,
    flt: Any,
    params_json: str,
    params_hash: str,
    where: str | None,
    selection_hash: str,
    engine: str,
    started: datetime,
) -> pa.Table:
    row = {
        "run_id": result.run_id,
        "filter": flt.name,
        "filter_version": flt.version,
        "params": params_json,
        "params_hash": params_hash,
        "selection": where,
        "selection_hash": selection_hash,
        "selected": result.selected,
        "kept": result.kept,
        "dropped": result.dropped,
        "flagged": result.flagged,
        "reasons": json.dumps(result.reasons, sort_keys=True),
        "engine": engine,
        "started_at": started,
        "seconds": result.seconds,
        "version": result.version,
    }
    return pa.Table.from_pylist([row], schema=RUNS)
