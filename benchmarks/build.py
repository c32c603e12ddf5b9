"""Benchmark: a 1,000,000-sample build with quotas on two dimensions from a 10,000,000-sample pool,
against DuckDB's plain `USING SAMPLE 1000000 ROWS` over the same pool, timed in the same run.

    .venv/bin/python benchmarks/build.py [--pool 10000000] [--size 1000000] [--workdir DIR]

The pool is metadata with short texts (the issue allows it): 3 origins/methods, 20 sources, generations
0..3, ingested through `lineage ingest` once and reused on later runs in the same workdir.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from lineage.store import Store

POOL_SQL = """
COPY (
    SELECT 'p' || i AS id,
           'sample ' || i || ' about ' || (i * 7919 % 100003) AS text,
           CASE WHEN i % 10 < 4 THEN 'real' ELSE 'synthetic' END AS origin,
           CASE WHEN i % 10 < 4 THEN 'human' WHEN i % 10 < 7 THEN 'paraphrase' ELSE 'self-instruct' END AS method,
           'source-' || lpad(CAST(i % 20 AS VARCHAR), 2, '0') AS source,
           CASE WHEN i % 10 < 4 THEN NULL ELSE 'gen-model-' || (i % 3) END AS generator,
           CASE WHEN i % 10 < 4 THEN 0 ELSE 1 + i % 3 END AS generation
    FROM range({n}) t(i)
) TO '{path}' (FORMAT parquet)
"""

SPEC = {
    "name": "bench",
    "size": 1_000_000,
    "seed": 1,
    "quotas": {
        "origin": {"real": {"min": 0.5}, "synthetic": {"max": 0.5}},
        "source": {"source-0*": {"max": 0.4}, "source-1*": {"min": 0.3, "target": 0.45}},
    },
}


def make_store(workdir: Path, n: int) -> Store:
    root = workdir / f"store-{n}"
    if (root / "lineage.duckdb").exists():
        return Store(root)
    pool = workdir / f"pool-{n}.parquet"
    duckdb.sql(POOL_SQL.format(n=n, path=pool))
    store = Store.init(root)
    start = time.perf_counter()
    store.ingest(pool, memory_limit="2GB")
    print(f"ingested the {n:,}-sample pool in {time.perf_counter() - start:.1f}s (once per workdir)")
    return store


def plain_sample(store: Store, size: int) -> float:
    paths = [str(p) for p in sorted((store.root / "data" / "samples").glob("*.parquet"))]
    start = time.perf_counter()
    con = duckdb.connect()
    con.sql(f"SELECT sample_id FROM read_parquet({paths}) USING SAMPLE {size} ROWS").to_arrow_table()
    con.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=10_000_000)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lineage-bench-build")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    store = make_store(args.workdir, args.pool)
    baseline = plain_sample(store, args.size)
    spec = {**SPEC, "size": args.size, "name": f"bench-{int(time.time())}"}
    start = time.perf_counter()
    built = store.build(spec)
    ours = time.perf_counter() - start
    print(f"pool {args.pool:,}, build size {args.size:,} ({built})")
    print(f"{'lineage build (quotas on origin and source)':<46} {ours:8.2f} s")
    print(f"{'duckdb USING SAMPLE ' + format(args.size, ',') + ' ROWS':<46} {baseline:8.2f} s")
    print(f"ratio {ours / baseline:.2f}x (target <= 3x, and <= 30 s)")


if __name__ == "__main__":
    main()
