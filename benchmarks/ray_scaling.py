"""Near-dedup on the local executor and on Ray with 1 and 2 workers, on the same seeded corpus.

The corpus is benchmarks/near_dedup.py's (passages of WordNet sentences with planted near duplicates).
One store is filled once; each engine then runs `near-dedup --force` over it and the times are printed
with the ratio against the local executor measured in the same run, plus a check that every engine's
events are the same set. "Ray, N workers" is a local cluster of N CPUs (`ray.init(num_cpus=N)`), so every
stage, shuffles included, gets N; each cluster is started and warmed up (one run) before the timed run, as
a team's standing cluster would be, and its start-up is printed separately.

    .venv/bin/python benchmarks/ray_scaling.py [--docs 20000] [--dups 2000] [--seed 0]

Throughput per core and the cluster size for 1 billion documents are worked out in the README's
"Scale-out on Ray" section from these figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from near_dedup import corpus

from lineage.store import Store

COLUMNS = "sample_id, decision, score, reason, related_id, cluster_id"


def fill(root: Path, texts: list[str], dups: int) -> Store:
    store = Store.init(root / "store")
    real = [{"id": str(i), "text": t} for i, t in enumerate(texts[: len(texts) - dups])]
    store.ingest(real, origin="real", source="bench-real", method="human")
    copies = [{"id": str(i), "text": t} for i, t in enumerate(texts[len(texts) - dups :], start=len(texts) - dups)]
    store.ingest(copies, origin="synthetic", source="bench-synthetic", method="edit", generation=1)
    return store


def timed(store: Store, engine: str, workers: int | None) -> tuple[float, set[tuple[object, ...]], int]:
    started = time.perf_counter()
    result = store.run_filter("near-dedup", engine=engine, workers=workers, force=True)
    seconds = time.perf_counter() - started
    rows = store.sql(f"SELECT {COLUMNS} FROM events WHERE run_id = ?", params=[result.run_id]).to_pylist()
    events = {tuple(round(v, 9) if isinstance(v, float) else v for v in r.values()) for r in rows}
    return seconds, events, result.dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import ray

    texts, _ = corpus(args.docs, args.dups, args.seed)
    startup: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = fill(Path(tmp), texts, args.dups)
        runs = {"local (process pool, 2 cores)": timed(store, "local", 2)}
        for cpus in (1, 2):
            started = time.perf_counter()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            startup[cpus] = time.perf_counter() - started
            timed(store, "ray", cpus)  # warm-up: workers started, imports done
            runs[f"ray, {cpus} worker{'s' if cpus > 1 else ''}"] = timed(store, "ray", cpus)
            ray.shutdown()
    base = runs["local (process pool, 2 cores)"][0]
    reference = runs["local (process pool, 2 cores)"][1]
    print(f"near-dedup of {args.docs:,} documents ({args.dups:,} planted near duplicates), seed {args.seed}")
    print(f"ray.init: {startup[1]:.1f}s (1 CPU), {startup[2]:.1f}s (2 CPUs), not in the times below")
    print(f"{'engine':<32}{'seconds':>9}{'docs/s':>10}{'vs local':>10}{'dropped':>9}  same events")
    for name, (seconds, events, dropped) in runs.items():
        same = "yes" if events == reference else "NO"
        print(f"{name:<32}{seconds:>9.2f}{args.docs / seconds:>10,.0f}{seconds / base:>9.1f}x{dropped:>9,}  {same}")
    one, two = runs["ray, 1 worker"][0], runs["ray, 2 workers"][0]
    print(f"ray speed-up from 1 to 2 workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
