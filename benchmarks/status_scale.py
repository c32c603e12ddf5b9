"""`status` after many filter runs: does reading the latest decisions cost what one run's decisions cost?

A store of `--samples` short samples (default 2,000,000) and `--runs` runs of the `sql` filter (default 20): most
over every sample, each with other params (a run over every sample supersedes the runs before it), and every fourth
run and the last two over a tenth of them (`--where`), so the latest decisions are one run's over every sample
merged with later runs' over a part. Then, best of `--rounds`, interleaved so that load from other processes
falls on all alike:

* the baseline: a single run's decisions, `SELECT * FROM events WHERE run_id = ?` (the last run over every sample);
* `status`: the latest decision of every sample, `SELECT * FROM status WHERE filter = 'sql'` (target <= 2x the
  baseline), and the same as the history says it (every decision sorted by version), which `status` was before;
* `store.status()` (`lineage status`: what each filter has not seen), after the 20 runs against after the first.

    .venv/bin/python benchmarks/status_scale.py [--samples 2000000] [--runs 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lineage.store import Store

TARGET = 2.0
PARTIAL = "source = 'part'"  # a tenth of the samples
HISTORY = (
    "SELECT * FROM events WHERE filter = 'sql' "
    "QUALIFY row_number() OVER (PARTITION BY sample_id, filter ORDER BY version DESC) = 1"
)


def samples(n: int) -> pa.Table:
    """`n` short records with ids, one in ten of source `part`."""
    ids = [f"r{i}" for i in range(n)]
    texts = [f"Record {i}: item {i * 7919 % 100_003} of batch {i // 1000}." for i in range(n)]
    sources = ["part" if i % 10 == 0 else "main" for i in range(n)]
    return pa.table({"id": ids, "text": texts, "source": sources})


def best(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    out = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            out[name] = min(out[name], time.perf_counter() - started)
    return out


def run_all(store: Store, runs: int) -> tuple[str, float]:
    """The `sql` filter's runs; returns the last run over every sample and `store.status()`'s time after the first."""
    last_full, first_status = "", 0.0
    for i in range(runs):
        partial = i % 4 == 3 or i >= runs - 2
        params = {"where": f"length(text) > {40 + i}", "reason": "short_record"}
        result = store.run_filter("sql", params=params, where=PARTIAL if partial else None, force=True)
        if not partial:
            last_full = result.run_id
        if i == 0:
            started = time.perf_counter()
            store.status()
            first_status = time.perf_counter() - started
        print(f"run {i + 1}/{runs}: {'a tenth' if partial else 'every sample'}, {result.selected:,} decided in "
              f"{result.seconds:.1f} s", flush=True)
    return last_full, first_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "status")
        started = time.perf_counter()
        store.ingest(samples(args.samples), origin="real")
        print(f"setup: {args.samples:,} samples ingested in {time.perf_counter() - started:.1f} s", flush=True)
        last_full, first_status = run_all(store, args.runs)
        one_run = "SELECT * FROM events WHERE run_id = ?"
        current = "SELECT * FROM status WHERE filter = 'sql'"
        rows = store.sql("SELECT count(*) AS n FROM status WHERE filter = 'sql'")["n"][0].as_py()
        same = store.sql(current + " ORDER BY sample_id").equals(store.sql(HISTORY + " ORDER BY sample_id"))
        times = best(
            {
                "baseline": lambda: store.sql(one_run, params=[last_full]),
                "status": lambda: store.sql(current),
                "history": lambda: store.sql(HISTORY),
                "lineage status": store.status,
            },
            args.rounds,
        )
        ratio = times["status"] / times["baseline"]
        print(f"a single run's decisions ({args.samples:,} rows): {times['baseline']:.2f} s (baseline)")
        print(f"status after {args.runs} runs ({rows:,} rows): {times['status']:.2f} s: {ratio:.2f}x the baseline "
              f"(target <= {TARGET:g}x: {'met' if ratio <= TARGET else 'NOT met'}); same rows as the history: "
              f"{'yes' if same else 'NO'}")
        print(f"the history sorted (status before): {times['history']:.2f} s: "
              f"{times['history'] / times['baseline']:.2f}x the baseline")
        print(f"store.status() (`lineage status`): {times['lineage status']:.2f} s after {args.runs} runs, "
              f"{first_status:.2f} s after the first: {times['lineage status'] / first_status:.2f}x")


if __name__ == "__main__":
    main()
