"""Ingest throughput against DuckDB's own JSON-to-Parquet copy of the same file.

Generates a seeded JSONL corpus (default 1,000,000 records of ~300 bytes of text plus provenance), then times
in one run `lineage ingest` of it and DuckDB's `COPY (SELECT * FROM read_json(...)) TO '...parquet'`, each in
its own subprocess so each peak RSS is that process's alone (os.wait4). Targets: ratio <= 1.5, ingest peak
RSS under 1 GB.

A third row is a reference, not a target: DuckDB writing the segment's columns itself (the verbatim record,
canonical text, both sha256 ids, provenance; zstd like a segment) with no validation, no line numbers, no
parent resolution and no commit: roughly the floor for any ingest that keeps what lineage keeps.

With --breakdown, the reference is also timed without parts of its work (cheap md5 for the two sha256, no
NFC, snappy for zstd, all three at once), to show where the floor comes from.

    .venv/bin/python benchmarks/ingest.py [--rows N] [--workdir DIR] [--check] [--breakdown]
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
from dataclasses import dataclass
from pathlib import Path

try:
    from benchmarks.make_corpus import write_corpus
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from make_corpus import write_corpus

TARGET_RATIO = 1.5
TARGET_RSS_BYTES = 1 << 30

BASELINE = """
import sys
import duckdb

def literal(value):
    return "'" + value.replace("'", "''") + "'"

src, dest = sys.argv[1], sys.argv[2]
duckdb.execute(f"COPY (SELECT * FROM read_json({literal(src)})) TO {literal(dest)} (FORMAT parquet)")
"""

FLOOR = """
import sys
import duckdb

duckdb.execute(sys.argv[1], {"src": sys.argv[2], "dest": sys.argv[3]})
"""

FIELDS = ["id", "text", "origin", "source", "method", "generator", "generation", "license", "language", "tags"]


def floor_sql() -> str:
    """The segment's columns computed by DuckDB from the same file, with lineage's own text and id SQL."""
    from lineage.core.ids import CANONICAL_TEXT_SQL, CONTENT_HASH_SQL, NORMALIZED_TEXT_SQL, SAMPLE_ID_SQL

    paths = ", ".join(f"'$.{name}'" for name in FIELDS)
    f = {name: f"f[{i}]" for i, name in enumerate(FIELDS, start=1)}
    return f"""
COPY (
    SELECT {SAMPLE_ID_SQL.format(source="source", external_id=f["id"], norm="norm")} AS sample_id,
        {CONTENT_HASH_SQL.format(norm="norm")} AS content_hash, {f["id"]} AS external_id, text, record, origin,
        source, {f["method"]} AS method,
        {f["generator"]} AS generator, CAST({f["generation"]} AS INTEGER) AS generation, []::VARCHAR[] AS parent_ids,
        NULL::VARCHAR AS gen_params, {f["license"]} AS license, {f["language"]} AS language,
        CAST(CAST({f["tags"]} AS JSON) AS VARCHAR[]) AS tags, 'batch' AS batch_id, $src AS input_uri,
        NULL::BIGINT AS input_row, now() AS ingested_at, 1 AS version
    FROM (SELECT *, {NORMALIZED_TEXT_SQL.format(text="text")} AS norm FROM (
        SELECT record, f, {CANONICAL_TEXT_SQL.format(text=f["text"])} AS text, {f["origin"]} AS origin,
            {f["source"]} AS source
        FROM (SELECT json AS record, json_extract_string(json, [{paths}]) AS f
              FROM read_json_objects($src, format = 'newline_delimited'))))
) TO $dest (FORMAT parquet, COMPRESSION zstd)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu: float  # user + system seconds, all threads
    peak_rss: int  # bytes
    stdout: str


