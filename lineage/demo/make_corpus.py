"""Regenerate the demo's real corpus from WordNet 3.0 (needs `apt-get install wordnet-base`).

    python -m lineage.demo.make_corpus

Writes lineage/demo/data/wordnet-sentences.jsonl.gz: every example sentence and gloss of WordNet 3.0 with
at least six words, one JSON object per line ({"id", "text", "kind"}), sorted by id, gzip with mtime 0 so
the file is byte-for-byte reproducible. The WordNet licence ships beside it (WORDNET-LICENSE).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).parent / "data" / "wordnet-sentences.jsonl.gz"
POS = ("noun", "verb", "adj", "adv")


def sentences(pos: str) -> list[dict[str, str]]:
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
                out.append({"id": f"wn-{pos[0]}-{offset}-{i}", "text": text, "kind": kind})
    return out


def main() -> None:
    rows = sorted((r for pos in POS for r in sentences(pos)), key=lambda r: r["id"])
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    print(f"wrote {len(rows):,} sentences to {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
