"""Every record keeps its identity (store format 2): ids from source + the record's own id, duplicates as decisions,
the same id with other text refused, and a store made by format 1 migrated without losing a sample."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, Runner, count

from lineage.core import catalog
from lineage.core.handle import LAYOUT
from lineage.errors import IngestError, StoreFormatError
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import realistic

FORMAT1 = FIXTURES / "format1"


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_two_records_with_the_same_text_stay_two_samples(store: Store, runner: Runner, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"id": "a1", "text": "I do not know."}, {"id": "a2", "text": "I do not know."}]
    )
    out = runner("ingest", str(path), "--origin", "real", "--source", "notes").stdout
    assert "2 new, 0 already present, 1 duplicate of earlier text (kept; exact-dedup decides)" in out
    assert "0 new, 2 already present" in runner("ingest", str(path), "--origin", "real", "--source", "notes").stdout
    rows = store.sql("SELECT external_id, input_row FROM samples ORDER BY input_row").to_pylist()
    assert rows == [{"external_id": "a1", "input_row": 1}, {"external_id": "a2", "input_row": 2}]
    assert store.sql("SELECT rows_duplicate FROM batches ORDER BY version")["rows_duplicate"].to_pylist() == [1, 0]

    runner("filter", "run", "exact-dedup")
    a1 = store.sample("a1")["sample"]["sample_id"]
    shown = runner("show", "a2", "--format", "table").stdout
    assert "external_id: a2" in shown
    assert f"exact-dedup: drop exact_duplicate score 2 (related: {a1[:12]}, id a1)" in shown
    status = store.sql("SELECT s.external_id, e.decision, e.related_id FROM status e JOIN samples s USING (sample_id)")
    assert sorted(status.to_pylist(), key=lambda r: r["external_id"]) == [
        {"external_id": "a1", "decision": "keep", "related_id": None},
        {"external_id": "a2", "decision": "drop", "related_id": a1},
    ]


def test_same_id_in_two_sources_needs_the_source(store: Store, runner: Runner, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "text": "Shared id, first source."}])
    other = write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "text": "Shared id, second source."}])
    store.ingest(path, origin="real", source="one")
    store.ingest(other, origin="real", source="two")
    assert runner("show", "x1", code=1).stderr == "Error: `x1` is an id in sources one, two; write it as `SOURCE:x1`\n"
    assert "Shared id, second source." in runner("show", "two:x1").stdout


def chat_answers(rng: random.Random, n: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A prompt file (real) and a model's answers to it (synthetic), ~3% of them the same short answer."""
    topics = ["tides", "bread", "glaciers", "orbits", "ferns", "violins", "copper", "owls", "deltas", "ink"]
    prompts, answers = [], []
    for i in range(1, n + 1):
        topic = rng.choice(topics)
        prompts.append({"id": f"alp-{i:05d}", "text": f"Question {i}: explain {topic} to a child, briefly."})
        short = rng.random() < 0.03
        text = "I don't know." if short else f"Answer {i}: {topic} are {rng.choice(['slow', 'old', 'bright'])}."
        answers.append({"id": f"ans-{i:05d}", "text": text, "parent_ids": [f"alp-{i:05d}"]})
    return prompts, answers


def test_identical_short_answers_keep_their_own_parents(store: Store, tmp_path: Path) -> None:
    rng = random.Random(13)
    prompts, answers = chat_answers(rng, 5000)
    shorts = [a["id"] for a in answers if a["text"] == "I don't know."]
    assert 100 <= len(shorts) <= 200
    store.ingest(write_jsonl(tmp_path / "prompts.jsonl", prompts), origin="real", source="alpaca")
    result = store.ingest(
        write_jsonl(tmp_path / "answers.jsonl", answers), origin="synthetic", source="answers", generator="m1"
    )
    assert (result.rows_stored, result.rows_present, result.rows_duplicate) == (5000, 0, len(shorts) - 1)
    # Every short answer keeps its own prompt as parent.
    parents = store.sql(
        "SELECT external_id, parent_ids FROM samples WHERE source = 'answers' AND text = 'I don''t know.'"
    ).to_pylist()
    by_id = {
        r["sample_id"]: r["external_id"] for r in store.sql("SELECT sample_id, external_id FROM samples").to_pylist()
    }
    assert sorted(r["external_id"] for r in parents) == sorted(shorts)
    assert all(by_id[r["parent_ids"][0]] == "alp-" + r["external_id"][4:] for r in parents)
    # A later file citing those answers by id resolves every one of them.
    follow = [{"id": f"fix-{i}", "text": f"Refined answer {i}.", "parent_ids": [s]} for i, s in enumerate(shorts)]
    later = store.ingest(
        write_jsonl(tmp_path / "follow.jsonl", follow), origin="synthetic", source="fixes", generator="m2"
    )
    assert later.rows_stored == len(shorts)
    assert count(store, "source = 'fixes' AND generation = 2") == len(shorts)

    run = store.run_filter("exact-dedup")
    drops = store.sql(
        "SELECT s.external_id, k.external_id AS kept FROM status e JOIN samples s USING (sample_id) "
        "JOIN samples k ON k.sample_id = e.related_id WHERE e.decision = 'drop' ORDER BY s.external_id"
    ).to_pylist()
    assert run.dropped == len(shorts) - 1
    assert drops == [{"external_id": s, "kept": shorts[0]} for s in shorts[1:]]


