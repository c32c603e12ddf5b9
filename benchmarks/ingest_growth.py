"""Does a small ingest cost more in a big store? 100 records, into 2,000,000 samples and into 1,000.

Builds a big store (`--samples`, default 2,000,000 real documents with external ids, ingested in batches of
250,000 and compacted, as a grown store's data ends up) and a small one (1,000 such documents). Then `--rounds`
times, one into each in turn (so the load of other processes falls on both alike), two 100-record ingests of
synthetic samples with new external ids, a tenth of their texts already stored: one without parents (its id and
duplicate lookups find everything in the row indexes of `lineage.core.edgeindex`), and one whose records name one
to two parents each by external id (`parent_field`) among the store's documents (the index gives their sample ids;
their source and generation are read, ~150 rows scattered over the store's row groups). Prints the median CPU time
of this process per ingest (the first 5 rounds dropped: imports and caches) and the ratio big / small, for each
(target <= 1.2: the cost follows the input, not the store).

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


def children(rng: random.Random, docs: int, tag: str, *, parents: bool) -> list[dict[str, object]]:
    """100 synthetic records (naming parents among the `docs` stored documents, or not); every tenth text is a
    document's."""
    out: list[dict[str, object]] = []
    for j in range(100):
        named = [f"doc-{rng.randrange(docs):09d}" for _ in range(rng.randint(1, 2))]
        text = documents(rng.randrange(docs), 1)[0]["text"] if j % 10 == 0 else f"Paraphrase {tag}-{j} of {named}"
        out.append({"id": f"{tag}-{j}", "text": text, **({"parents": named} if parents else {})})
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
    times: dict[tuple[str, bool], list[float]] = {}
    for r in range(args.rounds):
        for parents in (False, True):
            for name, store, docs in (("big", big, args.samples), ("small", small, 1_000)):
                batch = children(rng, docs, f"r{r}{'p' if parents else ''}", parents=parents)
                options: dict[str, Any] = {"parent_field": "parents"} if parents else {"generation": 1}
                cpu = time.process_time()
                result = store.ingest(batch, origin="synthetic", source="pipeline", method="paraphrase", **options)
                times.setdefault((name, parents), []).append(time.process_time() - cpu)
                assert result.rows_stored == 100 and result.rows_duplicate >= 10, result.summary()
    for parents, label in ((False, "without parents"), (True, "with 1-2 parents each")):
        b, s = (statistics.median(times[(name, parents)][5:]) for name in ("big", "small"))
        ratio = b / s
        verdict = f"target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}"
        print(f"100-record ingest {label}, median CPU: {b * 1000:.0f} ms into {args.samples:,} samples, "
              f"{s * 1000:.0f} ms into 1,000; ratio {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
