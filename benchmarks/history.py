"""Does a long history cost the reader? The same store with 10 commits and with 10,000 more behind it.

Builds a small store (`--ingests` ingests of 100 chat records, automatic compaction off), copies it, and gives the
copy `--history` more versions as a store that has run that long keeps them: one commit, one batch row and one
replaced (retired) samples segment per version, the live segments unchanged. Then measures on both, interleaved
(the median of `--rounds` each, CPU time of this process, which the load of other processes changes least): opening the
store, `SELECT 1`, `count(*)`, a lookup by external id, and a 100-record ingest. Target: every ratio
(long history / short) at most 1.2, i.e. "opening a store and running one query costs the same at 10 segments
as at 10,000".

    .venv/bin/python benchmarks/history.py [--ingests 10] [--history 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_commits import records

TARGET = 1.2

# One commit, one batch row and one replaced samples segment per added version (as ingests followed by automatic
# compactions leave them); the last replaced segment is retired at the last version, so none of them is live.
INFLATE_SQL = """
INSERT INTO _lineage.commits SELECT $v + i, now(), 'ingest', uuid()::VARCHAR,
    '{{"input": "<python>", "present": 0, "rejected": 0, "stored": 100}}' FROM range(1, $k + 1) t(i);
INSERT INTO _lineage.batches SELECT b.* REPLACE (uuid()::VARCHAR AS batch_id, $v + i AS version)
    FROM (SELECT * FROM _lineage.batches LIMIT 1) b, range(1, $k + 1) t(i);
INSERT INTO _lineage.segments SELECT u, 'samples', 'data/samples/' || u || '.parquet', 100, 13400, sha256(u), u,
    $v + i, least($v + i + 1, $v + $k) FROM (SELECT uuid()::VARCHAR AS u, i FROM range(1, $k + 1) t(i));
"""


def inflate(catalog_file: Path, versions: int) -> None:
    import duckdb

    con = duckdb.connect(str(catalog_file))
    try:
        latest = con.execute("SELECT max(version) FROM _lineage.commits").fetchall()[0][0]
        con.execute("BEGIN")
        for statement in INFLATE_SQL.split(";\n"):
            if statement.strip():
                con.execute(statement.replace("$v", str(int(latest))).replace("$k", str(int(versions))))
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingests", type=int, default=10)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-history-"))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lineage

    short = lineage.Store.init(work / "short")
    short.set_auto_compact(None)
    for i in range(args.ingests):
        short.ingest(records(i, 100), origin="synthetic", source="pipeline", generation=1)
    shutil.copytree(short.root, work / "long")
    inflate(work / "long" / "lineage.duckdb", args.history)
    stores = {"short": short, "long": lineage.open(work / "long")}
    print(f"{args.ingests} ingests of 100 records; the long copy has {args.history:,} more versions "
          f"({stores['long'].version:,} in all) and as many replaced segments")

    def operations(store: Any) -> dict[str, Callable[[], object]]:
        return {
            "open the store": lambda: lineage.open(store.root),
            "SELECT 1": lambda: store.sql("SELECT 1"),
            "count(*) FROM samples": lambda: store.sql("SELECT count(*) FROM samples"),
            "lookup by external id": lambda: store.sql("SELECT * FROM samples WHERE external_id = 'b3-42'"),
        }

    times: dict[tuple[str, str], list[float]] = {}
    for i in range(args.rounds):
        for k, (label, store) in enumerate(stores.items()):
            for name, fn in operations(store).items():
                times.setdefault((label, name), []).append(cpu(fn))
            batch = records(1_000_000 + 2 * i + k, 100)
            times.setdefault((label, "100-record ingest"), []).append(
                cpu(lambda s=store, b=batch: s.ingest(b, origin="synthetic", source="pipeline", generation=1))
            )
    names = [*operations(short), "100-record ingest"]
    rows = [(name, statistics.median(times["short", name]), statistics.median(times["long", name])) for name in names]
    worst = 0.0
    for name, a, b in rows:
        worst = max(worst, b / a)
        print(f"{name}: {a * 1000:.1f} ms of CPU after {args.ingests} commits, {b * 1000:.1f} ms after "
              f"{args.history:,} more; ratio {b / a:.2f}")
    print(f"worst ratio {worst:.2f} (target <= {TARGET}: {'met' if worst <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()
