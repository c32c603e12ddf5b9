"""A store whose data lives on S3 against the same store on local disk, in one run.

S3 here is moto's server on localhost (a real S3 API over HTTP, in this process's threads), so the figures
show what the object-storage path itself costs (uploads, ranged GETs, reads through fsspec into DuckDB),
not a real network. Each step runs on both stores with the same seeded corpus: ingest, a full-scan SQL
query, near-dedup and quality; the table prints both times and the ratio.

    .venv/bin/python benchmarks/remote.py [--rows 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from benchmarks.make_corpus import write_corpus
except ImportError:  # run as a script: benchmarks/ itself is on sys.path
    from make_corpus import write_corpus

from lineage.store import Store

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
SCAN = "SELECT source, count(*) AS n, sum(length(text)) AS chars, sum(length(record)) AS bytes FROM samples GROUP BY 1"


def s3_uri() -> tuple[str, Any]:
    """A moto S3 server on localhost with an empty bucket; the store URI and the server (to stop)."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    os.environ.update(CREDENTIALS)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir("bench")
    return f"s3://bench/store?endpoint_override={host}:{port}&scheme=http&region=us-east-1", server


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def steps(store: Store, corpus: Path) -> dict[str, tuple[float, Any]]:
    return {
        "ingest": timed(lambda: store.ingest(corpus).rows_stored),
        "SQL full scan": timed(lambda: sorted(store.sql(SCAN).to_pylist(), key=lambda r: r["source"])),
        "near-dedup": timed(lambda: store.run_filter("near-dedup").dropped),
        "quality": timed(lambda: store.run_filter("quality", engine="inline").dropped),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    uri, server = s3_uri()
    try:
        with tempfile.TemporaryDirectory(prefix="lineage-remote-") as tmp:
            corpus = Path(tmp) / "corpus.jsonl"
            size = write_corpus(corpus, args.rows, seed=args.seed)
            local = steps(Store.init(Path(tmp) / "local"), corpus)
            remote = steps(Store.init(Path(tmp) / "remote", data=uri), corpus)
    finally:
        server.stop()
    print(f"\n{args.rows:,} records ({size / 1e6:,.0f} MB of JSONL), seed {args.seed}; S3 = moto on localhost\n")
    print(f"{'step':16} {'local disk':>11} {'S3':>9} {'S3 / local':>11}  same result")
    for name, (seconds, result) in local.items():
        on_s3, result_s3 = remote[name]
        same = "yes" if result == result_s3 else "NO"
        print(f"{name:16} {seconds:9.2f} s {on_s3:7.2f} s {on_s3 / seconds:10.1f}x  {same}")


if __name__ == "__main__":
    main()
