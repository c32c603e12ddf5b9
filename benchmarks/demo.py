"""Time `lineage demo` end to end (ingest, 15 builds, models, outputs, filters, evals, attribution, report)
against its budget of two minutes on a 2-core laptop.

    .venv/bin/python benchmarks/demo.py [--generations 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lineage", "demo", str(Path(tmp) / "demo"), "--generations",
             str(args.generations), "--seed", str(args.seed), "--json"],
            check=True, capture_output=True,
        )
        seconds = time.perf_counter() - started
    print(f"lineage demo ({args.generations} generations x 3 policies): {seconds:.1f} s")
    verdict = "met" if seconds <= BUDGET_SECONDS else "MISSED"
    print(f"budget {BUDGET_SECONDS:.0f} s: {seconds / BUDGET_SECONDS:.2f} of it ({verdict})")


if __name__ == "__main__":
    main()
