"""Benchmark lineage's contamination filter against a plain-Python 13-gram set lookup, on the same data.

    .venv/bin/python benchmarks/decontamination.py [--docs 200000] [--items 5000] [--seed 0]

Data (fixtures/leaks.py, seeded): `--items` benchmark items (question + answer, WordNet sentences) form
the protected set, ingested with a `Question: ... Answer: ...` template; `--docs` training documents of
150-450 WordNet words, 300 of which hide an item (75 each verbatim, lower-cased without punctuation,
question only, 10% of the words replaced); the rest are clean.

* lineage: `store.run_filter("contamination")` end to end (reading the store, exact, containment, near,
  lineage, the events commit) in a fresh process on the ingested store (ingest is not timed);
* baseline: the lm-evaluation-harness way: the protected items' word 13-grams (lower-cased `\\w+` tokens,
  joined by spaces) in a Python set, every document's 13-grams looked up in it, a document contaminated
  when any is found; timed over the texts already in memory (reading them is not counted).

Each runs in its own process, which reports its own peak RSS. Prints recall per shape, false positives on
the clean documents, both times and the ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))

WORD = re.compile(r"\w+")


def peak_rss_mib() -> float:
    """This process's own peak RSS: VmHWM, not ru_maxrss, which keeps the parent's RSS at the fork before exec
    (the parent holds the documents it scores)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make(folder: Path, docs: int, items: int, seed: int) -> None:
    import leaks

    made = leaks.make(seed=seed, clean=docs - 300, items=items, chats=0, planted=300)
    leaks.write(made, folder)


def ingest(folder: Path) -> None:
    import leaks

    from lineage.sets import create_set
    from lineage.store import Store

    store = Store.init(folder / "store")
    create_set(store, "heldout", protected=True)
    store.ingest(folder / "heldout.jsonl", origin="real", source="bench", template=leaks.ITEM_TEMPLATE,
                 set_name="heldout")
    store.ingest(folder / "docs.jsonl", origin="real", source="web")


def run_lineage(folder: Path) -> dict:
    import lineage
    import lineage.filters.contamination  # imported up front: not part of the timing

    store = lineage.open(folder / "store")
    clock, cpu = time.perf_counter(), cpu_seconds()
    result = store.run_filter("contamination")
    seconds, cpu = time.perf_counter() - clock, cpu_seconds() - cpu
    dropped = store.sql(
        "SELECT s.external_id, r.external_id AS item FROM status e JOIN samples s USING (sample_id) "
        "JOIN samples r ON r.sample_id = e.related_id WHERE e.filter = 'contamination' AND e.decision = 'drop'"
    ).to_pylist()
    return {"seconds": seconds, "cpu": cpu, "rss": peak_rss_mib(),
            "found": {r["external_id"]: r["item"] for r in dropped}, "reasons": result.reasons}


def run_baseline(folder: Path) -> dict:
    import leaks

    items = [json.loads(line) for line in (folder / "heldout.jsonl").read_text().splitlines()]
    docs = [json.loads(line) for line in (folder / "docs.jsonl").read_text().splitlines()]
    texts = [d["text"] for d in docs]
    clock, cpu = time.perf_counter(), cpu_seconds()
    grams: dict[str, str] = {}
    for item in items:
        words = WORD.findall(leaks.ITEM_TEMPLATE.format(**item).lower())
        for i in range(len(words) - 12):
            grams.setdefault(" ".join(words[i : i + 13]), item["id"])
    found = {}
    for doc, text in zip(docs, texts, strict=True):
        words = WORD.findall(text.lower())
        for i in range(len(words) - 12):
            hit = grams.get(" ".join(words[i : i + 13]))
            if hit is not None:
                found[doc["id"]] = hit
                break
    return {"seconds": time.perf_counter() - clock, "cpu": cpu_seconds() - cpu, "rss": peak_rss_mib(), "found": found}


def child(step: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--step", step, "--folder", str(folder)], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def score(found: dict[str, str], docs: list[dict]) -> tuple[dict[str, float], int, int]:
    hit, total = Counter(), Counter()
    false = clean = 0
    for d in docs:
        if d["leak_of"] is None:
            clean += 1
            false += d["id"] in found
        else:
            total[d["shape"]] += 1
            hit[d["shape"]] += found.get(d["id"]) == d["leak_of"]
    return {s: hit[s] / total[s] for s in sorted(total)}, false, clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", choices=["make", "ingest", "lineage", "baseline"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.step:
        steps = {"ingest": ingest, "lineage": run_lineage, "baseline": run_baseline}
        print(json.dumps(steps[args.step](args.folder) or {}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clock = time.perf_counter()
        make(folder, args.docs, args.items, args.seed)
        print(f"data: {args.docs:,} documents, {args.items:,} protected items ({time.perf_counter() - clock:.0f}s)")
        clock = time.perf_counter()
        child("ingest", folder)
        print(f"ingest (not timed below): {time.perf_counter() - clock:.0f}s")
        docs = [json.loads(line) for line in (folder / "docs.jsonl").read_text().splitlines()]
        rows = []
        for name in ("lineage", "baseline"):
            result = child(name, folder)
            recall, false, clean = score(result["found"], docs)
            rows.append((name, result["seconds"], result["cpu"], result["rss"], recall, false, clean))
    for name, seconds, cpu, rss, recall, false, clean in rows:
        shapes = ", ".join(f"{s} {r:.3f}" for s, r in recall.items())
        print(f"{name:9s} {seconds:7.1f}s (CPU {cpu:6.1f}s)  peak RSS {rss:6.0f} MiB  recall: {shapes}; "
              f"false positives {false}/{clean} ({false / clean:.2%})")
    ratio, cpu_ratio = rows[1][1] / rows[0][1], rows[1][2] / rows[0][2]
    print(f"lineage is {ratio:.1f}x the baseline's speed (target >= 5x; {cpu_ratio:.1f}x in CPU time, lineage "
          f"on all cores), peak RSS {rows[0][3]:.0f} MiB (target < 2048)")


if __name__ == "__main__":
    main()