def measure(argv: list[str], workdir: Path, name: str) -> Measured:
    """Run a child to completion; its wall time and peak RSS (ru_maxrss of this child only, via wait4)."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen so it does not try again
    if proc.returncode != 0:
        sys.exit(f"{name} failed with exit {proc.returncode}:\n{err_path.read_text()}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, cpu, usage.ru_maxrss * 1024, out_path.read_text())  # ru_maxrss is in KiB on Linux


def corpus(workdir: Path, rows: int, seed: int) -> Path:
    """The corpus for (rows, seed), generated once per workdir."""
    path = workdir / f"corpus-{rows}-{seed}.jsonl"
    if not path.exists():
        started = time.perf_counter()
        tmp = path.with_suffix(".partial")
        size = write_corpus(tmp, rows, seed=seed)
        tmp.rename(path)
        print(f"generated {rows:,} records ({size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s")
    return path


def run_ingest(workdir: Path, data: Path) -> Measured:
    store = workdir / "store"
    shutil.rmtree(store, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "lineage", "init", str(store)], check=True, capture_output=True)
    cli = [sys.executable, "-m", "lineage", "--store", str(store), "ingest", str(data), "--json"]
    return measure(cli, workdir, "ingest")


def run_baseline(workdir: Path, data: Path) -> Measured:
    dest = workdir / "duckdb-copy.parquet"
    dest.unlink(missing_ok=True)
    return measure([sys.executable, "-c", BASELINE, str(data), str(dest)], workdir, "duckdb")


def run_floor(workdir: Path, data: Path) -> Measured:
    dest = workdir / "duckdb-floor.parquet"
    dest.unlink(missing_ok=True)
    return measure([sys.executable, "-c", FLOOR, floor_sql(), str(data), str(dest)], workdir, "floor")


def report(rows: int, data: Path, ingest: Measured, baseline: Measured, floor: Measured) -> bool:
    """Print the table; True when both targets are met."""
    stored = json.loads(ingest.stdout)["rows_stored"]
    ratio = ingest.seconds / baseline.seconds
    print(f"\n{rows:,} records, {data.stat().st_size / 1e6:,.0f} MB of JSONL; ingest stored {stored:,} rows\n")
    print(f"{'':36} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} {'peak RSS':>12}")
    named = (
        ("DuckDB read_json -> parquet", baseline),
        ("DuckDB segment columns (reference)", floor),
        ("lineage ingest", ingest),
    )
    for name, m in named:
        print(f"{name:36} {m.seconds:8.2f} {m.cpu:7.2f} {rows / m.seconds:10,.0f} {m.peak_rss / 2**20:8,.0f} MiB")
    ratio_ok, rss_ok = ratio <= TARGET_RATIO, ingest.peak_rss < TARGET_RSS_BYTES
    print(f"\nratio ingest / DuckDB: {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio_ok else 'MISSED'})")
    against = f"reference / DuckDB: {floor.seconds / baseline.seconds:.2f}"
    print(f"{against}; ingest / reference: {ingest.seconds / floor.seconds:.2f} (not targets)")
    print(f"ingest peak RSS: {ingest.peak_rss / 2**20:,.0f} MiB (target < 1 GiB: {'met' if rss_ok else 'MISSED'})")
    return ratio_ok and rss_ok


# What the reference does without some of its work: (label, replacements in its SQL).
LIGHTER = (
    ("reference, md5 for sha256", (("sha256(", "md5("),)),
    ("reference, no NFC", (("nfc_normalize(", "("),)),
    ("reference, snappy for zstd", (("COMPRESSION zstd", "COMPRESSION snappy"),)),
    ("reference, all three", (("sha256(", "md5("), ("nfc_normalize(", "("), ("zstd", "snappy"))),
)


def breakdown(workdir: Path, data: Path, baseline: Measured) -> None:
    """The reference without parts of its work, each against the DuckDB copy."""
    dest = workdir / "duckdb-lighter.parquet"
    print()
    for label, edits in LIGHTER:
        sql = floor_sql()
        for old, new in edits:
            sql = sql.replace(old, new)
        dest.unlink(missing_ok=True)
        m = measure([sys.executable, "-c", FLOOR, sql, str(data), str(dest)], workdir, "lighter")
        print(f"{label:36} {m.seconds:8.2f} {m.cpu:7.2f}   {m.seconds / baseline.seconds:.2f}x the DuckDB copy")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the corpus, store and outputs here (reused next time)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--breakdown", action="store_true", help="also time the reference without parts of its work")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        data = corpus(workdir, args.rows, args.seed)
        # Both read the file from the page cache: generating it just now (or the last run) warmed it.
        baseline = run_baseline(workdir, data)
        floor = run_floor(workdir, data)
        ingest = run_ingest(workdir, data)
        met = report(args.rows, data, ingest, baseline, floor)
        if args.breakdown:
            breakdown(workdir, data, baseline)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.check and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
