"""Benchmark lineage's near-dedup against datasketch on the same seeded corpus with planted near duplicates.

Base passages (~60 words) are concatenations of fixtures/real.jsonl sentences drawn with a seeded RNG.
Some bases get one near duplicate each, edited (truncated, extended, or words substituted) to hit a word
5-gram Jaccard drawn uniformly from [0.5, 1.0]; the true Jaccard of every planted pair is then computed
exactly with Python sets. Ground truth: the planted pairs with Jaccard >= 0.8, plus any
pair either method reports whose exact Jaccard is >= 0.8 (random pairs are checked to be far below).

Both methods are timed end to end and scored on the pairs they put in the same cluster:

Both are warmed up on 200 documents first (imports, first-use setup), then:

* lineage: `store.run_filter("near-dedup")` on a fresh store (ingest timed separately), pairs read
  back from the recorded events' cluster_id; then once more with the signature cache warm.
* datasketch: shingles, a `MinHash(num_perm, seed)` per document and its `update_batch`, insert into
  `MinHashLSH(threshold=0.8)`, query each document, union-find over the returned pairs.
* ds-bulk: the same with `MinHash.bulk`, datasketch's faster path that shares one set of permutations.

    .venv/bin/python benchmarks/near_dedup.py [--docs 20000] [--dups 2000] [--seed 0] [--num-perm 128] [--cli]

`--cli` times both as a user runs them, each in a new process, imports and start-up included: the command
`lineage filter run near-dedup` on a fresh copy of a store holding the corpus (ingested before, not timed),
against a script doing datasketch's per-document `MinHash` + `MinHashLSH` + union-find over the same texts read
from JSON Lines. Best of `--repeat` runs each (target: lineage >= 10x faster).

lineage verifies its LSH candidates by the exact Jaccard of their shingle sets, datasketch by none (its
LSH answers are the result). The "(ideal)" row is what checking an exact num_perm-value MinHash estimate
against the threshold would score on these planted pairs: with true similarities spread evenly over
[0.5, 1], the estimate's spread near 0.8 (sd ~0.035 at 128 values) caps F1 near 0.93, whatever the
implementation; exact verification has no such cap, only the candidates' recall (0.998 at 0.8).
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

import lineage.filters.near_dedup  # noqa: F401  (imported up front, like datasketch: not part of the timing)
from lineage.store import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
NGRAM, THRESHOLD, SEED = 5, 0.8, 1
WORD = re.compile(r"\w+")
Pair = tuple[int, int]


# --- corpus ---------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def grams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + NGRAM]) for i in range(max(len(w) - NGRAM + 1, 1))} if w else set()


def jaccard(a: str, b: str) -> float:
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def base_passages(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct passages of ~60 words, each a run of randomly drawn fixture sentences."""
    sentences = [json.loads(line)["text"] for line in (FIXTURES / "real.jsonl").read_text().splitlines()]
    lengths = [len(s.split()) for s in sentences]
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        picked, total = [], 0
        while total < 55:
            i = int(rng.integers(len(sentences)))
            picked.append(sentences[i])
            total += lengths[i]
        text = ". ".join(picked)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def near_duplicate(tokens: list[str], target: float, vocab: list[str], rng: np.random.Generator) -> str:
    """An edit of a passage's tokens hitting 5-gram Jaccard `target` (exact when its shingles are distinct)."""
    shingles = len(tokens) - NGRAM + 1
    new = [vocab[int(i)] for i in rng.integers(len(vocab), size=shingles)]
    kind = rng.choice(["truncate", "append", "prepend", "substitute"])
    if kind == "truncate":  # loses t shingles: J = (S - t) / S
        return " ".join(tokens[: len(tokens) - round(shingles * (1 - target))])
    if kind in ("append", "prepend"):  # gains t shingles: J = S / (S + t)
        extra = new[: round(shingles * (1 / target - 1))]
        return " ".join(tokens + extra if kind == "append" else extra + tokens)
    # c changed shingles, J = (S - c) / (S + c): a word inside changes 5, the (r)th word from the end r
    changed = round(shingles * (1 - target) / (1 + target))
    inside, last = divmod(changed, NGRAM)
    out = list(tokens)
    for k, pos in enumerate(NGRAM - 1 + NGRAM * np.arange(inside) + int(rng.integers(NGRAM))):
        out[pos] = new[k]
    if last:
        out[len(out) - last] = new[-1]
    return " ".join(out)


