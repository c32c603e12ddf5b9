"""Does a small ingest cost more in a big store? 100 records with parents, into 2,000,000 samples and into 1,000.

Builds a big store (`--samples`, default 2,000,000 real documents with external ids, ingested in batches of
250,000 and compacted, as a grown store's data ends up) and a small one (1,000 such documents). Then `--rounds`
times, one into each in turn (so the load of other processes falls on both alike): a 100-record ingest of synthetic
samples, each naming one to two parents by external id (`parent_field`) among the store's documents, with new
external ids and a tenth of their texts already stored (the duplicate count reads them). Prints the median CPU time
of this process per ingest (the first 5 rounds dropped: imports and caches) and the ratio big / small. Target
<= 1.2: an ingest's id, duplicate and parent lookups read only what the input names (the row indexes of
`lineage.core.edgeindex`), so its cost follows the input, not the store.

    .venv/bin/python benchmarks/ingest_growth.py [--samples 2000000] [--rounds 25] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 1.2
BATCH = 250_000


def documents(start: int, n: int) -> list[dict[str, object]]:
    return [{"id": f"doc-{i:09d}", "text": f"Document {i}: a page about topic {i * 7919 % 10007} and more."}
            for i in range(start, start + n)]


def children(rng: random.Random, docs: int, tag: str) -> list[dict[str, object]]:
    """100 synthetic records naming parents among the `docs` stored documents; every tenth text is a document's."""
    out: list[dict[str, object]] = []
    for j in range(100):
        parents = [f"doc-{rng.randrange(docs):09d}" for _ in range(rng.randint(1, 2))]
        text = documents(rng.randrange(docs), 1)[0]["text"] if j % 10 == 0 else f"Paraphrase {tag}-{j} of {parents}"
        out.append({"id": f"{tag}-{j}", "text": text, "parents": parents})
    return out


def build(store: Any, samples: int) -> None:
    for start in range(0, samples, BATCH):
        store.ingest(documents(start, min(BATCH, samples - start)), origin="real", source="web")
    store.compact()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import lineage

    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    big, small = lineage.Store.init(work / "big"), lineage.Store.init(work / "small")
    build(big, args.samples)
    build(small, 1_000)
    print(f"stores built in {time.perf_counter() - started:.0f} s: {args.samples:,} and 1,000 documents", flush=True)
    rng = random.Random(7)
    times: dict[str, list[float]] = {"big": [], "small": []}
    for r in range(args.rounds):
        for name, store, docs in (("big", big, args.samples), ("small", small, 1_000)):
            batch = children(rng, docs, f"r{r}")
            cpu = time.process_time()
            result = store.ingest(batch, origin="synthetic", source="pipeline", method="paraphrase",
                                  parent_field="parents")
            times[name].append(time.process_time() - cpu)
            assert result.rows_stored == 100 and result.rows_duplicate >= 10, result.summary()
    b, s = statistics.median(times["big"][5:]), statistics.median(times["small"][5:])
    ratio = b / s
    print(f"100-record ingest with parents, median CPU: {b * 1000:.0f} ms into {args.samples:,} samples, "
          f"{s * 1000:.0f} ms into 1,000; ratio {ratio:.2f} (target <= {TARGET}: "
          f"{'met' if ratio <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()
