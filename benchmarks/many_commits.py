"""A store that grows by many small commits: does it stay fast?

N ingests of 100 records each (Python API, default 10,000; `--ingests` for fewer), with the automatic compaction
policy on (its default). Prints, measured in this one run:

1. ingest latency: the median of the first 20 ingests against the median of the last 20 (target <= 2x), and the
   slowest ingest (an ingest that triggers an automatic merge pays for it);
2. a point lookup (`SELECT * FROM samples WHERE sample_id = ?`) and `SELECT count(*) FROM samples` through
   `store.sql`, before and after `store.compact()`, against DuckDB reading one Parquet file of the same rows
   (best of 5 each; target <= 2x after compaction).

    .venv/bin/python benchmarks/many_commits.py [--ingests N] [--workdir DIR]
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


def records(i: int) -> list[dict[str, object]]:
    """100 chat records with ids; every tenth answer is the same short text (duplicates across batches)."""
    return [
        {
            "id": f"b{i}-{j}",
            "messages": [
                {"role": "user", "content": f"Question {i}.{j}: what does item {j * 7919 % 1000} mean?"},
                {"role": "assistant", "content": "Yes." if j % 10 == 0 else f"It means {i * 100 + j} things."},
            ],
        }
        for j in range(100)
    ]


def best(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def queries(store: Any, probe: str) -> dict[str, float]:
    return {
        "lookup": best(lambda: store.sql("SELECT * FROM samples WHERE sample_id = ?", params=[probe])),
        "count": best(lambda: store.sql("SELECT count(*) FROM samples")),
    }


def baseline(store: Any, work: Path, probe: str) -> dict[str, float]:
    """DuckDB over one Parquet file of the same rows, a fresh connection per query as lineage opens one."""
    import duckdb
    import pyarrow.parquet as pq

    one = work / "one.parquet"
    rows = store.sql("SELECT * FROM samples ORDER BY sample_id")
    pq.write_table(rows, one, compression="zstd", row_group_size=65_536)

    def run(sql: str, params: list[object]) -> None:
        con = duckdb.connect(":memory:")
        con.execute(sql.replace("samples", f"read_parquet('{one}')"), params).fetchall()
        con.close()

    return {
        "lookup": best(lambda: run("SELECT * FROM samples WHERE sample_id = ?", [probe])),
        "count": best(lambda: run("SELECT count(*) FROM samples", [])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingests", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if args.ingests < 2 * WINDOW:
        parser.error(f"--ingests must be at least {2 * WINDOW}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-many-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lineage

    store = lineage.Store.init(work / "store")
    latencies = []
    started = time.perf_counter()
    for i in range(args.ingests):
        t = time.perf_counter()
        store.ingest(records(i), origin="synthetic", source="pipeline", generation=1)
        latencies.append(time.perf_counter() - t)
        if (i + 1) % 500 == 0:
            print(f"  {i + 1:,} ingests, {time.perf_counter() - started:.0f} s", flush=True)
    first, last = statistics.median(latencies[:WINDOW]), statistics.median(latencies[-WINDOW:])
    segments = store.sql("SELECT count(*) AS n FROM segments WHERE kind = 'samples'")["n"][0].as_py()
    rows = args.ingests * 100
    print(f"{args.ingests:,} ingests of 100 records ({rows:,} samples) in {time.perf_counter() - started:.0f} s; "
          f"{segments} live sample segments (automatic compaction)")
    ratio = last / first
    print(f"ingest latency, median of the first {WINDOW}: {first * 1000:.0f} ms; of the last {WINDOW}: "
          f"{last * 1000:.0f} ms; ratio {ratio:.2f} (target <= {TARGET_INGEST}: "
          f"{'met' if ratio <= TARGET_INGEST else 'MISSED'}); slowest ingest {max(latencies):.2f} s")

    probe = store.sql("SELECT sample_id FROM samples WHERE external_id = 'b7-42'")["sample_id"][0].as_py()
    before = queries(store, probe)
    result = store.compact()
    after = queries(store, probe)
    base = baseline(store, work, probe)
    print(f"compact: {result.summary()}")
    for name, label in (("lookup", "point lookup by sample_id"), ("count", "count(*)")):
        r = after[name] / base[name]
        print(f"{label}: {before[name] * 1000:.0f} ms before compact, {after[name] * 1000:.0f} ms after; "
              f"DuckDB on one Parquet file {base[name] * 1000:.0f} ms; after/baseline {r:.2f} "
              f"(target <= {TARGET_QUERY}: {'met' if r <= TARGET_QUERY else 'MISSED'})")


if __name__ == "__main__":
    main()
