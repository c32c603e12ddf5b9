"""MinHash signatures of one long document among short ones, against an earlier commit's code in the same run.

A permutation block holds whole documents, so a document of more shingles than a block (`BLOCK_SHINGLES`) once
made a block of its own: num_perm x its shingles of uint32 (a 50 MB document: 8.5 million shingles, a 4.3 GB
block). Now such a document is signed a block at a time. This times `minhash.signatures` over a seeded document of
`--words` words (default 3,000,000: ~20 MB) and 1,000 short ones, in this tree and in `--baseline REV` (its
`lineage/features/minhash.py` from `git archive`), alternating `--runs` times, and prints the medians, their ratio,
each one's peak traced memory (tracemalloc: numpy reports its buffers) and whether the signatures are equal.

    .venv/bin/python benchmarks/long_document.py [--words 3000000] [--runs 3] [--baseline a194c1b]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np

from lineage.features import minhash

REPO = Path(__file__).resolve().parent.parent


def baseline_module(rev: str, into: Path) -> ModuleType:
    """`lineage/features/minhash.py` as of `rev`, imported under another name (it imports only numpy, pyarrow)."""
    source = subprocess.run(["git", "show", f"{rev}:lineage/features/minhash.py"], cwd=REPO, capture_output=True,
                            check=True).stdout
    path = into / "minhash_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("minhash_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def corpus(words: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5_000)])
    short = [" ".join(rng.choice(vocab, 40)) for _ in range(1_000)]
    return [*short[:500], " ".join(rng.choice(vocab, words)), *short[500:]]


def measure(module: ModuleType, texts: list[str]) -> tuple[float, int, np.ndarray]:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        sigs = module.signatures(texts, threads=1)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak, sigs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="a194c1b", help="the commit to compare with (default a194c1b)")
    args = parser.parse_args()
    texts = corpus(args.words)
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_module(args.baseline, Path(tmp))
        times: dict[str, list[float]] = {"this tree": [], args.baseline: []}
        peaks: dict[str, int] = {}
        results: dict[str, np.ndarray] = {}
        for _ in range(args.runs):
            for name, module in (("this tree", minhash), (args.baseline, old)):
                seconds, peak, sigs = measure(module, texts)
                times[name].append(seconds)
                peaks[name], results[name] = max(peak, peaks.get(name, 0)), sigs
    print(f"one document of {args.words:,} words among 1,000 of 40, 128 permutations, one thread")
    for name, runs in times.items():
        print(f"{name}: median {statistics.median(runs):.2f} s of {len(runs)} {[round(t, 2) for t in runs]}, "
              f"peak traced memory {peaks[name] / 2**20:,.0f} MiB")
    ratio = statistics.median(times[args.baseline]) / statistics.median(times["this tree"])
    same = bool((results["this tree"] == results[args.baseline]).all())
    print(f"this tree {ratio:.1f}x as fast as {args.baseline}; signatures identical: {same}")


if __name__ == "__main__":
    main()
