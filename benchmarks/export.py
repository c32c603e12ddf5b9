"""Export speed: a 1,000,000-member build exported to Parquet with the `text` column, against DuckDB's own
`COPY (SELECT text FROM samples SEMI JOIN members) TO '...parquet'` of the same rows, in the same run. Target:
ratio <= 2.

The store is a seeded corpus (benchmarks/make_corpus.py, ~300 bytes of text a record) ingested once and
reused on later runs in the same workdir; the build takes every sample. Both sides read the same store views
and write zstd Parquet; the export also orders the rows by sample_id, hashes every file (sha256) and writes
the manifest, licence composition and Croissant metadata. Each side runs twice; the faster run counts.

    .venv/bin/python benchmarks/export.py [--rows 1000000] [--workdir DIR] [--verbatim]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

try:
    from benchmarks.make_corpus import write_corpus
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from make_corpus import write_corpus

from lineage.build import Build
from lineage.core.sqlutil import sql_string
from lineage.store import Store

TARGET_RATIO = 2.0


def prepare(workdir: Path, rows: int) -> tuple[Store, Build]:
    root = workdir / f"store-{rows}"
    if (root / "lineage.duckdb").exists():
        store = Store(root)
        return store, Build(store, "all")
    corpus = workdir / f"corpus-{rows}.jsonl"
    write_corpus(corpus, rows)
    store = Store.init(root)
    store.ingest(corpus, origin="real", source="corpus", license="cc-by-4.0")
    return store, store.build({"name": "all", "size": rows, "seed": 0})


def baseline(store: Store, build: Build, dest: Path) -> float:
    start = time.perf_counter()
    with store.reader() as con:
        con.register("_members", build.member_ids())
        con.execute(
            "COPY (SELECT s.text FROM samples s SEMI JOIN _members m USING (sample_id)) "
            f"TO {sql_string(str(dest))} (FORMAT parquet, COMPRESSION zstd)"
        )
    return time.perf_counter() - start


def lineage_export(store: Store, dest: Path, columns: list[str] | None = None) -> float:
    start = time.perf_counter()
    store.export("all", dest, columns=columns or ["text"], force=True)
    return time.perf_counter() - start


def verbatim(store: Store, workdir: Path) -> None:
    """A verbatim JSONL export (the records as they came) and, within it, the check of every string of the
    members' records against the protected sets (`record_leaks`): its share of the export's time. The store gets
    a protected set of 50 items not in the build, once, so that the check has items to look for."""
    from lineage.build.checks import record_leaks

    if not store.sql("SELECT count(*) AS n FROM sets WHERE name = 'held'")["n"][0].as_py():
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
        items = [{"id": f"held-{i}", "text": " ".join(words[(i + k) % len(words)] for k in range(20)) + f" {i}"}
                 for i in range(50)]
        store.ingest(items, origin="real", source="held")
        store.create_set("held", where="source = 'held'", protected=True)
    whole = []
    for _ in range(2):
        start = time.perf_counter()
        store.export("all", workdir / "out-verbatim", format="jsonl", force=True)
        whole.append(time.perf_counter() - start)
    start = time.perf_counter()
    found = record_leaks(store, None, Build(store, "all").member_ids()["sample_id"])
    check = time.perf_counter() - start
    print(f"verbatim JSONL export (records as they came):      {min(whole):.2f} s, of which the check of the "
          f"records' strings {check:.2f} s ({check / min(whole):.0%}; {len(found)} leaks); without it "
          f"{min(whole) - check:.2f} s: {min(whole) / (min(whole) - check):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--verbatim", action="store_true", help="Also time a verbatim JSONL export and its check.")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store, build = prepare(workdir, args.rows)
    out = workdir / "out"
    base = min(baseline(store, build, workdir / "baseline.parquet") for _ in range(2))
    ours = min(lineage_export(store, out) for _ in range(2))
    both = lineage_export(store, workdir / "out-both", ["text", "messages"])  # the default columns, for reference
    size = sum(p.stat().st_size for p in (out / "data").iterdir())
    print(f"rows: {build.info['size']:,}; export {size / 2**20:,.1f} MiB of Parquet")
    print(f"baseline DuckDB COPY (SELECT text ...) TO parquet: {base:.2f} s")
    print(f"lineage export --columns text:                     {ours:.2f} s")
    print(f"lineage export (text, messages: the default):      {both:.2f} s ({both / base:.2f}x, reference)")
    ratio = ours / base
    print(f"ratio: {ratio:.2f}x (target <= {TARGET_RATIO:g}x): {'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    if args.verbatim:
        verbatim(store, workdir)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
