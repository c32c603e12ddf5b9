"""Regenerate the demo's real corpus from WordNet 3.0 (needs `apt-get install wordnet-base`).

    python -m lineage.demo.make_corpus

Writes lineage/demo/data/wordnet-sentences.jsonl.gz: every example sentence and gloss of WordNet 3.0 with
at least six words, one JSON object per line ({"id", "text", "kind"}), gzip with mtime 0 so the file is
byte-for-byte reproducible. The WordNet licence ships beside it (WORDNET-LICENSE).

An id is `wn-<synset type>-<offset>-<part>`, the synset types of WordNet's own data files (n, v, a, r). The first
corpus named adverbs `a` too, and an adverb and an adjective at the same offset of their files had one id with
two texts: 10 such pairs, so a demo with `--train-size` 20,000 refused its own input. The lines keep that first
corpus's order (by the old id: adjectives and adverbs interleaved by offset), so that a seed draws the same
sentences as before and the demo's published numbers stay comparable.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).parent / "data" / "wordnet-sentences.jsonl.gz"
POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # file -> synset type


def sentences(pos: str) -> list[tuple[str, dict[str, str]]]:
    """(order key, row) of each sentence in WordNet's data file of `pos`."""
    out = []
    for line in (WORDNET / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  ") or " | " not in line:
            continue  # the licence header
        offset, gloss = line.split(" ", 1)[0], line.split(" | ", 1)[1].strip()
        parts = [p.strip() for p in gloss.split(";")]
        for i, part in enumerate(parts):
            kind = "example" if part.startswith('"') else "gloss"
            text = part.strip('"').strip()
            if len(text.split()) >= 6:
                order = f"wn-{pos[0]}-{offset}-{i}"  # the first corpus's id: `a` for adverbs too
                out.append((order, {"id": f"wn-{POS[pos]}-{offset}-{i}", "text": text, "kind": kind}))
    return out


def main() -> None:
    # Stable: where two adjectives and adverbs share an order key, the adjective first, as the first corpus had it.
    rows = [row for _, row in sorted((r for pos in POS for r in sentences(pos)), key=lambda r: r[0])]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit("two sentences have one id: each must name one sentence")
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    print(f"wrote {len(rows):,} sentences to {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
