"""A trivial command's fixed cost: `lineage sql 'select 1'` on a store of 1,000 segments against DuckDB itself.

Builds (once, in --workdir) a store of N sample segments of 20 records (default 1,000; automatic compaction off),
then times, interleaved and each as a new process, as a user runs them:

* `lineage --store STORE sql 'select 1'` (this checkout's lineage: its folder goes first on PYTHONPATH);
* `python -c "import duckdb; duckdb.connect().sql('select 1')"`, the floor: Python, DuckDB, one query.

Best of --repeat runs each, wall and CPU (user + system) time. Targets: lineage <= 0.35 s, <= 2x the baseline.
lineage's modules are byte-compiled first, as installing it or its first run leaves them (DuckDB's are, in
site-packages): otherwise, where PYTHONDONTWRITEBYTECODE is set, every run would compile them again (~40 ms).

    .venv/bin/python benchmarks/startup.py [--segments 1000] [--repeat 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import compileall
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
    """A store of `segments` sample segments of 20 records: one ingest, then one commit that splits its segment
    into `segments` (compaction in reverse: the split parts are registered, the original retired). Ingesting as
    many files would make the same store, slower (each ingest looks up what the store holds)."""
    sys.path.insert(0, str(ROOT))
    import pyarrow.parquet as pq

    from lineage.core.ids import uuid7
    from lineage.store import Store

    started = time.perf_counter()
    store = Store.init(store_path)
    store.set_auto_compact(None)  # the point is many segments: the automatic policy would merge them
    records = ({"id": str(i), "text": f"record {i % 20} of part {i // 20}."} for i in range(20 * segments))
    store.ingest(records, origin="real", source="startup-bench")
    ingested = store.sql("SELECT segment_id, path FROM segments WHERE kind = 'samples'").to_pylist()[0]
    rows = pq.read_table(store.root / ingested["path"])
    split_id = uuid7()
    with store.transaction("compact", split_id, {"split": segments}) as txn:
        for i in range(segments):
            part = rows.slice(20 * i, 20)
            txn.write_segment("samples", f"{split_id}-{i:05d}", lambda draft, part=part: pq.write_table(
                part, draft, compression="zstd"))
        txn.retired.append(ingested["segment_id"])
    print(f"built a store of {segments:,} segments in {time.perf_counter() - started:.0f} s")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of a command in a new process."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    # From this checkout: `python -m` puts the working directory first on sys.path.
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path}, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keeps the store between runs (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="lineage-startup-"))).resolve()
    store = work / f"store-{args.segments}"
    if not store.exists():
        work.mkdir(parents=True, exist_ok=True)
        build(store, args.segments)
    compileall.compile_dir(ROOT / "lineage", quiet=1)
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
