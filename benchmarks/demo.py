"""Time `lineage demo` end to end (ingest, 15 builds, models, outputs, filters, evals, attribution, report)
against its budget of two minutes on a 2-core laptop, and with `--baseline REV` against the demo of an earlier
commit measured in the same run (its code from `git archive`, this environment's packages), alternating runs.

    .venv/bin/python benchmarks/demo.py [--generations 5] [--train-size 10000] [--seed 0]
                                        [--baseline REV] [--runs 1]

With a baseline it also says whether both printed the same figures (per policy and generation).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 120.0
REPO = Path(__file__).resolve().parent.parent


def checkout(rev: str, into: Path) -> Path:
    """The commit's tree (the `lineage` package with it) in `into`."""
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_demo(code: Path, store: Path, args: argparse.Namespace) -> tuple[float, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(code)}  # first on sys.path: the code under test, not the installed one
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lineage", "demo", str(store), "--generations", str(args.generations),
         "--train-size", str(args.train_size), "--seed", str(args.seed), "--json"],
        check=True, capture_output=True, text=True, env=env, cwd=code,
    )
    return time.perf_counter() - started, json.loads(done.stdout)["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", help="A commit to time the same demo of, alternating with this tree's.")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; demo: {args.generations} "
          f"generations x 3 policies, {args.train_size:,} real sentences, seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": REPO}
        if args.baseline:
            trees[f"baseline {args.baseline}"] = checkout(args.baseline, Path(tmp) / "baseline")
        times: dict[str, list[float]] = {name: [] for name in trees}
        figures: dict[str, list[dict]] = {}
        for i in range(args.runs):
            for name, code in trees.items():
                seconds, figures[name] = run_demo(code, Path(tmp) / f"store-{i}-{len(times[name])}-{name[:4]}", args)
                times[name].append(seconds)
    for name, ts in times.items():
        print(f"{name}: median {statistics.median(ts):.1f} s of {len(ts)} run(s) {[round(t, 1) for t in ts]}")
    mine = statistics.median(times["this tree"])
    verdict = "met" if mine <= BUDGET_SECONDS else "MISSED"
    print(f"budget {BUDGET_SECONDS:.0f} s: {mine / BUDGET_SECONDS:.2f} of it ({verdict})")
    if args.baseline:
        base = statistics.median(times[f"baseline {args.baseline}"])
        same = figures["this tree"] == figures[f"baseline {args.baseline}"]
        print(f"this tree {base / mine:.2f}x as fast as {args.baseline}; figures "
              f"{'identical' if same else 'DIFFER'}; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
