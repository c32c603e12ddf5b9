"""A store that grows by many small commits: does it stay fast?

N ingests of 100 records each (Python API, default 10,000; `--ingests` for fewer), with the automatic compaction
policy on (its default). Prints, measured in this one run:

1. ingest latency, in wall time and in CPU time of this process (which the load of other processes changes least):
   the median of the last 20 ingests against the median of the first 20 ingests of a new store made at the end,
   one ingest into each in turn (the same records as the grown store's first 20), so that the machine's load
   falls on both alike (target <= 2x); also against the grown store's own first 20, measured an hour earlier on a
   machine whose load may have changed; and the slowest ingest (an ingest that triggers an automatic merge pays
   for it); every 250 ingests a progress line;
2. a point lookup (`SELECT * FROM samples WHERE sample_id = ?`) and `SELECT count(*) FROM samples` through
   `store.sql`, before and after `store.compact()`, against DuckDB reading one Parquet file of the same rows
   (best of 9 each, interleaved; target <= 2x after compaction), and lineage's fixed cost of any query. The
   baseline returns what `store.sql` returns, an Arrow table (`session.sql(...).to_arrow_table()`); DuckDB's Python rows
   (`fetchall()`) are printed too: for a one-row result they are ~0.4 ms cheaper than any Arrow table, which is
   most of a small store's `count(*)`.

`--max-seconds S` stops ingesting after S seconds and measures what was reached (a loaded machine may not fit
10,000 ingests in the time it has).

    .venv/bin/python benchmarks/many_commits.py [--ingests N] [--records N] [--max-seconds S] [--workdir DIR]
    .venv/bin/python benchmarks/many_commits.py --workdir DIR --queries-only   # part 2 again on that store
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_INGEST, TARGET_QUERY = 2.0, 2.0
WINDOW = 20
PROGRESS = 250  # ingests per progress line


def records(i: int, n: int) -> list[dict[str, object]]:
    """`n` chat records with ids; every tenth answer is the same short text (duplicates across batches)."""
    return [
        {
            "id": f"b{i}-{j}",
            "messages": [
                {"role": "user", "content": f"Question {i}.{j}: what does item {j * 7919 % 1000} mean?"},
                {"role": "assistant", "content": "Yes." if j % 10 == 0 else f"It means {i * n + j} things."},
            ],
        }
        for j in range(n)
    ]


def measure(store: Any, one: Path, probe: str, rounds: int = 9) -> dict[str, float]:
    """Best of `rounds` for each query, lineage and the baseline interleaved so that load from other processes
    falls on both alike. The baseline is DuckDB over one Parquet file of the same rows, in one connection opened
    once (a user's session: a view `samples` over the file); lineage runs each query through the public
    `store.sql`. `fixed` is lineage's cost of any query (`SELECT 1`)."""
    import duckdb

    session = duckdb.connect(":memory:")
    session.execute(f"CREATE VIEW samples AS SELECT * FROM read_parquet('{one}')")

    def direct(sql: str, params: list[object]) -> None:
        session.sql(sql, params=params or None).to_arrow_table()  # DuckDB's way to Arrow (no DB-API copy)

    def rows(sql: str, params: list[object]) -> None:
        session.execute(sql, params).fetchall()

    lookup = "SELECT * FROM samples WHERE sample_id = ?"
    count = "SELECT count(*) FROM samples"
    runs: dict[str, Callable[[], object]] = {
        "lookup": lambda: store.sql(lookup, params=[probe]),
        "lookup_base": lambda: direct(lookup, [probe]),
        "lookup_rows": lambda: rows(lookup, [probe]),
        "count": lambda: store.sql(count),
        "count_base": lambda: direct(count, []),
        "count_rows": lambda: rows(count, []),
        "fixed": lambda: store.sql("SELECT 1"),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def one_file(store: Any, work: Path) -> Path:
    """The baseline's single Parquet file: every sample, sorted by sample_id, in row groups of 65,536 rows."""
    import pyarrow.parquet as pq

    one = work / "one.parquet"
    pq.write_table(store.sql("SELECT * FROM samples ORDER BY sample_id"), one, compression="zstd",
                   row_group_size=65_536)
    return one


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingests", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100, help="records per ingest (default 100)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--max-seconds", type=float, help="stop ingesting after this long (then measure as usual)")
    parser.add_argument("--queries-only", action="store_true",
                        help="only part 2, on the store a run with the same --workdir left")
    args = parser.parse_args(argv)
    if args.ingests < 2 * WINDOW:
        parser.error(f"--ingests must be at least {2 * WINDOW}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-many-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lineage
    from lineage.compaction import live_segments

    if args.queries_only:
        queries(lineage.Store(work / "store"), work)
        return
    store = lineage.Store.init(work / "store")
    baseline = lineage.Store.init(work / "baseline")  # a new store's first ingests, next to the grown one's last
    latencies: list[float] = []
    cpu: list[float] = []  # CPU seconds of this process per ingest: what the load of other processes leaves alone
    base_wall: list[float] = []
    base_cpu: list[float] = []

    def timed(target: Any, batch: list[dict[str, object]], walls: list[float], cpus: list[float]) -> None:
        t, c = time.perf_counter(), time.process_time()
        target.ingest(batch, origin="synthetic", source="pipeline", generation=1)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)

    started = time.perf_counter()
    last: int | None = None  # where the last WINDOW ingests start, each followed by one into `baseline`
    i = 0
    while last is None or i < last + WINDOW:
        out_of_time = args.max_seconds and time.perf_counter() - started > args.max_seconds and i >= WINDOW
        if last is None and (args.ingests - i <= WINDOW or out_of_time):
            last = i
            if out_of_time:
                print(f"stopping after {i + WINDOW:,} ingests: --max-seconds {args.max_seconds:g}", flush=True)
        timed(store, records(i, args.records), latencies, cpu)
        if last is not None:
            timed(baseline, records(i - last, args.records), base_wall, base_cpu)
        i += 1
        if i % PROGRESS == 0:
            print(f"  {i:,} ingests, {time.perf_counter() - started:.0f} s; last {PROGRESS}: median "
                  f"{statistics.median(latencies[-PROGRESS:]) * 1000:.0f} ms wall, "
                  f"{statistics.median(cpu[-PROGRESS:]) * 1000:.0f} ms CPU, "
                  f"slowest {max(latencies[-PROGRESS:]):.2f} s; "
                  f"{len(live_segments(store, 'samples'))} live sample segments", flush=True)
    done = len(latencies)
    segments = len(live_segments(store, "samples"))
    took = time.perf_counter() - started
    print(f"{done:,} ingests of {args.records:,} records ({done * args.records:,} samples) in {took:.0f} s; "
          f"{segments} live sample segments (automatic compaction)")
    for label, series, base in (("wall", latencies, base_wall), ("CPU", cpu, base_cpu)):
        first, last_ms = statistics.median(series[:WINDOW]), statistics.median(series[-WINDOW:])
        fresh = statistics.median(base)
        ratio = last_ms / fresh
        print(f"ingest {label} time, median of the last {WINDOW}: {last_ms * 1000:.0f} ms; of a new store's first "
              f"{WINDOW}, interleaved with them: {fresh * 1000:.0f} ms; ratio {ratio:.2f} (target <= {TARGET_INGEST}: "
              f"{'met' if ratio <= TARGET_INGEST else 'MISSED'}); against this store's own first {WINDOW} "
              f"({first * 1000:.0f} ms, earlier): {last_ms / first:.2f}; slowest {max(series):.2f} s")

    queries(store, work)


def queries(store: Any, work: Path) -> None:
    """Part 2: the queries before and after `compact`, against DuckDB over one Parquet file of the same rows."""
    probe = store.sql("SELECT sample_id FROM samples WHERE external_id = 'b7-42'")["sample_id"][0].as_py()
    one = one_file(store, work)
    before = measure(store, one, probe)
    result = store.compact()
    after = measure(store, one, probe)
    print(f"compact: {result.summary()}")
    print(f"any lineage query (`SELECT 1`, the catalog snapshot): {after['fixed'] * 1000:.1f} ms")
    for name, label in (("lookup", "point lookup by sample_id"), ("count", "count(*)")):
        base = min(before[f"{name}_base"], after[f"{name}_base"])
        as_rows = min(before[f"{name}_rows"], after[f"{name}_rows"])
        r = after[name] / base
        print(f"{label}: {before[name] * 1000:.1f} ms before compact, {after[name] * 1000:.1f} ms after; "
              f"DuckDB on one Parquet file {base * 1000:.1f} ms; after/baseline {r:.2f} "
              f"(target <= {TARGET_QUERY}: {'met' if r <= TARGET_QUERY else 'MISSED'}); without lineage's fixed "
              f"cost {max(after[name] - after['fixed'], 0) * 1000:.1f} ms; DuckDB's rows as Python tuples instead "
              f"of Arrow {as_rows * 1000:.1f} ms (ratio {after[name] / as_rows:.2f})")


if __name__ == "__main__":
    main()
