"""What one small query costs through the store, against DuckDB reading the same rows from one Parquet file.

A store of `--samples` short samples (default 100,000) in one ingest. Then `--repeat` times (default 50) each,
interleaved so that load from other processes falls on all alike, the median of:

* the baseline: `SELECT count(*) FROM read_parquet(<one file of the same rows>)` on a DuckDB connection made once,
  as a user's session would hold it;
* `store.sql('SELECT count(*) FROM samples')`: user SQL, locked down (its own DuckDB instance, kept while the store's
  version and memory limit stay the same);
* `store.query(...)`: lineage's own SQL (the shared instance, not locked down: a catalog copy and views per query);
* the first `store.sql` of a new `Store` object (what a one-shot `lineage sql` pays in-process, start-up aside).

    .venv/bin/python benchmarks/query_overhead.py [--samples 100000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lineage.store import Store

COUNT = "SELECT count(*) FROM samples"


def samples(n: int) -> pa.Table:
    texts = [f"Record {i}: item {i * 7919 % 100_003} of batch {i // 1000}." for i in range(n)]
    return pa.table({"id": [f"r{i}" for i in range(n)], "text": texts})


def medians(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = samples(args.samples)
        store = Store.init(Path(tmp) / "store")
        store.ingest(rows, origin="real", source="bench", method="human")
        n = store.sql(COUNT).column(0)[0].as_py()
        assert n == args.samples, n
        parquet = Path(tmp) / "samples.parquet"
        pq.write_table(store.sql("SELECT * FROM samples"), parquet)
        con = duckdb.connect()  # once, like a user's session
        baseline = f"SELECT count(*) FROM read_parquet('{parquet}')"
        assert con.sql(baseline).fetchall()[0][0] == n
        root = store.root
        took = medians(
            {
                "duckdb": lambda: con.sql(baseline).fetchall(),
                "store.sql": lambda: store.sql(COUNT),
                "store.query": lambda: store.query(COUNT),
                "new Store + sql": lambda: Store(root).sql(COUNT),
            },
            args.repeat,
        )
    base = took["duckdb"]
    print(f"{args.samples:,} samples, median of {args.repeat} (interleaved); count(*) = {n:,}")
    for name, seconds in took.items():
        print(f"  {name:<16} {seconds * 1000:8.2f} ms   {seconds / base:6.1f}x duckdb on one Parquet file")


if __name__ == "__main__":
    main()
