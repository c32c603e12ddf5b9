"""Diversity metrics on the local engine and on Ray with 1 and 2 workers, on the same seeded corpus.

The corpus and store are benchmarks/ray_scaling.py's (benchmarks/near_dedup.py's passages: real ones and
edited copies as a synthetic source). Each engine computes `diversity(by=["source"])` with the text
metrics (the reference being the real passages) and the times are printed with the ratio against the
local engine, plus a check that every engine's table is identical. "Ray, N workers" is a local cluster of N
CPUs, started and warmed up (one run) before the timed run, as in ray_scaling.py.

    .venv/bin/python benchmarks/ray_metrics.py [--docs 20000] [--dups 2000] [--seed 0] [--sample-size 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from near_dedup import corpus
from ray_scaling import fill

from lineage.store import Store


def timed(store: Store, engine: str, workers: int | None, sample_size: int) -> tuple[float, pa.Table]:
    started = time.perf_counter()
    result = store.diversity(
        by=["source"], metrics="text", sample_size=sample_size, record=False, engine=engine, workers=workers
    )
    return time.perf_counter() - started, result.table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-size", type=int, default=1000)
    args = parser.parse_args()

    import ray

    texts, _ = corpus(args.docs, args.dups, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = fill(Path(tmp), texts, args.dups)
        timed(store, "local", None, args.sample_size)  # warm-up: imports
        runs = {"local (this process)": timed(store, "local", None, args.sample_size)}
        for cpus in (1, 2):
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            timed(store, "ray", cpus, args.sample_size)  # warm-up: workers started, imports done
            runs[f"ray, {cpus} worker{'s' if cpus > 1 else ''}"] = timed(store, "ray", cpus, args.sample_size)
            ray.shutdown()
    base, reference = runs["local (this process)"]
    print(
        f"diversity (text metrics, by source, --sample-size {args.sample_size}, 5 draws) of {args.docs:,} "
        f"documents, seed {args.seed}"
    )
    print(f"{'engine':<24}{'seconds':>9}{'docs/s':>10}{'vs local':>10}  same table")
    for name, (seconds, table) in runs.items():
        same = "yes" if table.equals(reference) else "NO"
        print(f"{name:<24}{seconds:>9.2f}{args.docs / seconds:>10,.0f}{seconds / base:>9.1f}x  {same}")
    one, two = runs["ray, 1 worker"][0], runs["ray, 2 workers"][0]
    print(f"ray speed-up from 1 to 2 workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
