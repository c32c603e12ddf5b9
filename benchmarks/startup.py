"""A trivial command's fixed cost: `lineage sql 'select 1'` on a store of 1,000 segments against DuckDB itself.

Builds (once, in --workdir) a store of N sample segments (default 1,000: automatic compaction off, N files of 20
records ingested 100 files per commit), then times, interleaved and each as a new process, as a user runs them:

* `lineage --store STORE sql 'select 1'` (this checkout's lineage: its folder goes first on PYTHONPATH);
* `python -c "import duckdb; duckdb.connect().sql('select 1')"`, the floor: Python, DuckDB, one query.

Best of --repeat runs each, wall and CPU (user + system) time. Targets: lineage <= 0.35 s, <= 2x the baseline.

    .venv/bin/python benchmarks/startup.py [--segments 1000] [--repeat 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_RATIO = 0.35, 2.0
BASELINE = "import duckdb; duckdb.connect().sql('select 1')"


def build(store_path: Path, segments: int) -> None:
    """A store of `segments` sample segments: one per ingested file, never merged."""
    sys.path.insert(0, str(ROOT))
    from lineage.store import Store

    started = time.perf_counter()
    store = Store.init(store_path)
    store.set_auto_compact(None)  # the point is many segments: the automatic policy would merge them
    inputs = store_path.parent / "inputs"
    inputs.mkdir(exist_ok=True)
    files = []
    for i in range(segments):
        path = inputs / f"part-{i:05d}.jsonl"
        path.write_text("".join(json.dumps({"id": f"{i}-{j}", "text": f"record {j} of file {i}."}) + "\n"
                                for j in range(20)))
        files.append(path)
    for start in range(0, segments, 100):
        store.ingest_many(files[start : start + 100], origin="real", source=f"part-{start // 100}")
    print(f"built a store of {segments:,} segments in {time.perf_counter() - started:.0f} s")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of a command in a new process."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keeps the store between runs (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-startup-"))
    store = work / f"store-{args.segments}"
    if not store.exists():
        work.mkdir(parents=True, exist_ok=True)
        build(store, args.segments)
    commands = {
        "lineage sql 'select 1'": [sys.executable, "-m", "lineage", "--store", str(store), "sql", "select 1"],
        "python -c 'import duckdb; ...select 1'": [sys.executable, "-c", BASELINE],
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):  # interleaved, so both see the same load
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    print(f"{args.segments:,} segments; best of {args.repeat}, each a new process")
    print(f"{'command':<42}{'wall s':>8}{'cpu s':>8}  all runs (wall s)")
    for name, runs in times.items():
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        print(f"{name:<42}{wall:>8.3f}{cpu:>8.3f}  {', '.join(f'{w:.2f}' for w, _ in runs)}")
    (wall, cpu), (base_wall, base_cpu) = ((min(w for w, _ in r), min(c for _, c in r)) for r in times.values())
    print(f"\nlineage: {wall:.3f} s wall (target <= {TARGET_SECONDS} s); {wall / base_wall:.2f}x the baseline's wall "
          f"time, {cpu / base_cpu:.2f}x its CPU time (target <= {TARGET_RATIO:g}x)")


if __name__ == "__main__":
    main()
