"""The cost of a small ingest into a store of many earlier ingests, against the same ingest into an empty store.

Builds a store of N earlier ingests (default 500; the issue measured 2,000) of 20 records each, then times, in
one run, a 100-record ingest (no parents) into that store and into an empty one, each in its own subprocess
(best of 3). Target: ratio <= 1.5 (resolution cost should follow the input, not the store).

    .venv/bin/python benchmarks/small_ingests.py [--ingests N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5


def write(path: Path, prefix: str, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"{prefix}-{i}", "text": f"{prefix} record {i}."}) + "\n" for i in range(n))
    )
    return path


def timed_ingest(store: Path, data: Path) -> float:
    """Best of three: each run ingests the same file again (a no-op after the first) into a copy of nothing."""
    times = []
    for attempt in range(3):
        source = f"bench-{attempt}"  # a new source each time: 100 new samples each run
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "lineage",
                "--store",
                str(store),
                "ingest",
                str(data),
                "--origin",
                "real",
                "--source",
                source,
            ],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingests", type=int, default=500)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-small-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lineage

    big, empty = work / "many", work / "empty"
    if not big.exists():
        started = time.perf_counter()
        store = lineage.Store.init(big)
        for i in range(args.ingests):
            store.ingest(write(work / "earlier.jsonl", f"e{i}", 20), origin="real", source=f"s{i % 10}")
        print(f"built a store of {args.ingests:,} ingests in {time.perf_counter() - started:.0f} s")
    if not empty.exists():
        lineage.Store.init(empty)
    data = write(work / "small.jsonl", "new", 100)
    into_empty = timed_ingest(empty, data)
    into_many = timed_ingest(big, data)
    ratio = into_many / into_empty
    print(f"100-record ingest into an empty store: {into_empty:.2f} s")
    print(f"100-record ingest into a store of {args.ingests:,} ingests: {into_many:.2f} s")
    print(f"ratio: {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'})")


if __name__ == "__main__":
    main()
