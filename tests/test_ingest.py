"""Ingest: formats, provenance, ids, parents and generations, re-ingest, batches."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, count

from lineage.errors import IngestError, LineageError
from lineage.schemas import SAMPLES
from lineage.store import Store

REAL = FIXTURES / "real.jsonl"


def real(store: Store, path: Path = REAL, **kw: object) -> object:
    return store.ingest(path, origin="real", source="wordnet", method="human", **kw)


def test_jsonl_rows_keep_their_record_verbatim(store: Store) -> None:
    result = real(store)
    assert (result.rows_read, result.rows_stored, result.rows_present, result.version) == (600, 600, 0, 1)
    lines = REAL.read_text(encoding="utf-8").splitlines()
    records = store.sql("SELECT record FROM samples ORDER BY input_row")["record"].to_pylist()
    assert records == lines
    first = json.loads(lines[0])
    row = store.sample(first["id"])["sample"]
    assert (row["external_id"], row["text"], row["origin"], row["generation"]) == (
        first["id"],
        first["text"],
        "real",
        0,
    )
    assert (row["generator"], row["parent_ids"], row["input_row"]) == (None, [], 1)


def test_segment_schema_is_the_contract(small_store: Store) -> None:
    for path in sorted((small_store.root / "data" / "samples").glob("*.parquet")):
        assert pq.read_schema(path).remove_metadata().equals(SAMPLES.remove_metadata()), path
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_reingest_stores_nothing_new_and_says_so(store: Store) -> None:
    real(store)
    again = real(store)
    assert (again.rows_stored, again.rows_present) == (0, 600)
    assert again.summary().startswith("0 new, 600 already present")
    assert count(store) == 600
    assert len(list((store.root / "data" / "samples").glob("*.parquet"))) == 1
    batches = store.sql("SELECT rows_stored, rows_present FROM batches ORDER BY version").to_pylist()
    assert batches == [{"rows_stored": 600, "rows_present": 0}, {"rows_stored": 0, "rows_present": 600}]


def test_same_text_from_another_source_shares_content_hash_not_id(store: Store) -> None:
    real(store)
    store.ingest(REAL, origin="real", source="mirror")
    row = store.sql(
        "SELECT count(DISTINCT sample_id) AS ids, count(DISTINCT content_hash) AS hashes FROM samples"
    ).to_pylist()[0]
    assert row == {"ids": 1200, "hashes": 600}


def test_normalisation_makes_whitespace_and_nfc_variants_the_same_sample(store: Store) -> None:
    store.ingest([{"text": "caf\u00e9  au\tlait"}], origin="real", source="s")
    again = store.ingest([{"text": " cafe\u0301 au lait\n"}], origin="real", source="s")
    assert (again.rows_stored, again.rows_present) == (0, 1)


@pytest.mark.parametrize("name", ["real.jsonl.gz", "real.parquet", "real.csv"])
def test_other_formats(store: Store, name: str) -> None:
    result = real(store, FIXTURES / name)
    expected = 600 if name.endswith(".gz") else 50
    assert result.rows_stored == expected
    row = store.sample(_first_id())["sample"]
    assert row["text"] == json.loads(REAL.read_text(encoding="utf-8").splitlines()[0])["text"]
    assert store.sql("SELECT input_sha256 FROM batches")["input_sha256"][0].as_py()


def _first_id() -> str:
    return json.loads(REAL.read_text(encoding="utf-8").splitlines()[0])["id"]


def test_csv_rows_count_lines_after_the_header(store: Store) -> None:
    real(store, FIXTURES / "real.csv")
    assert store.sql("SELECT min(input_row) AS lo, max(input_row) AS hi FROM samples").to_pylist() == [
        {"lo": 2, "hi": 51}
    ]


def test_arrow_polars_and_dicts(store: Store) -> None:
    table = pa.table({"id": ["a", "b"], "text": ["first text here", "second text here"], "score": [1.5, 2.0]})
    assert store.ingest(table, origin="real", source="arrow").rows_stored == 2
    frame = pl.DataFrame({"id": ["c"], "text": ["third text here"]})
    assert store.ingest(frame, origin="real", source="polars").rows_stored == 1
    dicts = ({"id": f"d{i}", "text": f"dict text {i}"} for i in range(3))
    assert store.ingest(dicts, origin="real", source="python").rows_stored == 3
    record = store.sample("a")["sample"]["record"]
    assert json.loads(record) == {"id": "a", "text": "first text here", "score": 1.5}
    uris = store.sql("SELECT DISTINCT input_uri FROM samples ORDER BY 1")["input_uri"].to_pylist()
    assert uris == ["<arrow>", "<polars>", "<python>"]


def test_chat_records_render_messages(store: Store) -> None:
    store.ingest(FIXTURES / "chat.jsonl", origin="synthetic", source="chat", generation=1)
    first = json.loads((FIXTURES / "chat.jsonl").read_text(encoding="utf-8").splitlines()[0])
    text = store.sample(first["id"])["sample"]["text"]
    assert text == "\n".join(f"{m['role']}: {m['content']}" for m in first["messages"])


def test_template_builds_text_from_fields(store: Store) -> None:
    store.ingest(FIXTURES / "qa.jsonl", origin="real", source="qa", template="{prompt}\n\n{response}")
    first = json.loads((FIXTURES / "qa.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert store.sample(first["id"])["sample"]["text"] == f"{first['prompt']}\n\n{first['response']}"


def test_template_missing_field_is_named(store: Store) -> None:
    with pytest.raises(IngestError, match=r"qa.jsonl:1: field `text`: missing `answer` \(needed by template=\)"):
        store.ingest(FIXTURES / "qa.jsonl", origin="real", source="qa", template="{prompt} {answer}")


def test_parents_give_generations_across_files(small_store: Store) -> None:
    rows = small_store.sql("SELECT source, min(generation) lo, max(generation) hi FROM samples GROUP BY ALL ORDER BY 1")
    assert rows.to_pylist() == [
        {"source": "syn-v1", "lo": 1, "hi": 1},
        {"source": "syn-v2", "lo": 2, "hi": 2},
        {"source": "syn-v3", "lo": 3, "hi": 3},
        {"source": "wordnet", "lo": 0, "hi": 0},
    ]
    orphans = small_store.sql("SELECT count(*) n FROM lineage_edges e ANTI JOIN samples s ON s.sample_id = e.parent_id")
    assert orphans["n"][0].as_py() == 0


def test_parents_within_one_file_and_per_row_provenance(store: Store) -> None:
    store.ingest(FIXTURES / "mixed.jsonl")
    records = [json.loads(line) for line in (FIXTURES / "mixed.jsonl").read_text(encoding="utf-8").splitlines()]
    got = {r["external_id"]: r for r in store.sql("SELECT * FROM samples").to_pylist()}
    assert len(got) == len(records)
    for rec in records:
        row = got[rec["id"]]
        assert (row["origin"], row["source"], row["generation"], row["tags"]) == (
            rec["origin"],
            rec["source"],
            rec["generation"],
            rec["tags"],
        )
        assert [got_id for got_id in row["parent_ids"]] == [got[p]["sample_id"] for p in rec["parent_ids"]]


def test_parent_by_sample_id_and_by_source_prefix(store: Store) -> None:
    real(store)
    store.ingest(REAL, origin="real", source="mirror")
    parent = store.sql("SELECT sample_id, external_id FROM samples WHERE source = 'wordnet' LIMIT 1").to_pylist()[0]
    ext = parent["external_id"]
    with pytest.raises(IngestError, match=rf"parent `{ext}` is ambiguous: an external id in sources mirror, wordnet"):
        store.ingest([{"text": "child one", "parent_ids": ext}], origin="synthetic", source="x")
    store.ingest([{"text": "child two", "parent_ids": [f"wordnet:{ext}"]}], origin="synthetic", source="x")
    store.ingest([{"text": "child three", "parent_ids": [parent["sample_id"]]}], origin="synthetic", source="x")
    rows = store.sql("SELECT parent_ids, generation FROM samples WHERE source = 'x'").to_pylist()
    assert rows == [{"parent_ids": [parent["sample_id"]], "generation": 1}] * 2


def test_generation_contradicting_parents_is_an_error(store: Store) -> None:
    real(store)
    with pytest.raises(IngestError, match=r"generation 3 contradicts its parents \(1 \+ max parent generation = 1\)"):
        store.ingest([{"text": "c", "parent_ids": _first_id(), "generation": 3}], origin="synthetic", source="x")


def test_synthetic_without_parents_or_generation_says_how_to_fix(store: Store) -> None:
    with pytest.raises(IngestError, match="neither parents nor a generation: pass generation=N or parent_field=FIELD"):
        store.ingest([{"text": "orphan"}], origin="synthetic", source="x")


def test_unknown_parents_refused_unless_allowed(store: Store) -> None:
    bad = FIXTURES / "bad" / "missing-parent.jsonl"
    message = "missing-parent.jsonl:2: field `parent_id`: unknown parent `does-not-exist`"
    with pytest.raises(IngestError, match=re.escape(message)):
        store.ingest(bad, parent_field="parent_id")
    result = store.ingest(bad, parent_field="parent_id", allow_missing_parents=True)
    assert result.rows_stored == 6
    assert store.doctor().missing_parents[0][1] == "does-not-exist"


def test_parent_cycle_in_one_file_is_an_error(store: Store) -> None:
    rows = [{"id": "a", "text": "alpha", "parent_ids": ["b"]}, {"id": "b", "text": "beta", "parent_ids": ["a"]}]
    with pytest.raises(IngestError, match="parent cycle"):
        store.ingest(rows, origin="synthetic", source="x")


def test_skip_bad_cascades_to_children_of_rejected_rows(store: Store) -> None:
    rows = [
        {"id": "a", "text": "alpha", "generation": "one"},
        {"id": "b", "text": "beta", "parent_ids": ["a"]},
        {"id": "c", "text": "gamma", "generation": 1},
    ]
    result = store.ingest(rows, origin="synthetic", source="x", skip_bad=True)
    assert (result.rows_stored, result.rows_rejected) == (1, 2)
    rejects = store.sql("SELECT rejects FROM batches")["rejects"][0].as_py()
    assert rejects == [
        {"line": 1, "field": "generation", "reason": "expected an integer, got string"},
        {"line": 2, "field": "parent_ids", "reason": "unknown parent `a`"},
    ]


def test_flags_are_validated_before_reading(store: Store) -> None:
    with pytest.raises(LineageError, match="real data has no generator"):
        store.ingest(REAL, origin="real", source="s", generator="gpt")
    with pytest.raises(LineageError, match=r"^generation=-1: must be between 0 and 1,000,000$"):
        store.ingest(REAL, origin="synthetic", source="s", generation=-1)


def test_gzip_with_crlf_lines(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "one line"}\r\n\r\n{"text": "two line"}\r\n'))
    store.ingest(path, origin="real", source="s")
    assert store.sql("SELECT record FROM samples ORDER BY input_row")["record"].to_pylist() == [
        '{"text": "one line"}',
        '{"text": "two line"}',
    ]
    assert store.sql("SELECT input_row FROM samples ORDER BY 1")["input_row"].to_pylist() == [1, 3]


def test_last_line_without_newline_and_blocks_split_mid_line(store: Store, tmp_path: Path, monkeypatch) -> None:
    from lineage.ingest import readers

    monkeypatch.setattr(readers, "BLOCK_BYTES", 100)
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"sentence number {i} " * 5}) for i in range(50)), encoding="utf-8")
    assert store.ingest(path, origin="real", source="s").rows_stored == 50
    assert store.sql("SELECT max(input_row) m FROM samples")["m"][0].as_py() == 50


def test_blank_lines_are_skipped_and_line_numbers_stay_exact(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "blanks.jsonl"
    lines = ['{"text": "a"}', "", "   ", "\t\r", "\u3000", ' {"text": "b"}', '{"text": "c"}\r']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = store.ingest(path, origin="real", source="s")
    assert (result.rows_read, result.rows_stored) == (3, 3)
    rows = store.sql("SELECT input_row, record FROM samples ORDER BY input_row").to_pylist()
    assert [(r["input_row"], r["record"]) for r in rows] == [
        (1, '{"text": "a"}'),
        (6, ' {"text": "b"}'),
        (7, '{"text": "c"}'),
    ]


def test_draft_is_the_segment_unless_resolution_changes_it(store: Store, tmp_path: Path, monkeypatch) -> None:
    from lineage.ingest import segment

    rewrites: list[int] = []
    rewrite = segment._rewrite
    monkeypatch.setattr(segment, "_rewrite", lambda *args: rewrites.append(1) or rewrite(*args))
    real(store)
    assert rewrites == []
    path = tmp_path / "more.jsonl"
    first = REAL.read_text(encoding="utf-8").splitlines()[0]
    new = [json.dumps({"id": f"n{i}", "text": text}) for i, text in enumerate(["new one", "new two"])]
    path.write_text("\n".join([first, *new, new[0]]) + "\n", encoding="utf-8")
    result = real(store, path)  # line 1 is stored already and line 4 repeats line 2: the draft is rewritten
    assert rewrites == [1]
    assert (result.rows_stored, result.rows_present) == (2, 2)
    rows = store.sql(
        "SELECT external_id, input_row FROM samples WHERE batch_id = ? ORDER BY input_row", params=[result.batch_id]
    ).to_pylist()
    assert rows == [{"external_id": "n0", "input_row": 2}, {"external_id": "n1", "input_row": 3}]


def test_rewritten_segment_equals_the_draft_it_replaces(tmp_path: Path, monkeypatch) -> None:
    from lineage.ingest import segment

    kept = Store.init(tmp_path / "kept")
    real(kept)
    monkeypatch.setattr(segment, "CHANGED_SQL", "SELECT 1")  # as if resolution had changed a row
    rewritten = Store.init(tmp_path / "rewritten")
    real(rewritten)
    query = "SELECT * EXCLUDE (batch_id, ingested_at) FROM samples ORDER BY input_row"
    assert kept.sql(query).equals(rewritten.sql(query))
    for store in (kept, rewritten):
        (path,) = (store.root / "data" / "samples").glob("*.parquet")
        assert pq.read_schema(path).remove_metadata().equals(SAMPLES.remove_metadata())


@pytest.mark.parametrize("rewritten", [False, True])
def test_row_groups_are_bounded_in_bytes_and_rows_stay_in_order(
    store: Store, tmp_path: Path, monkeypatch, rewritten: bool
) -> None:
    from lineage.ingest import segment, staging

    monkeypatch.setattr(staging, "BATCH_BYTES", 1 << 20)  # 2,048 rows of these records
    if rewritten:
        monkeypatch.setattr(segment, "CHANGED_SQL", "SELECT 1")
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"text": f"record {i} " + "x" * 300}) + "\n" for i in range(5000)))
    assert store.ingest(path, origin="real", source="s").rows_stored == 5000
    (segment_path,) = (store.root / "data" / "samples").glob("*.parquet")
    meta = pq.ParquetFile(segment_path).metadata
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 2048
    rows = pq.read_table(segment_path, columns=["input_row"])["input_row"].to_pylist()
    assert rows == list(range(1, 5001))


def test_store_ingest_names_every_option() -> None:
    """`Store.ingest`'s typed keywords (`IngestFields`) are the fields of `IngestOptions`, no more, no fewer."""
    from dataclasses import fields

    from lineage.ingest.options import IngestFields, IngestOptions

    assert set(IngestFields.__annotations__) == {f.name for f in fields(IngestOptions)}