def corpus(docs: int, dups: int, seed: int) -> tuple[list[str], dict[Pair, float]]:
    """Texts (bases first, then planted duplicates) and the exact Jaccard of every planted pair."""
    rng = np.random.default_rng(seed)
    texts = base_passages(docs - dups, rng)
    vocab = sorted({x for t in texts[:2000] for x in words(t)})
    planted: dict[Pair, float] = {}
    for base in rng.choice(len(texts), size=dups, replace=False).tolist():
        dup = near_duplicate(words(texts[base]), float(rng.uniform(0.5, 1.0)), vocab, rng)
        planted[(base, len(texts))] = jaccard(texts[base], dup)
        texts.append(dup)
    return texts, planted


def random_pairs_max(texts: list[str], rng: np.random.Generator, n: int = 3000) -> float:
    picks = rng.integers(len(texts), size=(n, 2))
    return max(jaccard(texts[i], texts[j]) for i, j in picks.tolist() if i != j)


# --- the two methods ------------------------------------------------------------------------------


def run_lineage(texts: list[str], docs: int, dups: int, num_perm: int, workdir: Path) -> dict:
    store = Store.init(workdir / "store")
    started = time.perf_counter()
    bases = [{"id": str(i), "text": t} for i, t in enumerate(texts[: docs - dups])]
    store.ingest(bases, origin="real", source="bench-real", method="human")
    if dups:
        planted = [{"id": str(i), "text": t} for i, t in enumerate(texts[docs - dups :], start=docs - dups)]
        store.ingest(planted, origin="synthetic", source="bench-synthetic", method="edit", generation=1)
    ingest = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    result = store.run_filter("near-dedup", params={"num_perm": num_perm})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    store.run_filter("near-dedup", params={"num_perm": num_perm}, force=True)
    warm = time.perf_counter() - started
    rows = store.sql(
        "SELECT s.external_id AS doc, e.cluster_id FROM events e JOIN samples s USING (sample_id) WHERE run_id = ?",
        params=[result.run_id],
    ).to_pylist()
    return {"seconds": seconds, "cpu": cpu, "warm": warm, "ingest": ingest, "pairs": cluster_pairs(rows)}


def cluster_pairs(rows: Iterable[dict]) -> set[Pair]:
    members: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        members[r["cluster_id"]].append(int(r["doc"]))
    return {(min(a, b), max(a, b)) for m in members.values() for a, b in combinations(m, 2)}


def run_datasketch(texts: list[str], num_perm: int, bulk: bool) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    shingles = []
    for text in texts:
        w = words(text)
        shingles.append([" ".join(w[i : i + NGRAM]).encode() for i in range(max(len(w) - NGRAM + 1, 1))])
    sketches = MinHash.bulk(shingles, num_perm=num_perm, seed=SEED) if bulk else per_document(shingles, num_perm)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for i, m in enumerate(sketches):
            session.insert(i, m)
    parent = list(range(len(texts)))
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j != i:
                union(parent, i, j)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = [{"doc": i, "cluster_id": find(parent, i)} for i in range(len(texts))]
    return {"seconds": seconds, "cpu": cpu, "pairs": cluster_pairs(rows)}


def per_document(shingles: list[list[bytes]], num_perm: int) -> list[MinHash]:
    sketches = []
    for doc in shingles:
        m = MinHash(num_perm=num_perm, seed=SEED)
        m.update_batch(doc)
        sketches.append(m)
    return sketches


def find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def union(parent: list[int], i: int, j: int) -> None:
    a, b = find(parent, i), find(parent, j)
    if a != b:
        parent[max(a, b)] = min(a, b)


# --- through the CLI, each in a new process --------------------------------------------------------

# datasketch end to end as a script would run it: read the texts, shingle, MinHash, LSH, union-find, write clusters.
DATASKETCH_SCRIPT = """
import json, re, sys
from datasketch import MinHash, MinHashLSH
WORD = re.compile(r"\\w+")
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
num_perm, threshold, seed, ngram = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
sketches = []
for i, text in enumerate(texts):
    w = WORD.findall(text.lower())
    m = MinHash(num_perm=num_perm, seed=seed)
    m.update_batch([" ".join(w[k : k + ngram]).encode() for k in range(max(len(w) - ngram + 1, 1))])
    lsh.insert(i, m)
    sketches.append(m)
parent = list(range(len(texts)))
def find(i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i
for i, m in enumerate(sketches):
    for j in lsh.query(m):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
json.dump([find(i) for i in range(len(texts))], open(sys.argv[2], "w"))
"""


