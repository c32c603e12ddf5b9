"""Incremental dedup against a full re-run: N new documents decided against a store whose old ones are decided.

Setup (not timed): `--docs` documents (benchmarks/make_corpus.py) are ingested and exact-dedup and near-dedup
run over them (which fills the MinHash signature cache); then `--new` documents arrive, a tenth of them exact
copies of old documents under a new source. The store is copied, and for each filter:

* incremental: `run_filter(name, new_only=True)`, what `lineage build --refresh` runs: the new documents,
  decided against everything decided before (near-dedup finds its old candidates in the band-key index
  beside the signature cache, `lineage.features.bandindex`, and reads only the old samples they name);
* full: `run_filter(name, force=True)` on the copy: every document again (cached signatures reused).

Both end with the same latest decisions (checked), and the script prints both times and their ratio.

    .venv/bin/python benchmarks/incremental.py --docs 1000000 --new 10000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from make_corpus import write_corpus

from lineage.features.minhash import candidate_bands
from lineage.store import Store

FILTERS = ("exact-dedup", "near-dedup")
STATUS = (
    "SELECT sample_id, decision, reason, related_id, cluster_id, round(score, 6) AS score FROM status "
    "WHERE filter = ? ORDER BY sample_id"
)


def new_documents(folder: Path, old: Path, n: int) -> Path:
    """`n` new documents: nine in ten fresh, one in ten an exact copy of an old one under a new source."""
    fresh = folder / "fresh.jsonl"
    copies = n // 10
    write_corpus(fresh, n - copies, seed=1)
    out = folder / "new.jsonl"
    with old.open() as src, fresh.open() as new, out.open("w") as dst:
        for i, line in enumerate(new):  # ids of their own: an old id with other text is refused
            dst.write(json.dumps({**json.loads(line), "id": f"new-{i}"}) + "\n")
        for i, line in zip(range(copies), src, strict=False):
            record = json.loads(line)
            dst.write(json.dumps({**record, "id": f"copy-{i}", "source": "mirror"}) + "\n")
    return out


def status_hash(store: Store, name: str) -> str:
    return hashlib.sha256(str(store.sql(STATUS, params=[name]).to_pylist()).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="documents already decided")
    parser.add_argument("--new", type=int, default=10_000, help="new documents")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = folder / "old.jsonl"
        write_corpus(old, args.docs, seed=0)
        store = Store.init(folder / "incremental")
        clock = time.perf_counter()
        store.ingest(old)
        for name in FILTERS:
            store.run_filter(name)
        print(f"setup: {args.docs:,} documents ingested and decided in {time.perf_counter() - clock:.1f} s")
        store.ingest(new_documents(folder, old, args.new))
        shutil.copytree(folder / "incremental", folder / "full")
        full = Store(folder / "full")
        candidate_bands(0.8, 128)  # paid once per process (datasketch's integration): by neither timed run
        total_inc = total_full = 0.0
        for name in FILTERS:
            clock = time.perf_counter()
            result = store.run_filter(name, new_only=True)
            inc = time.perf_counter() - clock
            clock = time.perf_counter()
            full.run_filter(name, force=True)
            whole = time.perf_counter() - clock
            same = status_hash(store, name) == status_hash(full, name)
            total_inc, total_full = total_inc + inc, total_full + whole
            print(
                f"{name}: incremental {inc:.2f} s ({result.selected:,} new, {result.dropped:,} dropped), "
                f"full re-run {whole:.2f} s: {whole / inc:.1f}x faster; same decisions: {'yes' if same else 'NO'}"
            )
        print(f"both filters: incremental {total_inc:.2f} s, full {total_full:.2f} s: {total_full / total_inc:.1f}x")


if __name__ == "__main__":
    main()
