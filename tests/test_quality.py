"""quality: Gopher-style heuristics, on hand-made bad texts and on the WordNet fixtures in a real store."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import FIXTURES

from lineage.core import selection
from lineage.engines import local
from lineage.errors import LineageError
from lineage.filters.quality import QualityFilter, QualityParams
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import realistic

REASON = re.compile(r"^[a-z0-9_]+(:[^\s].*)?$")
NO_STOP_WORDS = (
    "Quarterly revenue grew sharply across every region while operating costs fell, margins widened, "
    "analysts raised targets, investors cheered, shares climbed, bonds rallied, currencies steadied today"
)
BAD = [
    ("repeated_2gram", "buy now buy now buy now buy now buy now buy now please", "top_2gram_fraction"),
    ("repeated_4gram", "we will win the game and we will win the game and we will win", "top_4gram_fraction"),
    ("lorem_ellipsis", "lorem ipsum ... dolor sit ... amet consectetur ... adipiscing elit", "symbol_ratio"),
    ("hash_spam", "#deal #sale #free #win #promo click this link now", "symbol_ratio"),
    (
        "ellipsis_lines",
        "and then it went on...\nthe crowd slowly drifted away...\nnobody knew what came next",
        "ellipsis_lines",
    ),
    ("non_alphabetic", "12 345 6789 +1 (555) 0100 42 7.5 99% -- ==", "low_alpha_words"),
    ("no_stop_words", NO_STOP_WORDS, "no_stop_words"),
    (
        "duplicate_lines",
        "click here for deals\nclick here for deals\nclick here for deals\nthe end of it",
        "duplicate_lines",
    ),
    ("duplicate_paragraphs", "A first paragraph.\n\nA first paragraph.\n\nAnother one here.", "duplicate_paragraphs"),
    ("too_few_words", "hello there", "too_few_words"),
    ("short_words", "a b c d e f g h", "short_words"),
    ("long_words", "internationalization counterrevolutionaries electroencephalographically", "long_words"),
]


def decide(texts: list[str], **params: object) -> list[dict[str, object]]:
    batch = pa.RecordBatch.from_pydict({"sample_id": [f"s{i}" for i in range(len(texts))], "text": texts})
    return QualityFilter(QualityParams(**params)).decide(batch).to_pylist()


def failed_rules(row: dict[str, object]) -> list[str]:
    reason = str(row["reason"])
    assert reason.startswith("low_quality:") and REASON.match(reason), reason
    return reason.removeprefix("low_quality:").split(",")


@pytest.mark.parametrize(("text", "rule"), [pytest.param(t, r, id=i) for i, t, r in BAD])
def test_bad_text_dropped_for_its_rule(text: str, rule: str) -> None:
    (row,) = decide([text])
    assert row["decision"] == "drop"
    assert rule in failed_rules(row)


def test_good_sentences_kept_with_headroom() -> None:
    rows = decide(
        [
            "negotiations ran into a brick wall",
            "the committee agreed to publish the report with a short summary of the findings",
            "A cheerful tune.\n\nThe choir sang it twice, and the hall was quiet after that.",
        ]
    )
    assert [r["decision"] for r in rows] == ["keep"] * 3
    assert all(r["reason"] is None and 0 <= r["score"] <= 1 for r in rows)


def test_reason_lists_every_failing_rule_and_score_is_the_worst() -> None:
    (row,) = decide(["the the the the the the the the the the"])
    assert failed_rules(row) == ["top_2gram_fraction", "top_3gram_fraction", "top_4gram_fraction"]
    # Every n-gram fraction is 1.0; the 4-gram bound (0.16) is exceeded by the largest relative margin.
    assert row["score"] == 1.0
    (row,) = decide(["hello there"], min_words=4)
    assert failed_rules(row) == ["too_few_words"] and row["score"] == 2.0


def test_stop_word_rule_waits_for_long_texts() -> None:
    short = "quarterly revenue grew sharply across every region"
    assert decide([short])[0]["decision"] == "keep"
    assert failed_rules(decide([short], stop_words_min_words=5)[0]) == ["no_stop_words"]


def test_empty_and_null_text() -> None:
    rows = decide(["", "   \n  "])
    assert [failed_rules(r) for r in rows] == [["too_few_words"], ["too_few_words"]]


def test_decisions_do_not_depend_on_batching() -> None:
    files = [FIXTURES / f"{name}.jsonl" for name in ("real", "synthetic-g1", "synthetic-g2", "synthetic-g3")]
    texts = [json.loads(line)["text"] for f in files for line in f.read_text().splitlines()]
    together = decide(texts)
    for i in range(0, len(texts), 7):
        assert decide([texts[i]])[0] == together[i] | {"sample_id": "s0"}


def rates(store: Store, run_id: str) -> dict[str, float]:
    rows = store.sql(
        "SELECT s.source, avg(CASE WHEN e.decision = 'drop' THEN 1 ELSE 0 END) AS rate "
        "FROM events e JOIN samples s USING (sample_id) WHERE e.run_id = ? GROUP BY s.source",
        params=[run_id],
    ).to_pylist()
    return {r["source"]: r["rate"] for r in rows}


def test_fixtures_real_kept_degraded_dropped(small_store: Store) -> None:
    result = small_store.run_filter("quality")
    assert result.selected == 1125 and set(result.reasons) == {"low_quality"}
    by_source = rates(small_store, result.run_id)
    assert by_source["wordnet"] <= 0.05
    # Generation 3 is deliberately degraded, repetitive text.
    assert by_source["syn-v3"] >= 0.6 and by_source["syn-v3"] >= 10 * by_source["wordnet"]
    reasons = small_store.sql(
        "SELECT DISTINCT reason FROM events WHERE run_id = ? AND reason IS NOT NULL", params=[result.run_id]
    )["reason"].to_pylist()
    assert all(REASON.match(r) for r in reasons)


def test_worker_processes_decide_like_inline(small_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inline = small_store.run_filter("quality", engine="inline")
    # Three batches of 400, so the process pool runs (the selection makes them, the engine pools past one).
    monkeypatch.setattr(selection, "BATCH_ROWS", 400)
    monkeypatch.setattr(local, "BATCH_ROWS", 400)
    pooled = small_store.run_filter("quality", engine="local", workers=2, force=True)
    query = "SELECT sample_id, decision, score, reason FROM events WHERE run_id = ? ORDER BY sample_id"
    assert pooled.dropped == inline.dropped
    assert (
        small_store.sql(query, params=[pooled.run_id]).to_pylist()
        == small_store.sql(query, params=[inline.run_id]).to_pylist()
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_top_2gram_fraction": "1.5"}, "param `max_top_2gram_fraction` of filter quality: "),
        ({"min_words": "-1"}, "param `min_words` of filter quality: "),
        ({"min_words": "10", "max_words": "5"}, "param `max_words` of filter quality: Value error, must be at least"),
        ({"threshold": "0.5"}, "unknown param `threshold` for filter quality; allowed: min_words, max_words"),
    ],
)
def test_param_errors_name_the_param(store: Store, params: dict[str, str], message: str) -> None:
    with pytest.raises(LineageError) as err:
        store.run_filter("quality", params=params)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def real_rows() -> list[dict[str, object]]:
    return [json.loads(line) for line in (FIXTURES / "real.jsonl").read_text().splitlines()]


def shaped_store(store: Store) -> Store:
    """Web prose, OpenAI `messages` chats, ShareGPT `conversations`, Alpaca records through the Alpaca
    template with short answers (some identical), and `[INST]` texts, built on the WordNet fixtures."""
    rows = real_rows()[:300]
    store.ingest(rows, origin="real", source="wordnet", method="human")
    chats = [
        {"id": f"c{i}", "messages": [{"role": "user", "content": f"What does {r['lemma']} mean?"},
                                     {"role": "assistant", "content": r["text"]},
                                     {"role": "user", "content": "ok, thanks!"},
                                     {"role": "assistant", "content": "You're welcome."}]}
        for i, r in enumerate(rows[:100])
    ]
    store.ingest(chats, origin="synthetic", source="chat-v1", generation=1)
    share = [
        {"id": f"g{i}", "conversations": [{"from": "human", "value": f"define {r['lemma']}"},
                                          {"from": "gpt", "value": " ".join(str(r["text"]).split()[:4])}]}
        for i, r in enumerate(rows[100:200])
    ]
    store.ingest(share, origin="synthetic", source="sharegpt-v1", generation=1)
    alpaca = [
        {"id": f"a{i}", "instruction": f"Is {r['lemma']} a noun? Answer yes or no.", "input": "",
         "output": "Yes." if i % 2 else "No."}
        for i, r in enumerate(rows[200:300])
    ]
    store.ingest(alpaca, origin="synthetic", source="alpaca-v1", generation=1,
                 template="### Instruction:\n{instruction}\n\n### Response:\n{output}")
    inst = [{"id": f"i{i}", "text": f"<s>[INST] Define {r['lemma']}. [/INST] {r['text']}</s>"}
            for i, r in enumerate(rows[:50])]
    store.ingest(inst, origin="synthetic", source="inst-v1", generation=1)
    return store


def drop_rates(store: Store, run_id: str) -> dict[str, float]:
    return {k: round(v, 3) for k, v in rates(store, run_id).items()}


def test_presets_fit_chat_and_instruction_data(store: Store) -> None:
    store = shaped_store(store)
    web = store.run_filter("quality", params={"preset": "web"})
    assert web.note == "preset web"
    web_rates = drop_rates(store, web.run_id)
    assert web_rates["alpaca-v1"] == 1.0  # the `###` headings and the stop-word-less answers: all dropped
    assert any("source alpaca-v1 (100%)" in line for line in web.warnings())
    history = {r["run_id"]: r for r in store.runs("quality").to_pylist()}
    assert history[web.run_id]["warning"] == "dropped 100% of alpaca-v1"
    assert "alpaca-v1 100/100" in history[web.run_id]["sources"]
    store.build({"name": "webmix", "size": 100, "seed": 1, "pool": {"exclude_dropped_by": ["quality"]}})
    md = store.report("build", "webmix", output=store.root.parent / "webmix.md").read_text()
    assert "| quality | alpaca-v1 | 100 | 100 | 100.0% (more than 90%) |" in md
    html = store.report("build", "webmix", output=store.root.parent / "webmix.html").read_text()
    assert "quality drops 100 of 100 samples of alpaca-v1 (100%): do its rules fit that data?" in html

    auto = store.run_filter("quality")
    assert auto.note == (
        "preset auto: chat for chat-v1, sharegpt-v1; instruction for alpaca-v1, inst-v1; web for the rest"
    )
    assert auto.note in auto.summary()
    auto_rates = drop_rates(store, auto.run_id)
    assert auto_rates["alpaca-v1"] == auto_rates["chat-v1"] == auto_rates["sharegpt-v1"] == 0.0
    assert not auto.warnings()
    assert store.runs("quality").to_pylist()[-1]["warning"] is None
    same = (
        "SELECT a.sample_id FROM events a JOIN events w USING (sample_id) JOIN samples s USING (sample_id) "
        "WHERE a.run_id = ? AND w.run_id = ? AND s.source = 'wordnet' AND a.decision IS DISTINCT FROM w.decision"
    )
    assert store.sql(same, params=[auto.run_id, web.run_id]).num_rows == 0  # prose is judged as before

    store.build({"name": "mix", "size": 100, "seed": 1, "pool": {"exclude_dropped_by": ["quality"]}})
    md = store.report("build", "mix", output=store.root.parent / "mix.md").read_text()
    assert "| quality | wordnet |" in md and "Drops by source" in md  # the latest run: auto, nothing over 90%
    html = store.report("build", "mix", output=store.root.parent / "mix.html").read_text()
    assert "Drops by source" in html and "do its rules fit that data" not in html

    spam = [{"id": "spam", "messages": [{"role": "user", "content": "hi"},
                                        {"role": "assistant", "content": "buy now " * 12}]}]
    store.ingest(spam, origin="synthetic", source="chat-v1", generation=1)
    again = store.run_filter("quality", new_only=True)
    assert again.dropped == 1 and again.by_source == [
        {"source": "chat-v1", "decision": "drop", "reason": "low_quality", "n": 1}
    ]
    reason = store.sql("SELECT reason FROM events WHERE run_id = ?", params=[again.run_id])["reason"][0].as_py()
    assert "top_2gram_fraction" in reason


def test_a_preset_bound_given_as_a_param_wins(store: Store) -> None:
    store = shaped_store(store)
    strict = store.run_filter("quality", params={"preset": "instruction", "min_stop_words": "2",
                                                 "stop_words_min_words": "0"})
    assert drop_rates(store, strict.run_id)["alpaca-v1"] == 1.0
    with pytest.raises(LineageError, match="unknown param `sources` for filter quality"):
        store.run_filter("quality", params={"sources": "{}"})


def test_auto_presets_keep_short_answers_and_arithmetic(store: Store, tmp_path: Path) -> None:
    """Alpaca JSON (rendered without headings) and chats whose answers are "Yes." or "4" are what instruction
    and chat data look like: the presets picked for them keep those, and still drop spam."""
    made = realistic.make(seed=3, n=200)
    realistic.write(made, tmp_path)
    store.ingest(tmp_path / "alpaca.json", origin="synthetic", source="alpaca-v1", generation=1)
    store.ingest(tmp_path / "chat.jsonl", origin="synthetic", source="chat-v1", generation=1)
    spam = [{"id": "spam", "messages": [{"role": "user", "content": "hi"},
                                        {"role": "assistant", "content": "buy now " * 12}]}]
    store.ingest(spam, origin="synthetic", source="chat-v2", generation=1)
    run = store.run_filter("quality")
    assert run.note == "preset auto: chat for chat-v1, chat-v2; instruction for alpaca-v1; web for the rest"
    short = store.sql(
        "SELECT s.source, s.text, e.decision, e.reason FROM events e JOIN samples s USING (sample_id) "
        "WHERE e.run_id = ? AND (s.text LIKE '%Yes.' OR s.text LIKE '%2 + 2?%')", params=[run.run_id]
    ).to_pylist()
    assert {r["source"] for r in short} == {"alpaca-v1", "chat-v1"} and len(short) > 20
    assert [r for r in short if r["decision"] != "keep"] == []
    drops = [r for r in run.by_source if r["decision"] == "drop"]
    assert run.dropped == 1 and drops == [{"source": "chat-v2", "decision": "drop", "reason": "low_quality", "n": 1}]