def run(cmd: list[str]) -> None:
    """A command of this checkout's lineage (PYTHONPATH first), or the datasketch script, in a new process."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # From this checkout: `python -m` puts the working directory first on sys.path.
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path}, cwd=ROOT)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of a command."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def run_cli(texts: list[str], docs: int, dups: int, num_perm: int, repeat: int, workdir: Path) -> dict[str, dict]:
    """lineage's command and datasketch's script, each timed as a subprocess, best of `repeat`."""
    lineage_cmd = [sys.executable, "-m", "lineage"]
    corpus_file = workdir / "corpus.jsonl"
    with corpus_file.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts))
    (workdir / "bases.jsonl").write_text("".join(corpus_file.read_text().splitlines(True)[: docs - dups]))
    (workdir / "planted.jsonl").write_text("".join(corpus_file.read_text().splitlines(True)[docs - dups :]))
    fresh = workdir / "fresh"
    run([*lineage_cmd, "init", str(fresh)])
    ingest = [*lineage_cmd, "--quiet", "--store", str(fresh), "ingest"]
    run([*ingest, str(workdir / "bases.jsonl"), "--origin", "real", "--source", "bench-real"])
    run([*ingest, str(workdir / "planted.jsonl"), "--origin", "synthetic", "--source", "bench-synthetic",
         "--generation", "1"])
    compileall.compile_dir(ROOT / "lineage", quiet=1)  # as installed (see benchmarks/startup.py)
    script = workdir / "datasketch_lsh.py"
    script.write_text(DATASKETCH_SCRIPT)
    lineage_times, datasketch_times = [], []
    for attempt in range(repeat):
        store = workdir / f"store-{attempt}"
        shutil.copytree(fresh, store)  # a fresh store each time: no run recorded, no signature cached
        command = ["filter", "run", "near-dedup", "--param", f"num_perm={num_perm}"]
        lineage_times.append(timed([*lineage_cmd, "--store", str(store), *command]))
        clusters = workdir / "datasketch-clusters.json"
        args = [str(corpus_file), str(clusters), str(num_perm), str(THRESHOLD), str(SEED), str(NGRAM)]
        datasketch_times.append(timed([sys.executable, str(script), *args]))
    rows = Store(workdir / "store-0").sql(
        "SELECT s.external_id AS doc, e.cluster_id FROM events e JOIN samples s USING (sample_id)"
    ).to_pylist()
    labels = json.loads(clusters.read_text())
    return {
        "lineage": {"times": lineage_times, "pairs": cluster_pairs(rows)},
        "datasketch": {"times": datasketch_times, "pairs": cluster_pairs(
            {"doc": i, "cluster_id": label} for i, label in enumerate(labels))},
    }


def true_pairs(texts: list[str], planted: dict[Pair, float], results: dict[str, dict]) -> set[Pair]:
    """The pairs at Jaccard >= THRESHOLD among the planted ones and every pair any method reported."""
    exact = dict(planted)
    for r in results.values():
        exact.update({p: jaccard(texts[p[0]], texts[p[1]]) for p in r["pairs"] if p not in exact})
    return {p for p, j in exact.items() if j >= THRESHOLD}


def report_cli(texts: list[str], planted: dict[Pair, float], results: dict[str, dict]) -> None:
    truth = true_pairs(texts, planted, results)
    print(f"{len(texts):,} documents, {len(truth):,} true pairs with Jaccard >= 0.8; each command in a new process")
    print(f"{'method':<40}{'best s':>7}{'cpu s':>7}  {'all runs (wall s)':<24}{'pairs':>6}{'F1':>7}")
    names = {"lineage": "lineage filter run near-dedup", "datasketch": "datasketch MinHash + MinHashLSH script"}
    for name, r in results.items():
        f1 = score(r["pairs"], truth)[2]
        wall, cpu = min(r["times"])
        runs = ", ".join(f"{t:.2f}" for t, _ in r["times"])
        print(f"{names[name]:<40}{wall:>7.2f}{cpu:>7.2f}  {runs:<24}{len(r['pairs']):>6,}{f1:>7.4f}")
    (ds_wall, ds_cpu), (wall, cpu) = min(results["datasketch"]["times"]), min(results["lineage"]["times"])
    print(f"\nthrough the CLI, end to end, best of each: datasketch / lineage {ds_wall / wall:.1f}x wall "
          f"(target >= 10x), {ds_cpu / cpu:.1f}x cpu")


# --- scoring and report ---------------------------------------------------------------------------


def score(found: set[Pair], truth: set[Pair]) -> tuple[float, float, float]:
    hit = len(found & truth)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(truth) if truth else 1.0
    return precision, recall, 2 * precision * recall / (precision + recall) if hit else 0.0


def ideal(planted: dict[Pair, float], num_perm: int) -> tuple[float, float, float]:
    """Expected scores of an exact num_perm MinHash estimate (binomial) checked against the threshold."""
    from scipy.stats import binom

    similarity = np.array(list(planted.values()))
    found = binom.sf(math.ceil(THRESHOLD * num_perm - 1e-9) - 1, num_perm, similarity)
    positive = similarity >= THRESHOLD
    hit = found[positive].sum()
    precision, recall = hit / found.sum(), hit / positive.sum()
    return precision, recall, 2 * precision * recall / (precision + recall)


def report(texts: list[str], planted: dict[Pair, float], results: dict[str, dict], seed: int, num_perm: int) -> None:
    truth = true_pairs(texts, planted, results)
    print(f"{len(texts):,} documents, {len(planted):,} planted pairs, {len(truth):,} true pairs with Jaccard >= 0.8")
    print(f"max 5-gram Jaccard of 3,000 random pairs: {random_pairs_max(texts, np.random.default_rng(seed)):.3f}")
    print(f"lineage ingest (not timed below): {results['lineage']['ingest']:.2f}s\n")
    print(f"{'method':<12}{'seconds':>9}{'cpu s':>7}{'docs/s':>10}{'pairs':>8}{'precision':>11}{'recall':>8}{'F1':>7}")
    for name, r in results.items():
        p, rc, f1 = score(r["pairs"], truth)
        rate = len(texts) / r["seconds"]
        print(
            f"{name:<12}{r['seconds']:>9.2f}{r['cpu']:>7.2f}{rate:>10,.0f}{len(r['pairs']):>8,}"
            f"{p:>11.4f}{rc:>8.4f}{f1:>7.4f}"
        )
    p, rc, f1 = ideal(planted, num_perm)
    print(f"{'(ideal)':<12}{'':>26}{'':>8}{p:>11.4f}{rc:>8.4f}{f1:>7.4f}  <- by an unbiased {num_perm}-value estimate")
    lineage = results["lineage"]
    print("\nspeed ratio, end to end (cpu: all threads of this process; wall time suffers any other load):")
    for name in ("datasketch", "ds-bulk"):
        other = results[name]
        wall, cpu = other["seconds"] / lineage["seconds"], other["cpu"] / lineage["cpu"]
        print(f"  {name} / lineage: {wall:.1f}x wall, {cpu:.1f}x cpu")
    print(f"lineage again over the same selection, signatures cached: {results['lineage']['warm']:.2f}s\n")
    by_bin(planted, results)


def by_bin(planted: dict[Pair, float], results: dict[str, dict]) -> None:
    """Share of planted pairs put in one cluster, by their true Jaccard: where the misses are."""
    edges = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.01]
    print(f"{'true Jaccard':<14}{'pairs':>7}" + "".join(f"{name:>12}" for name in results))
    for lo, hi in pairwise(edges):
        pairs = [p for p, j in planted.items() if lo <= j < hi]
        shares = [sum(p in r["pairs"] for p in pairs) / len(pairs) if pairs else 0.0 for r in results.values()]
        label = f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}"
        print(f"{label:<14}{len(pairs):>7}" + "".join(f"{s:>12.3f}" for s in shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--cli", action="store_true", help="time both as new processes (lineage's command)")
    parser.add_argument("--repeat", type=int, default=3, help="with --cli: runs of each, the best counts")
    args = parser.parse_args()
    texts, planted = corpus(args.docs, args.dups, args.seed)
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            results = run_cli(texts, args.docs, args.dups, args.num_perm, args.repeat, Path(tmp))
            report_cli(texts, planted, results)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # Warm both up on 200 documents first: lazy imports and first-use setup are not per-document work.
        run_lineage(texts[:200], 200, 0, args.num_perm, Path(tmp) / "warm-up")
        run_datasketch(texts[:200], args.num_perm, bulk=True)
        results = {"lineage": run_lineage(texts, args.docs, args.dups, args.num_perm, Path(tmp))}
    results["datasketch"] = run_datasketch(texts, args.num_perm, bulk=False)
    results["ds-bulk"] = run_datasketch(texts, args.num_perm, bulk=True)
    print(f"num_perm {args.num_perm}, threshold {THRESHOLD}, word {NGRAM}-grams")
    report(texts, planted, results, args.seed, args.num_perm)


if __name__ == "__main__":
    main()
