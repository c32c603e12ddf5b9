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
from lineage.filters.contamination import (
    ContaminationParams,
    build_index,
    descendants,
    detect,
    protected_items,
)

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

# Why a check that found no leak is not a verdict (`BuildRecord.contamination`'s `unverified`): this check follows
# descendants of protected samples; the filter, descendants of any sample that contains a protected item.
UNTIL = "a member descending from a sample that contains a protected item is not ruled out until `{run}` runs"
UNVERIFIED_STALE = ("the contamination filter had not seen {n:,} samples of the pool when the build was made "
                    "(--allow-stale): " + UNTIL.format(run="lineage filter run contamination --new"))
UNVERIFIED_NEVER = "the contamination filter has never run: " + UNTIL.format(run="lineage filter run contamination")
UNVERIFIED_CHANGED = ("the protected sets changed after the contamination filter last ran: "
                      + UNTIL.format(run="lineage filter run contamination"))

SETS_SQL = "SELECT name FROM sets WHERE protected AND (? IS NULL OR list_contains(?, name)) ORDER BY 1"
MEMBERS_SQL = """
SELECT s.sample_id, s.external_id, s.text, s.content_hash FROM samples s SEMI JOIN _members m USING (sample_id)
ORDER BY s.sample_id
"""


def fingerprint(store: StoreCore, names: list[str] | None) -> str:
    """sha256 of the protected sample ids: a check is current while this is unchanged."""
    ids = store.query("SELECT sample_id FROM protected_samples(?) ORDER BY 1", params=[names])["sample_id"].to_pylist()
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


FILTER_DROPS_SQL = """
SELECT e.sample_id, s.external_id, e.related_id, e.reason FROM status e JOIN samples s USING (sample_id)
SEMI JOIN _members m USING (sample_id) WHERE e.filter = 'contamination' AND e.decision = 'drop' ORDER BY 1
"""


def filter_drops(store: StoreCore, member_ids: pa.Array) -> list[dict[str, Any]]:
    """The members the `contamination` filter drops now, as leaks (method `filter`). The filter finds more than
    this check can from the members alone: descendants of any sample that contains a protected item (this check:
    of protected samples), and it may have run since the build."""
    if not store.query("SELECT count(*) AS n FROM runs WHERE filter = 'contamination'")["n"][0].as_py():
        return []
    with store.reader(views={"status", "samples"}) as con:
        con.register("_members", pa.table({"sample_id": member_ids}))
        rows = con.execute(FILTER_DROPS_SQL).fetchall()
    return [_row(sample_id, external, item or "?", "filter", reason or "contaminated", None, None)
            for sample_id, external, item, reason in rows]


def with_filter_drops(check: dict[str, Any], drops: list[dict[str, Any]], found: set[str]) -> dict[str, Any]:
    """`check` with the filter's drops of members it did not find itself (`found`: the members it did)."""
    extra = [d for d in drops if d["member"] not in found]
    if not extra:
        return check
    return {**check, "clean": False, "filter_matches": len(extra), "leaks": (check["leaks"] + extra)[:MAX_LISTED]}


RECORDS_SQL = """
SELECT s.sample_id, s.external_id, s.record, s.text FROM samples s SEMI JOIN _members m USING (sample_id)
WHERE s.record IS NOT NULL ORDER BY 1
"""


def record_leaks(
    store: StoreCore, names: list[str] | None, member_ids: pa.Array, batch_rows: int = 20_000
) -> list[dict]:
    """Leaks in the members' records beyond their text: every string of the record as it came (each alone,
    the text itself left out), what a verbatim export writes. The members' check reads their text only, so a
    held-out item in a `reference` field reached a verbatim export of a build called clean."""
    import json

    params = ContaminationParams()
    protected = protected_items(store, names)
    if not protected.num_rows:
        return []
    index = build_index(protected, params)
    leaks: list[dict] = []
    with store.reader(views={"samples"}) as con:
        con.register("_members", pa.table({"sample_id": member_ids}))
        reader = con.sql(RECORDS_SQL).to_arrow_reader(batch_rows)
        for batch in reader:
            owners, strings = [], []
            for i, (record, text) in enumerate(zip(batch["record"].to_pylist(), batch["text"].to_pylist(),
                                                   strict=True)):
                for value in _strings(json.loads(record)):
                    if value.strip() and value != text:
                        owners.append(i)
                        strings.append(value)
            found = detect(protected, pa.array(strings, pa.string()), pa.nulls(len(strings), pa.string()), params,
                           index=index)
            seen: set[int] = set()
            for k, leak in sorted(found.items()):
                row = owners[k]
                if row in seen:
                    continue
                seen.add(row)
                method = leak.reason.split(":")[0].removeprefix("contaminated_")
                leaks.append(_row(batch["sample_id"][row].as_py(), batch["external_id"][row].as_py(), leak.item_id,
                                  f"record {method}", leak.reason, leak.score, strings[k][:SNIPPET_CHARS]))
    return leaks


def _strings(value: object) -> list[str]:
    """Every string in a JSON value (object values and array items, depth first)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def contamination_check(
    store: StoreCore, names: list[str] | None, member_ids: pa.Array, *, drops: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`drops`: the filter's drops of members (`filter_drops`), counted with the leaks this check finds."""
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
    check = {
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
    return with_filter_drops(check, drops or [], {x["member"] for x in leaks})


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
    return sum(int(check.get(f"{m}_matches", 0) or 0) for m in (*METHODS, "filter"))
