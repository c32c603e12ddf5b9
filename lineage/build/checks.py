"""Contamination re-check of a build's members against protected sets, with the filter's own detection.

Every build runs it on the members it is about to commit (whether or not the `contamination` filter ran
since the last ingest) and refuses to commit a leak. `build show` and reports run it again whenever the
protected sets changed since the build (their fingerprint differs), so a build never shows as clean
against protected data it was not checked against.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.edges import Graph
from lineage.filters.contamination import ContaminationParams, descendants, detect, protected_items

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

CHECK_VERSION = 2
MAX_LISTED = 20  # leaks listed by name in the check; the counts cover all of them
SNIPPET_CHARS = 160

METHODS = {
    "exact": "the same text as a protected item (content hash, or the same words after normalisation)",
    "near": "an item found inside the member whose whole text is a near duplicate of it (exact Jaccard of "
    "word shingles)",
    "contained": "a share of an item's words found in order inside the member (word n-gram index, then "
    "alignment); case, punctuation and template markup ignored",
    "lineage": "a descendant of a protected sample",
}

SETS_SQL = "SELECT name FROM sets WHERE protected AND (? IS NULL OR list_contains(?, name)) ORDER BY 1"
MEMBERS_SQL = """
SELECT s.sample_id, s.external_id, s.text, s.content_hash FROM samples s SEMI JOIN _members m USING (sample_id)
ORDER BY s.sample_id
"""


def fingerprint(store: StoreCore, names: list[str] | None) -> str:
    """sha256 of the protected sample ids: a check is current while this is unchanged."""
    ids = store.query("SELECT sample_id FROM protected_samples(?) ORDER BY 1", params=[names])["sample_id"].to_pylist()
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def contamination_check(store: StoreCore, names: list[str] | None, member_ids: pa.Array) -> dict[str, Any]:
    params = ContaminationParams()
    protected = protected_items(store, names)
    members = pa.table({"sample_id": member_ids})
    leaks: list[dict[str, Any]] = []
    with store.reader(views={"sets", *Graph.VIEWS}) as con:  # SETS_SQL, MEMBERS_SQL and the Graph
        sets = [
            r[0]
            for r in con.execute(
                SETS_SQL,
                [names, names],
            ).fetchall()
        ]
        if protected.num_rows:
            con.register("_members", members)
            rows = con.sql(MEMBERS_SQL).to_arrow_table()
            seeds = {pid: pid for pid in protected["sample_id"].to_pylist()}
            roots = seeds | descendants(Graph(store, con), seeds)  # a protected member, or a descendant of one
            leaks = _leaks(rows, protected, roots, params)
    counts = {f"{m}_matches": sum(1 for x in leaks if x["method"] == m) for m in METHODS}
    return {
        "protected_sets": sets,
        "protected_samples": protected.num_rows,
        **counts,
        "clean": not leaks,
        "leaks": leaks[:MAX_LISTED],
        "methods": METHODS,
        "params": params.model_dump(exclude={"sets"}),
        "protected_fingerprint": hashlib.sha256("\n".join(protected["sample_id"].to_pylist()).encode()).hexdigest(),
        "check_version": CHECK_VERSION,
    }


def _leaks(rows: pa.Table, protected: pa.Table, roots: dict[str, str], params: ContaminationParams) -> list[dict]:
    found = detect(protected, rows["text"], rows["content_hash"], params)
    ids, external = rows["sample_id"].to_pylist(), rows["external_id"].to_pylist()
    out = []
    for i, sample_id in enumerate(ids):
        leak = found.get(i)
        if leak is None and sample_id in roots:
            out.append(_row(sample_id, external[i], roots[sample_id], "lineage", "contaminated_lineage", None, None))
        elif leak is not None:
            text = rows["text"][i].as_py()
            s, e = leak.span or (0, len(text))
            snippet = text[s:e] if e - s <= SNIPPET_CHARS else text[s : s + SNIPPET_CHARS] + "…"
            method = leak.reason.split(":")[0].removeprefix("contaminated_")
            out.append(_row(sample_id, external[i], leak.item_id, method, leak.reason, leak.score, snippet))
    return out


def _row(
    member: str, external: str | None, item: str, method: str, reason: str, score: float | None, match: str | None
) -> dict[str, Any]:
    return {
        "member": member,
        "external_id": external,
        "item": item,
        "method": method,
        "reason": reason,
        "score": score,
        "match": match,
    }


def describe(leak: dict[str, Any]) -> str:
    """One line: the member, the item and the match."""
    who = leak["member"] + (f" ({leak['external_id']})" if leak.get("external_id") else "")
    how = leak["reason"] if leak["score"] is None else f"{leak['reason']}, score {leak['score']:.2f}"
    match = f": {leak['match']!r}" if leak.get("match") else ""
    return f"member {who} leaks protected item {leak['item']} ({how}){match}"


def leak_count(check: dict[str, Any]) -> int:
    return sum(int(check.get(f"{m}_matches", 0) or 0) for m in METHODS)
