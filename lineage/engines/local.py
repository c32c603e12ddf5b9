"""Executors run a filter's pure per-batch function over the selection: in-process or a process pool.

The same per-batch functions run on Ray through `lineage.engines.ray.engine`; the run (`filters.run`) picks one.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from lineage.errors import LineageError
from lineage.filters.base import Filter, FilterParams
from lineage.filters.events import BATCH_ROWS

Progress = Callable[[int, int | None], None]
ENGINES = ("local", "inline", "ray")


def _apply(cls: type[Filter], params: FilterParams, method: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    return getattr(cls(params), method)(batch)


def die_with_parent(parent: int) -> None:
    """In a worker: be killed when the driver dies (even by SIGKILL), so a killed run leaves no workers behind.
    Linux's PR_SET_PDEATHSIG; elsewhere the pool's own broken-pipe handling is all there is."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the driver died before the call above: nobody would signal us
        os._exit(1)


def map_batches(
    flt: Filter,
    method: str,
    batches: Iterable[pa.RecordBatch],
    *,
    engine: str,
    total: int | None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield `flt.<method>(batch)` for every batch, in order (the Ray engine is `lineage.engines.ray`).

    `total` counts samples; `progress(done, total)` is called in samples after each batch (batches vary in size
    at segment boundaries, so counting them would overrun an estimate of their number)."""
    if engine not in ("local", "inline"):
        raise LineageError(f"map_batches runs locally; engine `{engine}` has its own executor")
    report = progress or (lambda done, all_: None)
    if engine == "inline" or (total is not None and total <= BATCH_ROWS):
        done = 0
        for batch in batches:
            yield getattr(flt, method)(batch)
            done += batch.num_rows
            report(done, total)
        return
    yield from _pool(flt, method, batches, workers or os.cpu_count() or 1, total, report)


def _pool(
    flt: Filter, method: str, batches: Iterable[pa.RecordBatch], workers: int, total: int | None, report: Progress
) -> Iterator[pa.RecordBatch]:
    # spawn, not fork: the driver holds DuckDB connections and threads that must not be copied.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: deque[tuple[Future[pa.RecordBatch], int]] = deque()
        done = 0
        for batch in batches:
            pending.append((pool.submit(_apply, type(flt), flt.params, method, batch), batch.num_rows))
            if len(pending) >= 2 * workers:  # bounded: at most two batches per worker in flight
                future, rows = pending.popleft()
                yield future.result()
                done += rows
                report(done, total)
        while pending:
            future, rows = pending.popleft()
            yield future.result()
            done += rows
            report(done, total)
