"""near-dedup at scale in bounded memory: wall, peak RSS and documents per second from 100k to millions.

The corpus is `fixtures/neardups.py` (seeded, ~2 KB documents of random English words, 5% planted near
duplicates). For each size, a store is made and the corpus ingested (`lineage ingest`, timed apart), then
`lineage filter run near-dedup` runs in a new process and is measured: wall seconds, its peak RSS (from
`wait4`, so the process's own), documents per second. At the smallest size datasketch runs in the same way, in
a new process over the same JSON Lines (`MinHash` per document, `MinHashLSH(threshold=0.8)`, query each,
union-find), as the baseline; it is skipped above `--datasketch-max` documents (it holds everything in Python).

    python benchmarks/filters_scale.py [--sizes 100000 1000000] [--memory-limit 2GB] [--workdir DIR] [--keep]

Targets (issue #23, on a 2-core 24 GB machine): 2.5M documents complete with peak RSS <= 4 GB; throughput at
the largest size within 1.5x of the smallest's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

from neardups import write  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from near_dedup import DATASKETCH_SCRIPT  # noqa: E402


def measured(cmd: list[str], log: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (GB) of a command in a new process (this checkout first on PYTHONPATH)."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "LINEAGE_PROGRESS_SECONDS": "30"}
    started = time.perf_counter()
    with open(log or os.devnull, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        out = proc.stdout.read().decode() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}\n{out}")
    return wall, usage.ru_maxrss / 1e6, out.strip()  # ru_maxrss is in KB on Linux


def lineage(*args: str) -> list[str]:
    return [sys.executable, "-m", "lineage", *args]


def corpus(n: int, args: argparse.Namespace, workdir: Path) -> Path:
    """docs-<n>.jsonl: the first n lines of a larger corpus made before (the generator draws blocks of 10,000 in
    order, so for multiples of 10,000 a prefix is the smaller corpus), else generated."""
    data = workdir / f"docs-{n}.jsonl"
    if data.exists():
        return data
    started = time.perf_counter()
    larger = sorted((int(p.stem.split("-")[1]), p) for p in workdir.glob("docs-*.jsonl") if p.stem[5:].isdigit())
    source = next((p for size, p in larger if size > n and n % 10_000 == 0), None)
    if source is not None:
        with open(source, "rb") as src, open(data, "wb") as out:
            for _, line in zip(range(n), src, strict=False):
                out.write(line)
    else:
        write(data, n, dup_rate=args.dup_rate, seed=args.seed)
    print(f"  corpus of {n:,} documents ({data.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f}s",
          flush=True)
    return data


def one_size(n: int, args: argparse.Namespace, workdir: Path) -> dict:
    data = corpus(n, args, workdir)
    store = workdir / f"store-{n}"
    shutil.rmtree(store, ignore_errors=True)
    measured(lineage("init", str(store)))
    wall, rss, _ = measured(lineage("--store", str(store), "--quiet", "ingest", str(data), "--source", "bench",
                                    "--method", "edit"), args.log)
    print(f"  ingest {n:,}: {wall:.0f}s, peak RSS {rss:.2f} GB", flush=True)
    run = ["--store", str(store), "--quiet", "filter", "run", "near-dedup"]
    if args.memory_limit:
        run += ["--memory-limit", args.memory_limit]
    wall, rss, out = measured(lineage(*run), args.log)
    row = {"docs": n, "gb": data.stat().st_size / 1e9, "wall": wall, "rss": rss, "rate": n / wall, "out": out}
    print(f"  near-dedup {n:,}: {wall:.1f}s, peak RSS {rss:.2f} GB, {n / wall:,.0f} docs/s\n    {out}", flush=True)
    if n <= args.datasketch_max:
        script = workdir / "datasketch_cli.py"
        script.write_text(DATASKETCH_SCRIPT)
        cmd = [sys.executable, str(script), str(data), str(workdir / "ds.json"), "128", "0.8", "1", "5"]
        ds_wall, ds_rss, _ = measured(cmd, args.log)
        row |= {"ds_wall": ds_wall, "ds_rss": ds_rss}
        print(f"  datasketch {n:,}: {ds_wall:.1f}s, peak RSS {ds_rss:.2f} GB ({ds_wall / wall:.1f}x lineage's wall)",
              flush=True)
    if not args.keep:
        shutil.rmtree(store, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--memory-limit", help="near-dedup's --memory-limit (default: its own)")
    parser.add_argument("--dup-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasketch-max", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="where corpora and stores go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the stores (corpora are always kept in --workdir)")
    parser.add_argument("--log", type=Path, help="append the commands' stderr (progress lines) here")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="filters-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(args.sizes):
        print(f"{n:,} documents", flush=True)
        rows.append(one_size(n, args, workdir))
    print("\ndocuments   text GB   wall s   peak RSS GB   docs/s   vs smallest")
    for r in rows:
        print(f"{r['docs']:>11,} {r['gb']:>8.2f} {r['wall']:>8.1f} {r['rss']:>13.2f} {r['rate']:>8,.0f} "
              f"{rows[0]['rate'] / r['rate']:>10.2f}x slower per doc")
    for r in rows:
        if "ds_wall" in r:
            print(f"datasketch at {r['docs']:,}: {r['ds_wall']:.1f}s, peak RSS {r['ds_rss']:.2f} GB: lineage "
                  f"{r['ds_wall'] / r['wall']:.1f}x faster, {r['ds_rss'] / r['rss']:.1f}x less memory")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
