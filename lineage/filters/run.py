"""Run a filter over a selection and commit its run and decisions atomically, like an ingest."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage import readonly
from lineage.errors import LineageError
from lineage.faults import crash_point
from lineage.filters.base import (
    BASE_COLUMNS,
    SampleFilter,
    SelectionContext,
    SelectionFilter,
    canonical,
    filter_class,
    parse_params,
)
from lineage.filters.executor import Progress, map_batches
from lineage.ids import uuid7
from lineage.schemas import DECISION_VALUES, DECISIONS, EVENTS, RUNS
from lineage.segments import write_parquet
from lineage.sqlutil import quote_ident

if TYPE_CHECKING:
    from lineage.store import Store

BATCH_ROWS = 20_000
_REASON = re.compile(r"^[a-z0-9_]+(:[^\s].*)?$")


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

    def summary(self) -> str:
        if self.skipped:
            return (
                f"{self.filter}: already run with these params over this selection (run {self.run_id}, version "
                f"{self.version}); nothing to do, --force runs it again"
            )
        why = ", ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        return (
            f"{self.filter}: {self.selected:,} selected, {self.kept:,} kept, {self.dropped:,} dropped, "
            f"{self.flagged:,} flagged{f' ({why})' if why else ''} in {self.seconds:.1f}s "
            f"(run {self.run_id}, version {self.version})"
        )


class _AlreadyRun(Exception):
    def __init__(self, previous: dict[str, Any]) -> None:
        self.previous = previous


def run_filter(
    store: Store,
    name: str,
    *,
    params: dict[str, Any] | None = None,
    where: str | None = None,
    force: bool = False,
    module: str | None = None,
    engine: str = "local",
    workers: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    cls = filter_class(name, module)
    flt = cls(parse_params(cls, params or {}))
    return execute(store, flt, where=where, force=force, engine=engine, workers=workers, progress=progress)


def execute(
    store: Store,
    flt: Any,
    *,
    where: str | None = None,
    ids: pa.Array | None = None,
    force: bool = False,
    engine: str = "local",
    workers: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run an instantiated filter; the whole run holds the writer lock and commits one version."""
    params_json, params_hash = canonical(flt.params)
    run_id = uuid7()
    summary: dict[str, Any] = {"filter": flt.name}
    started = datetime.now(UTC)
    clock = time.perf_counter()
    try:
        with store.transaction("filter", run_id, summary) as txn:
            selection = Selection(store, where, _columns(flt), ids)
            selection_hash = _hash(selection.fingerprint, flt.context_key(store))
            previous = _previous_run(store, flt, params_hash, selection_hash)
            if previous and not force:
                raise _AlreadyRun(previous)
            flt.prepare(store)
            table = _decide(store, flt, selection, run_id, engine, workers, progress)
            result = _result(run_id, flt.name, table, selection.count, txn.version, time.perf_counter() - clock)
            txn.write_segment("events", run_id, lambda tmp: _write_events(tmp, table, run_id, txn.version))
            txn.add_rows(
                "runs", _run_row(result, flt, params_json, params_hash, where, selection_hash, engine, started)
            )
            crash_point("filter_before_commit")
            summary.update(dropped=result.dropped, flagged=result.flagged)
    except _AlreadyRun as skip:
        prev = skip.previous
        return RunResult(
            prev["run_id"],
            flt.name,
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
    return result


def _columns(flt: Any) -> list[str]:
    return list(dict.fromkeys([*BASE_COLUMNS, *flt.columns]))


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class Selection:
    """The samples a run sees: `--where` over the samples view (and/or explicit ids), read-only, in batches."""

    def __init__(self, store: Store, where: str | None, columns: list[str], ids: pa.Array | None = None) -> None:
        self.store, self.where, self.columns, self.ids = store, where, columns, ids
        query = f"SELECT count(*) AS n, hex(bit_xor(md5_number(sample_id))) AS fp FROM {self._from()}"
        with self._connect() as con:
            row = readonly.run(con, query).to_pylist()[0]
        self.count, self.fingerprint = row["n"], f"{row['n']}:{row['fp']}"

    def _from(self) -> str:
        where = f"({self.where})" if self.where else "true"
        ids = " SEMI JOIN _selected_ids USING (sample_id)" if self.ids is not None else ""
        return f"(SELECT * FROM samples WHERE {where}){ids}"

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self.store.reader() as con:
            if self.ids is not None:
                con.register("_selected_ids", pa.table({"sample_id": pa.array(self.ids, pa.string())}))
            readonly.lock_down(con, self.store.root)
            yield con

    def batches(self) -> Iterator[pa.RecordBatch]:
        cols = ", ".join(quote_ident(c) for c in self.columns)
        query = f"SELECT {cols} FROM {self._from()} ORDER BY sample_id"
        with self._connect() as con:
            readonly.check_statement(con, query)
            yield from con.sql(query).to_arrow_reader(BATCH_ROWS)

    @property
    def n_batches(self) -> int:
        return -(-self.count // BATCH_ROWS)


def _previous_run(store: Store, flt: Any, params_hash: str, selection_hash: str) -> dict[str, Any] | None:
    rows = store.sql(
        "SELECT * FROM runs WHERE filter = ? AND filter_version = ? AND params_hash = ? AND selection_hash = ? "
        "ORDER BY version DESC LIMIT 1",
        params=[flt.name, flt.version, params_hash, selection_hash],
    ).to_pylist()
    return rows[0] if rows else None


def _decide(
    store: Store,
    flt: Any,
    selection: Selection,
    run_id: str,
    engine: str,
    workers: int | None,
    progress: Progress | None,
) -> pa.Table:
    if not isinstance(flt, SampleFilter | SelectionFilter):
        raise LineageError(f"{type(flt).__name__} is neither a SampleFilter nor a SelectionFilter")
    method = "decide" if isinstance(flt, SampleFilter) else "features"
    # Filters without a map phase just collect the selection: no worker processes for an identity.
    identity = isinstance(flt, SelectionFilter) and type(flt).features is SelectionFilter.features
    out = list(map_batches(flt, method, selection.batches(), engine="inline" if identity else engine,
                           total=selection.n_batches, workers=workers, progress=progress))
    if isinstance(flt, SampleFilter):
        table = pa.Table.from_batches(out, schema=DECISIONS)
    else:
        features = pa.Table.from_batches(out) if out else pa.table({"sample_id": pa.array([], pa.string())})
        table = flt.decide_all(features, SelectionContext(store, run_id)).cast(DECISIONS)
    _check(flt.name, table, selection.count)
    return table


def _check(name: str, table: pa.Table, expected: int) -> None:
    """A filter's output is part of the audit log: one valid decision per selected sample."""
    if table.num_rows != expected or pc.count_distinct(table["sample_id"]).as_py() != expected:
        raise LineageError(f"filter {name} returned {table.num_rows:,} decisions for {expected:,} selected samples")
    bad = set(pc.unique(table["decision"]).to_pylist()) - set(DECISION_VALUES)
    if bad:
        raise LineageError(f"filter {name} returned decision `{sorted(bad)[0]}`; allowed: keep, drop, flag")
    for reason in pc.unique(table["reason"]).drop_null().to_pylist():
        if not _REASON.match(reason):
            raise LineageError(f"filter {name} returned reason `{reason}`; reasons are short snake_case")


def _result(run_id: str, name: str, table: pa.Table, selected: int, version: int, seconds: float) -> RunResult:
    counts = Counter(table["decision"].to_pylist())
    mask = pc.not_equal(table["decision"], "keep")
    reasons = Counter(r.split(":")[0] for r in table.filter(mask)["reason"].to_pylist() if r)
    return RunResult(
        run_id, name, selected, counts["keep"], counts["drop"], counts["flag"], dict(reasons), version, seconds
    )


def _write_events(path: Path, table: pa.Table, run_id: str, version: int) -> None:
    n = table.num_rows
    stamped = table.append_column("run_id", pa.array([run_id] * n, pa.string())).append_column(
        "version", pa.array([version] * n, pa.int64())
    )
    write_parquet(path, EVENTS, stamped.to_batches(max_chunksize=BATCH_ROWS))


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
