"""Peak memory of the hf export: streamed in record batches (`lineage export --format hf`) against the whole
split read into one Arrow table and saved with `datasets` (what the hf export did before), in the same run,
each in its own process (peak RSS of that process). Both write the same `save_to_disk` folder.

The store is benchmarks/export.py's seeded corpus (~300 bytes of text a record), reused in the same workdir.

    .venv/bin/python benchmarks/hf_memory.py [--rows 300000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STREAMED = """
import sys
from lineage.store import Store
Store(sys.argv[1]).export("all", sys.argv[2], format="hf", force=True)
"""
WHOLE = """
import sys, datasets
from lineage.build import Build
from lineage.store import Store
build = Build(Store(sys.argv[1]), "all")
with build.store.reader() as con:
    con.register("_m", build.member_ids())
    table = con.sql("SELECT s.text, NULL::VARCHAR AS messages FROM samples s SEMI JOIN _m USING (sample_id) "
                    "ORDER BY s.sample_id").to_arrow_table()
datasets.Dataset(table).save_to_disk(sys.argv[2])
"""


def peak(code: str, store: Path, dest: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of `code` run in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-c", code, str(store), str(dest)], stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage (ru_maxrss in KiB)
        seconds = time.perf_counter() - start
        if status:
            err.seek(0)
            raise SystemExit(err.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from export import prepare

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-hf-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store, _ = prepare(workdir, args.rows)
    streamed, t_streamed = peak(STREAMED, store.root, workdir / "streamed")
    whole, t_whole = peak(WHOLE, store.root, workdir / "whole")
    print(f"{args.rows:,} rows: streamed peak RSS {streamed:,.0f} MiB in {t_streamed:.1f} s; whole split "
          f"{whole:,.0f} MiB in {t_whole:.1f} s; ratio {streamed / whole:.2f}")


if __name__ == "__main__":
    main()
