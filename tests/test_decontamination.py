"""Containment: protected items planted inside training text (fixtures/leaks.py) are found, named and audited."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, Runner

from lineage.errors import LineageError
from lineage.features import containment
from lineage.sets import create_set
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import leaks
import realistic

CLEAN = 1000


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, leaks.Leaks]:
    """A held-out set ingested with a Q/A template and an instruction template; training documents and chats."""
    made = leaks.make(seed=0, clean=CLEAN)
    store = Store.init(tmp_path_factory.mktemp("decon") / "store")
    leaks.ingest(store, made)
    return store, made


def _decisions(store: Store) -> dict[str, dict[str, Any]]:
    rows = store.sql(
        "SELECT s.external_id, s.source, s.text, e.decision, e.reason, e.score, r.external_id AS item FROM status e "
        "JOIN samples s USING (sample_id) LEFT JOIN samples r ON r.sample_id = e.related_id "
        "WHERE e.filter = 'contamination'"
    ).to_pylist()
    return {r["external_id"]: r for r in rows if r["source"] in ("web", "chat")}


def test_planted_leaks_are_found_with_their_item_share_and_span(planted: tuple[Store, leaks.Leaks]) -> None:
    store, made = planted
    result = store.run_filter("contamination")
    rows = _decisions(store)
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for rec in [*made.docs, *made.chats]:
        if rec["leak_of"] is None:
            continue
        row = rows[rec["id"]]
        total[rec["shape"]] += 1
        if row["decision"] == "drop" and row["item"] == rec["leak_of"]:
            found[rec["shape"]] += 1
    recall = {shape: found[shape] / total[shape] for shape in total}
    assert total == {"verbatim": 75, "lower_nopunct": 75, "question": 75, "replaced": 75, "chat": 40}
    for shape in ("verbatim", "lower_nopunct", "question", "chat"):
        assert recall[shape] >= 0.99, recall
    assert recall["replaced"] >= 0.9, recall
    false = [r for r in made.docs if r["leak_of"] is None and rows[r["id"]]["decision"] == "drop"]
    assert len(false) <= 0.005 * CLEAN
    assert result.reasons["contaminated_contained"] >= 300
    # The reason carries the span; the span holds the item's words; the score is the share found.
    item_text = {h["id"]: h["prompt"] for h in made.heldout}
    for rec in made.docs:
        row = rows[rec["id"]]
        if rec["leak_of"] is None or row["decision"] != "drop":
            continue
        start, end = map(int, re.fullmatch(r"contaminated_contained:chars=(\d+)-(\d+)", row["reason"]).groups())
        words = re.findall(r"\w+", item_text[rec["leak_of"]].lower())
        span = set(re.findall(r"\w+", row["text"][start:end].lower()))
        assert sum(w in span for w in words) >= 0.6 * len(words)
        assert 0.5 <= row["score"] <= 1.0
        if rec["shape"] == "verbatim":
            assert row["score"] == 1.0


def test_show_names_the_match(planted: tuple[Store, leaks.Leaks]) -> None:
    store, made = planted
    store.run_filter("contamination")
    leak = next(r for r in made.docs if r["shape"] == "verbatim")
    out = Runner(store.root)("show", leak["id"], "--format", "table").output
    assert "contaminated_contained:chars=" in out


def test_a_build_never_commits_a_leak_and_shows_leaks_found_later(tmp_path: Path) -> None:
    made = leaks.make(seed=3, clean=60, items=8, chats=0)
    store = Store.init(tmp_path / "store")
    create_set(store, "heldout", protected=True)
    store.ingest(made.heldout[:4], origin="real", source="bench", template=leaks.ITEM_TEMPLATE, set_name="heldout")
    store.ingest(made.docs, origin="real", source="web")
    spec = {"name": "mix", "size": 60, "seed": 1}
    # The filter never ran: the build's own re-check finds the leak and names member, item and match.
    with pytest.raises(LineageError) as err:
        store.build(spec)
    message = str(err.value)
    assert "\n" not in message and "leaks protected item" in message and "contaminated_contained" in message
    assert "nothing was written" in message and store.builds().num_rows == 0
    store.run_filter("contamination")
    build = store.build(spec)
    check = build.contamination()
    assert check["clean"] and not check["rechecked"] and check["protected_samples"] == 4
    runner = Runner(store.root)
    assert "contamination: clean against 4 protected items in heldout" in runner("build", "show", "mix").output
    # Four more items become protected later: the build now shows the leaks they reveal, and so do reports.
    store.ingest(made.heldout[4:], origin="real", source="bench2", template=leaks.ITEM_TEMPLATE, set_name="heldout")
    out = runner("build", "show", "mix").output
    planted_later = {r["id"] for r in made.docs if r["leak_of"] in {h["id"] for h in made.heldout[4:]}}
    members = set(build.members(columns="external_id")["external_id"].to_pylist())
    assert planted_later & members  # some of them were drawn
    assert "contamination: CONTAMINATED" in out and "re-checked now" in out
    assert any(m in out for m in planted_later & members)
    doc = json.loads(runner("build", "show", "mix", "--json").output)
    assert doc["checks"]["contained_matches"] == len(planted_later & members)
    md = tmp_path / "mix.md"
    runner("report", "build", "mix", "--output", str(md))
    assert "Contaminated:" in md.read_text()
    # And the next filter run finds them.
    assert not store.run_filter("contamination").skipped
    rows = _decisions(store)
    assert all(rows[d]["decision"] == "drop" for d in planted_later)


def test_short_items_cjk_and_empty_sets(store: Store) -> None:
    create_set(store, "heldout", protected=True)
    assert store.run_filter("contamination").dropped == 0  # an empty protected set: nothing to find
    items = [
        {"id": "ja", "text": "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。"},
        {"id": "zh", "text": "长城是中国古代的军事防御工程，全长两万多千米。"},
        {"id": "short", "text": "The dog barked."},
    ]
    store.ingest(items, origin="real", source="eval", set_name="heldout")
    store.ingest([
        {"id": "ja-doc", "text": "今日は晴れです。" + items[0]["text"] + "明日は雨。"},
        {"id": "zh-doc", "text": "我们去参观了长城。长城是中国古代的军事防御工程，全长两万多千米。非常壮观。"},
        {"id": "zh-clean", "text": "长江是中国最长的河流，流经许多省份和城市。"},
        {"id": "short-copy", "text": "the DOG barked"},  # the same words: exact after normalisation
        {"id": "short-inside", "text": "At night the dog barked twice and then slept until the morning came."},
    ], origin="real", source="web")
    store.run_filter("contamination")
    rows = _decisions(store)
    assert rows["ja-doc"]["item"] == "ja" and rows["ja-doc"]["reason"].startswith("contaminated_contained")
    assert rows["zh-doc"]["item"] == "zh" and rows["zh-doc"]["score"] == 1.0
    assert rows["zh-clean"]["decision"] == "keep"
    assert rows["short-copy"]["reason"] == "contaminated_exact" and rows["short-copy"]["item"] == "short"
    # Three words inside a sentence are not evidence of a leak: shorter than min_words, whole texts only.
    assert rows["short-inside"]["decision"] == "keep"
    # The protected items themselves stay (builds exclude them anyway).
    kept = store.sql("SELECT decision FROM status WHERE filter = 'contamination' AND sample_id IN "
                     "(SELECT sample_id FROM set_members)")["decision"].to_pylist()
    assert kept == ["keep"] * 3


def test_normalisation_ignores_case_punctuation_and_markup() -> None:
    plain = containment.tokenize(["What is the boiling point of water at sea level"]).hashes
    marked = containment.tokenize(["### Instruction:\nWHAT is the boiling-point of water, at sea level?\n"
                                   "<|im_start|>assistant"]).hashes
    assert list(plain) == list(marked)


def test_invisible_characters_hide_no_leak(store: Store, tmp_path: Path) -> None:
    """Web text carries invisible format characters inside words: soft hyphens (HTML `&shy;`), zero-width joiners,
    word joiners, byte-order marks, bidi marks. A benchmark item so marked inside a 300-word document reads as the
    item and is found, with its span in the document's characters; a zero-width space still separates words."""
    made = realistic.make(seed=6, n=60, leaks=10)
    create_set(store, "heldout", protected=True)
    store.ingest(made["heldout"], origin="real", source="bench", template=leaks.ITEM_TEMPLATE, set_name="heldout")
    marks = ["\u00ad", "\u200d", "\u2060", "\ufeff", "\u200e"]
    docs, items = [], {}
    for k, (doc, item) in enumerate(zip(made["docs"][10:20], made["heldout"][10:20], strict=True)):
        text = leaks.ITEM_TEMPLATE.format(**item)
        mark = marks[k % len(marks)]
        hidden = " ".join(w[:2] + mark + w[2:] if len(w) > 4 else w for w in text.split(" "))
        if k == len(marks):
            hidden = text.replace(" ", "\u200b")
        cut = len(doc["text"]) // 2
        docs.append({"id": f"hidden-{k}", "text": doc["text"][:cut] + " " + hidden + " " + doc["text"][cut:]})
        items[f"hidden-{k}"] = (item["id"], cut + 1, cut + 1 + len(hidden))
    store.ingest(docs, origin="real", source="web")
    store.run_filter("contamination")
    rows = _decisions(store)
    for doc_id, (item, start, end) in items.items():
        assert rows[doc_id]["item"] == item and rows[doc_id]["reason"].startswith("contaminated_contained"), doc_id
        s, e = (int(x) for x in rows[doc_id]["reason"].split("chars=")[1].split("-"))
        assert start <= s < e <= end, (doc_id, s, e, start, end)
