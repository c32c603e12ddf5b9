"""Generate a seeded JSONL corpus for benchmarks and crash tests: N records of English-like text with provenance.

Words are drawn (numpy, vectorised) from the vocabulary of fixtures/real.jsonl with their observed frequencies,
so the text looks like the fixtures' WordNet sentences; every field is rendered to JSON by Arrow compute kernels,
never by a Python loop per record, so a million records take seconds.

    .venv/bin/python benchmarks/make_corpus.py --rows 1000000 --seed 0 corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TEXT_BYTES = 300
CHUNK_ROWS = 50_000
# Words that need no JSON escaping, so fragments can be glued together as raw JSON text.
SAFE_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9'()\-]*$")

# Ten real and ten synthetic sources (20 in all); a record's source, method, generator and generation follow its origin.
REAL_SOURCES = [
    f"real-{name}"
    for name in ("news", "wiki", "books", "forums", "papers", "law", "code-docs", "reviews", "subtitles", "wordnet")
]
SYNTHETIC_SOURCES = [
    f"synthetic-{name}"
    for name in (
        "paraphrase-v1",
        "paraphrase-v2",
        "backtrans-de",
        "backtrans-fr",
        "self-instruct",
        "rules-v1",
        "distill-a",
        "distill-b",
        "summaries",
        "dialogues",
    )
]
REAL_METHODS = ["human", "web"]
SYNTHETIC_METHODS = ["paraphrase", "back-translation", "self-instruct", "rule-based"]
GENERATORS = ["llama-3-8b", "mistral-7b", "qwen-2-7b", "gpt-4o-mini"]
LICENSES = ["CC-BY-4.0", "CC-BY-SA-4.0", "MIT", "WordNet-3.0", "proprietary"]
LANGUAGES = ["en", "en", "en", "en-GB"]  # repeated to weight the draw towards plain `en`
TAG_SETS = [[], ["bench"], ["bench", "clean"], ["bench", "dedup"], ["held-out"], ["bench", "long-tail"]]


def vocabulary(path: Path = FIXTURES / "real.jsonl") -> tuple[pa.Array, np.ndarray]:
    """Distinct words of the fixture texts and their relative frequencies."""
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            counts.update(w for w in json.loads(line)["text"].split() if SAFE_WORD.match(w))
    words = sorted(counts)
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    return pa.array(words, pa.string()), freq / freq.sum()


def _fragments(name: str, values: list[object]) -> pa.Array:
    """Pre-rendered `"name": value` JSON fragments, one per possible value (picked later with `take`)."""
    return pa.array([f', "{name}": {json.dumps(v)}' for v in values], pa.string())


def _pick(rng: np.random.Generator, options: pa.Array, n: int) -> pa.Array:
    return options.take(pa.array(rng.integers(0, len(options), n)))


def _texts(rng: np.random.Generator, words: pa.Array, p: np.ndarray, n: int, text_bytes: int) -> pa.Array:
    """n texts of about `text_bytes` bytes: words drawn by frequency, joined by spaces, ending with a full stop."""
    mean_len = float(np.dot(p, pc.utf8_length(words).to_numpy())) + 1
    target = max(text_bytes / mean_len, 2.0)
    per_record = rng.integers(int(target * 0.7), int(target * 1.3) + 1, n)
    offsets = np.concatenate([[0], np.cumsum(per_record)]).astype(np.int32)
    drawn = words.take(pa.array(rng.choice(len(words), int(offsets[-1]), p=p)))
    sentences = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), drawn), " ")
    return pc.binary_join_element_wise(pc.utf8_capitalize(sentences), ".", "")


def _chunk(rng: np.random.Generator, words: pa.Array, p: np.ndarray, first: int, n: int, text_bytes: int) -> pa.Array:
    """JSON lines (each ending in a newline) for records first .. first + n - 1."""
    synthetic = rng.random(n) < 0.5
    # Indexes into the fragment lists below, whose synthetic options follow the real ones.
    source = np.where(synthetic, len(REAL_SOURCES), 0) + rng.integers(0, len(REAL_SOURCES), n)
    method = np.where(
        synthetic, len(REAL_METHODS) + rng.integers(0, len(SYNTHETIC_METHODS), n), rng.integers(0, len(REAL_METHODS), n)
    )
    generator = np.where(synthetic, rng.integers(0, len(GENERATORS), n), len(GENERATORS))
    generation = np.where(synthetic, rng.integers(1, 4, n), 0)
    ids = pc.utf8_lpad(pc.cast(pa.array(np.arange(first, first + n)), pa.string()), 8, "0")
    parts = [
        '{"id": "bench-',
        ids,
        '", "text": "',
        _texts(rng, words, p, n, text_bytes),
        '"',
        _fragments("origin", ["real", "synthetic"]).take(pa.array(synthetic.astype(np.int8))),
        _fragments("source", REAL_SOURCES + SYNTHETIC_SOURCES).take(pa.array(source)),
        _fragments("method", REAL_METHODS + SYNTHETIC_METHODS).take(pa.array(method)),
        _fragments("generator", [*GENERATORS, None]).take(pa.array(generator)),
        _fragments("generation", [0, 1, 2, 3]).take(pa.array(generation)),
        _pick(rng, _fragments("license", LICENSES), n),
        _pick(rng, _fragments("language", LANGUAGES), n),
        _pick(rng, _fragments("tags", TAG_SETS), n),
        "}\n",
    ]
    return pc.binary_join_element_wise(*parts, "")


def write_corpus(path: str | Path, rows: int, *, seed: int = 0, text_bytes: int = TEXT_BYTES) -> int:
    """Write `rows` JSONL records to `path`, deterministically for a given seed; returns the bytes written."""
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    written = 0
    with open(path, "wb") as out:
        for first in range(1, rows + 1, CHUNK_ROWS):
            lines = _chunk(rng, words, p, first, min(CHUNK_ROWS, rows + 1 - first), text_bytes)
            # The lines lie end to end in the array's data buffer: write it in one go.
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
            data = lines.buffers()[2][offsets[0] : offsets[-1]]
            out.write(data)
            written += data.size
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-bytes", type=int, default=TEXT_BYTES, help="mean bytes of text per record")
    args = parser.parse_args(argv)
    size = write_corpus(args.output, args.rows, seed=args.seed, text_bytes=args.text_bytes)
    print(f"wrote {args.rows:,} records, {size / 1e6:,.1f} MB, to {args.output}")


if __name__ == "__main__":
    main()