def test_same_id_with_other_text_is_refused_naming_both_lines(store: Store, runner: Runner, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": "a0", "text": "Zero."}, {"id": "a1", "text": "One."}])
    store.ingest(first, origin="real", source="notes")
    a1 = store.sample("a1")["sample"]["sample_id"]
    changed = write_jsonl(tmp_path / "changed.jsonl", [{"id": "a2", "text": "Two."}, {"id": "a1", "text": "Uno."}])
    err = runner("ingest", str(changed), "--origin", "real", "--source", "notes", code=1).stderr
    assert err == (
        f"Error: {changed}:2: field `id`: id `a1` is already sample {a1[:12]} (line 2 of {first}) with other text; "
        "samples are immutable: give this record an id of its own; nothing was written\n"
    )
    same = write_jsonl(tmp_path / "same.jsonl", [{"id": "b1", "text": "Bee."}, {"id": "b1", "text": "Bee!"}])
    with pytest.raises(IngestError) as caught:
        store.ingest(same, origin="real", source="notes")
    assert str(caught.value) == (
        f"{same}:2: field `id`: id `b1` is already line 1 of this input, with other text; "
        "samples are immutable: give this record an id of its own; nothing was written"
    )
    assert count(store) == 2 and store.version == 1
    # The same id in another source is another record; with --skip-bad only the conflicting row is left out.
    assert store.ingest(changed, origin="real", source="elsewhere").rows_stored == 2
    skipped = store.ingest(changed, origin="real", source="notes", skip_bad=True)
    assert (skipped.rows_stored, skipped.rows_rejected, skipped.rejects[0].line) == (1, 1, 2)


def test_records_without_ids_keep_their_repeats(store: Store, tmp_path: Path) -> None:
    rows = [{"text": "Thanks!"}, {"text": "Sure."}, {"text": "Thanks!"}, {"text": "Thanks!"}]
    path = write_jsonl(tmp_path / "plain.jsonl", rows)
    result = store.ingest(path, origin="real", source="plain")
    assert (result.rows_stored, result.rows_duplicate) == (4, 2)
    ids = set(store.sql("SELECT sample_id FROM samples")["sample_id"].to_pylist())
    assert len(ids) == 4
    # The same rows in another order are the same records: nothing new.
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", [rows[2], rows[1], rows[3], rows[0]])
    assert store.ingest(shuffled, origin="real", source="plain").rows_present == 4
    assert set(store.sql("SELECT sample_id FROM samples")["sample_id"].to_pylist()) == ids


def format1_store(tmp_path: Path) -> Path:
    """A copy of the pinned store that lineage c75dc00 (store format 1) made from fixtures/format1/*.jsonl."""
    root = tmp_path / "format1"
    shutil.copytree(FORMAT1 / "store", root)
    for sub in LAYOUT:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def segment_rows(root: Path) -> list[dict[str, object]]:
    files = sorted((root / "data" / "samples").glob("*.parquet"))
    return sorted(
        (r for f in files for r in pq.read_table(f, columns=["sample_id", "external_id", "source"]).to_pylist()),
        key=lambda r: r["sample_id"],
    )


def test_migrating_a_format1_store_keeps_every_sample(tmp_path: Path) -> None:
    root = format1_store(tmp_path)
    before = segment_rows(root)
    assert len(before) == 58  # 60 records; format 1 merged r-011 into r-010 and the second "Thanks!" into the first
    with pytest.raises(StoreFormatError, match="has format 1; run `lineage migrate` to upgrade it to 4"):
        Store(root)
    runner = Runner(root)
    assert runner("migrate").stdout == "migrated through formats [2, 3, 4]\n"
    assert runner("migrate").stdout == "store is at format 4\n"
    store = Store(root)
    assert segment_rows(root) == before
    assert store.sql("SELECT count(*) AS n, count(DISTINCT sample_id) AS ids FROM samples").to_pylist() == [
        {"n": 58, "ids": 58}
    ]
    assert store.sql("SELECT count(*) AS n FROM status WHERE filter = 'exact-dedup'")["n"][0].as_py() == 58
    assert store.sql("SELECT rows_duplicate FROM batches")["rows_duplicate"].to_pylist() == [None, None, None]

    # Re-ingesting the inputs stores no second copy of any sample; only the records format 1 had merged into an
    # earlier one come back, as samples of their own.
    real = store.ingest(FORMAT1 / "real.jsonl", origin="real", source="notes", method="human")
    plain = store.ingest(FORMAT1 / "plain.jsonl", origin="real", source="plain", method="human")
    synthetic = store.ingest(
        FORMAT1 / "synthetic.jsonl", origin="synthetic", source="para", method="paraphrase", generator="m1"
    )
    assert [(r.rows_stored, r.rows_present) for r in (real, plain, synthetic)] == [(1, 29), (1, 9), (0, 20)]
    assert store.sample("r-011")["sample"]["text"] == "I do not know."
    assert {r["sample_id"] for r in before} <= set(store.sql("SELECT sample_id FROM samples")["sample_id"].to_pylist())
    again = [
        store.ingest(FORMAT1 / n, origin="real", source=s)
        for n, s in (("real.jsonl", "notes"), ("plain.jsonl", "plain"))
    ]
    assert [(r.rows_stored, r.rows_present) for r in again] == [(0, 30), (0, 10)]
    # A format-1 sample's id still cannot name other text.
    changed = write_jsonl(tmp_path / "changed.jsonl", [{"id": "r-001", "text": "Something else entirely."}])
    with pytest.raises(IngestError, match=r"id `r-001` is already sample .* with other text"):
        store.ingest(changed, origin="real", source="notes")
    assert catalog.FORMAT_VERSION == 4


def test_a_key_given_twice_is_refused(store: Store, runner: Runner, tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a1", "text": "fine"}\n{"id": "a2", "text": "first", "text": "second"}\n', encoding="utf-8")
    err = runner("ingest", str(path), "--origin", "real", "--source", "notes", code=1).stderr
    assert err == f"Error: {path}:2: field `text`: key given twice in this record; keep one; nothing was written\n"
    assert store.version == 0
    assert store.ingest(path, origin="real", source="notes", skip_bad=True).rows_stored == 1
    # Keys lineage does not read are checked too, with or without other keys beside them.
    other = tmp_path / "other.jsonl"
    rows = [
        '{"id": "b1", "text": "extra keys, none repeated", "meta": {"k": 1, "k2": 2}, "score": 3}',
        '{"id": "b2", "text": "an unread key twice", "meta": 1, "meta": 2}',
        '{"id": "b3", "text": "a read key twice", "license": "x", "extra": 0, "license": "y"}',
        '{"id": "b4", "text": "nested repeats are the value\'s own business", "meta": {"k": 1, "k": 2}}',
    ]
    other.write_text("\n".join(rows) + "\n", encoding="utf-8")
    err = runner("ingest", str(other), "--origin", "real", "--source", "other", code=1).stderr
    assert err.startswith(f"Error: {other}:2: field `meta`: key given twice in this record; keep one (and 1 more")
    stored = store.ingest(other, origin="real", source="other", skip_bad=True)
    assert stored.rows_stored == 2 and [r.line for r in stored.rejects] == [2, 3]
    assert [r.field for r in stored.rejects] == ["meta", "license"]


def test_a_key_given_twice_in_a_chat_turn_is_refused(store: Store, runner: Runner, tmp_path: Path) -> None:
    """A turn is read to make the text: `{"role": "user", "content": "a", "content": "b"}` would be checked (dedup,
    contamination) as "a" while Python's json, reading the exported record, trains on "b". Refused like a key given
    twice at the top, naming the turn; chats whose turns repeat nothing ingest as before."""
    made = realistic.make(seed=8, n=20)
    lines = [json.dumps(r) for r in made["chat"]]
    lines[3] = json.dumps(made["chat"][3]).replace('"content": ', '"content": "a benchmark answer", "content": ', 1)
    share = [json.dumps(r) for r in made["sharegpt"][:5]]
    share[1] = share[1].replace('"value": ', '"value": "hidden", "value": ', 1)
    chat, sharegpt = tmp_path / "chat.jsonl", tmp_path / "sharegpt.jsonl"
    chat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sharegpt.write_text("\n".join(share) + "\n", encoding="utf-8")
    err = runner("ingest", str(chat), "--origin", "synthetic", "--source", "chat", "--generation", "1", code=1).stderr
    assert err == (f"Error: {chat}:4: field `text`: messages[0]: a key given twice in this turn; keep one; "
                   "nothing was written\n")
    err = runner("ingest", str(sharegpt), "--origin", "synthetic", "--source", "sg", "--generation", "1", code=1).stderr
    assert err == (f"Error: {sharegpt}:2: field `text`: conversations[0]: a key given twice in this turn; "
                   "keep one; nothing was written\n")
    assert store.version == 0
    stored = store.ingest(chat, origin="synthetic", source="chat", generation=1, skip_bad=True)
    assert stored.rows_stored == 19 and [(r.line, r.field) for r in stored.rejects] == [(4, "text")]


# -- the row index: ids and texts already stored, found without reading every segment --------------------------


def _chat(tag: str, n: int, *, answer: str | None = None) -> list[dict[str, object]]:
    return [{"id": f"{tag}-{j}", "messages": [
        {"role": "user", "content": f"Question {tag} {j}?"},
        {"role": "assistant", "content": answer or f"Answer {tag} {j}."}]} for j in range(n)]


def test_the_row_index_finds_what_sql_finds(store: Store) -> None:
    """`lookup_keys` through the segments' row indexes and by SQL over `existing` give the same rows, for hits and
    misses, by sample id, content hash, external id (also non-ASCII, absent, shared by two sources) and several at
    once, in segments ingested, compacted and written by this same command."""
    import duckdb

    from lineage.ingest.lookup import Segments, lookup_keys, stored_hashes

    for k in range(4):
        store.ingest(_chat(f"s{k}", 300, answer="Yes." if k == 1 else None), origin="synthetic", source="p",
                     generation=1)
    store.ingest([{"text": f"no id {j}"} for j in range(30)] + [{"id": "ünï-1", "text": "accents"}],
                 origin="real", source="q")
    store.compact()
    store.ingest(_chat("s0", 50), origin="real", source="other")  # the same external ids in another source
    with store.catalog() as cat:
        paths = catalog.segment_paths(cat, "samples", None)
    # Ordered by id (a hash): spread over every segment, and the same rows each run.
    stored = store.sql("SELECT sample_id, content_hash, external_id FROM samples ORDER BY sample_id").to_pylist()
    ids = [r["sample_id"] for r in stored[:40]] + ["f" * 32, "0" * 32, "not-an-id"]
    hashes = [r["content_hash"] for r in stored[-40:]] + ["e" * 64, stored[0]["content_hash"][:16] + "0" * 48]
    external = ["s0-1", "s0-7", "s3-299", "ünï-1", "s9-1", "", "s0-1 "]
    con = duckdb.connect()
    catalog.segment_view(con, "existing", store.data, "samples", paths)
    cols = "sample_id, content_hash, external_id, input_row"
    cases = [{"sample_id": ids}, {"content_hash": hashes}, {"external_id": external},
             {"sample_id": ids[:5], "external_id": external, "content_hash": hashes[:3]}, {"sample_id": []}]
    parents = "source, external_id, generation, sample_id"  # what a parent lookup reads: ids from the index
    for keys, columns in [(k, cols) for k in cases] + [(k, parents) for k in cases]:
        # The last segment as if this command had written it: read by SQL beside the indexed ones.
        for segments in (Segments(store.data, paths, []), Segments(store.data, paths[:-1], paths[-1:])):
            lookup_keys(con, "by_index", keys, columns=columns, segments=segments)
            lookup_keys(con, "by_sql", keys, columns=columns)
            got = con.execute("SELECT DISTINCT * FROM by_index ORDER BY ALL").fetchall()
            assert got == con.execute("SELECT DISTINCT * FROM by_sql ORDER BY ALL").fetchall()
            assert len(got) >= min(sum(len(v) for v in keys.values()), 4)  # found what is stored
    for segments in (Segments(store.data, paths, []), Segments(store.data, paths[:-1], paths[-1:])):
        con.execute("CREATE OR REPLACE TABLE hashes AS SELECT unnest($h::VARCHAR[]) AS h", {"h": hashes})
        stored_hashes(con, "held", keys_sql="SELECT h FROM hashes", segments=segments)
        lookup_keys(con, "by_sql", {"content_hash": hashes}, columns="content_hash")
        held = sorted(r[0] for r in con.execute("SELECT DISTINCT content_hash FROM held").fetchall())
        # The made-up hash sharing a stored one's first 16 digits counts as held: the documented trade-off (a sha256
        # of real text matches another's 64 bits once in 2^64 pairs), for a count that needs no row read.
        fake = hashes[-1]
        assert fake in held and held.count(fake) == 1
        assert [h for h in held if h != fake] == sorted(
            r[0] for r in con.execute("SELECT DISTINCT content_hash FROM by_sql").fetchall())
        assert len(held) == len(set(hashes)) - 1  # every listed hash but the absent "e"*64 (two rows may share one)
    from lineage.core.edgeindex import ROWS_FOLDER, index_rel

    assert all(Path(store.data.path(index_rel(ROWS_FOLDER, rel))).is_file() for rel in paths)  # the index served


def test_ingest_counts_are_the_same_with_an_index_missing_or_from_an_older_version(store: Store) -> None:
    """An ingest's present and duplicate counts come from the row indexes; a deleted index, or one written before it
    held content hashes, is built again on first use and gives the same counts."""
    import pyarrow as pa

    first = store.ingest(_chat("a", 200), origin="real", source="p")
    assert (first.rows_stored, first.rows_present) == (200, 0)
    rows_dir = store.root / "data" / "features" / "rows"
    copies = [dict(r, id=f"b-{j}") for j, r in enumerate(_chat("a", 50))]
    again = _chat("a", 200)[100:] + copies  # 100 stored, 50 new with a stored text
    expected = (50, 100, 50)
    result = store.ingest(again, origin="real", source="p")
    assert (result.rows_stored, result.rows_present, result.rows_duplicate) == expected
    for damage in ("delete", "old"):
        for index in rows_dir.glob("*.arrow"):
            if damage == "delete":
                index.unlink()
            else:  # ids only, as lineage wrote them before the content hashes joined
                with pa.OSFile(str(index)) as source:
                    old = pa.ipc.open_file(source).read_all().select(["key", "row"])
                with pa.OSFile(str(index) + ".old", "wb") as sink, pa.ipc.new_file(sink, old.schema) as writer:
                    writer.write_table(old)
                Path(str(index) + ".old").replace(index)
        result = store.ingest(again, origin="real", source="p")
        assert (result.rows_stored, result.rows_present, result.rows_duplicate) == (0, 150, 0)
        tagged = [dict(r, id=f"{damage}-{r['id']}") for r in again]  # new ids, stored texts: duplicates
        result = store.ingest(tagged, origin="real", source="p")
        assert (result.rows_stored, result.rows_present, result.rows_duplicate) == (150, 0, 150)
        indexes = sorted(rows_dir.glob("*.arrow"))
        names = [set(pa.ipc.open_file(pa.memory_map(str(i))).schema.names) for i in indexes]
        assert names and all({"content_hash", "external_id"} <= n for n in names)


def test_content_hash_prefixes_decode_the_first_sixteen_hex_digits() -> None:
    import hashlib

    import pyarrow as pa

    from lineage.core.edgeindex import hash_prefixes

    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)] + ["f" * 64, "0" * 64]
    assert hash_prefixes(pa.array(hashes)).tolist() == [int(h[:16], 16) for h in hashes]


def test_external_id_hashes_are_the_first_8_bytes_of_their_sha256() -> None:
    import hashlib

    import pyarrow as pa

    from lineage.core.edgeindex import external_hashes

    rng = random.Random(7)
    texts = ["", "a", "doc-000123", "ünï-1", "x" * 300, None] + [
        "".join(rng.choice("abcé中 -:/0123456789") for _ in range(rng.randint(1, 40))) for _ in range(200)]
    expected = [0 if t is None else int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big") for t in texts]
    assert external_hashes(pa.array(texts, pa.string())).tolist() == expected
