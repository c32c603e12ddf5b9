"""Bad input: one line naming file, line and field; exit 1; nothing written. --skip-bad keeps the good rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, Runner, count

from lineage.store import Store

BAD = FIXTURES / "bad"

CASES = [
    ("malformed.jsonl", "malformed.jsonl:3: field `record`: malformed JSON; nothing was written"),
    (
        "wrong-type.jsonl",
        "wrong-type.jsonl:4: field `generation`: expected an integer, got string; nothing was written",
    ),
    (
        "unknown-origin.jsonl",
        "unknown-origin.jsonl:2: field `origin`: must be real or synthetic, got `artificial`; nothing was written",
    ),
    (
        "empty-text.jsonl",
        "empty-text.jsonl:5: field `text`: empty after trimming whitespace (and 1 more rejected row; "
        "--skip-bad stores the good ones); nothing was written",
    ),
    (
        "text-not-string.jsonl",
        "text-not-string.jsonl:2: field `text`: expected a string, got integer; nothing was written",
    ),
    ("non-utf8.jsonl", "non-utf8.jsonl:3: field `record`: not UTF-8: byte 0xe9 at offset 94; nothing was written"),
    ("not-object.jsonl", "not-object.jsonl:2: field `record`: expected a JSON object, got array; nothing was written"),
    (
        "missing-parent.jsonl",
        "missing-parent.jsonl:2: field `parent_id`: unknown parent `does-not-exist`; nothing was written",
    ),
]


def assert_untouched(store: Store) -> None:
    assert store.version == 0
    assert not list((store.root / "data" / "samples").iterdir())
    assert not list((store.root / "tmp").iterdir())
    assert store.doctor().orphans == []


@pytest.mark.parametrize(("name", "message"), CASES)
def test_bad_file_is_refused_with_one_line(runner: Runner, store: Store, name: str, message: str) -> None:
    result = runner(
        "ingest", str(BAD / name), "--origin", "real", "--source", "s", "--parent-field", "parent_id", code=1
    )
    assert result.stderr == f"Error: {BAD / name}:{message.split(':', 1)[1]}\n"
    assert result.stdout == ""
    assert_untouched(store)


@pytest.mark.parametrize(
    ("name", "rejected"),
    [
        ("malformed.jsonl", [3]),
        ("wrong-type.jsonl", [4]),
        ("unknown-origin.jsonl", [2]),
        ("empty-text.jsonl", [5, 6]),
        ("text-not-string.jsonl", [2]),
        ("non-utf8.jsonl", [3]),
        ("not-object.jsonl", [2]),
    ],
)
def test_skip_bad_stores_the_rest_and_records_each_rejected_line(store: Store, name: str, rejected: list[int]) -> None:
    lines = (BAD / name).read_bytes().splitlines()
    result = store.ingest(BAD / name, origin="real", source="s", skip_bad=True)
    assert (result.rows_stored, result.rows_rejected) == (len(lines) - len(rejected), len(rejected))
    assert [r.line for r in result.rejects] == rejected
    recorded = store.sql("SELECT rejects FROM batches")["rejects"][0].as_py()
    assert [r["line"] for r in recorded] == rejected
    assert count(store) == len(lines) - len(rejected)


def test_empty_file(runner: Runner, store: Store) -> None:
    result = runner("ingest", str(BAD / "empty.jsonl"), "--origin", "real", "--source", "s", code=1)
    assert result.stderr == f"Error: `{BAD / 'empty.jsonl'}`: no records (the input is empty)\n"
    assert_untouched(store)


def test_huge_field_is_rejected_by_the_record_limit(runner: Runner, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"text": "a fine first line"}) + "\n")
        f.write('{"text": "' + "word " * 10_000_000 + '"}\n')  # a 50 MB field
    result = runner("ingest", str(path), "--origin", "real", "--source", "s", code=1)
    assert result.stderr == (
        f"Error: {path}:2: field `record`: record is 50000012 bytes, over the limit of 16777216 "
        "(--max-record-bytes); nothing was written\n"
    )
    assert_untouched(store)
    runner(
        "ingest",
        str(path),
        "--origin",
        "real",
        "--source",
        "s",
        "--max-record-bytes",
        "60000000",
        "--memory-limit",
        "3GB",
    )
    assert store.sql("SELECT max(length(text)) AS n FROM samples")["n"][0].as_py() == 49_999_999


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "t", "generation": 10**30}, "field `generation`: expected an integer, got number"),
        ({"text": "t", "generation": 2_000_000}, "field `generation`: must be between 0 and 1,000,000, got 2000000"),
        ({"text": "t", "generation": -1}, "field `generation`: must be between 0 and 1,000,000, got -1"),
        ({"text": "t", "generation": 1.5}, "field `generation`: expected an integer, got number"),
        ({"text": "t", "tags": "x", "generation": 1, "source": 7}, "field `source`: expected a string, got integer"),
        ({"text": "t", "generation": 1, "tags": [1, {"a": 1}]}, "field `tags`: expected a string or a list of strings"),
        ({"text": "t", "generation": 1, "gen_params": [1]}, "field `gen_params`: expected an object, got array"),
        ({"text": "t", "id": {"x": 1}, "generation": 1}, "field `id`: expected a string or an integer, got object"),
        ({"text": "t", "origin": "real", "generator": "gpt"}, "field `generator`: real samples have no generator"),
        ({"text": "t", "generation": 0}, "field `generation`: synthetic samples are generation 1 or more, got 0"),
        (
            {"body": "t", "generation": 1},
            "field `text`: missing (no `text`, `messages`, `conversations` or `instruction` and `output`; "
            "set --text-field or --template)",
        ),
    ],
)
def test_wrong_types_and_values(runner: Runner, store: Store, tmp_path: Path, record: dict, message: str) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result = runner("ingest", str(path), "--origin", "synthetic", "--source", "s", code=1)
    assert result.stderr.startswith(f"Error: {path}:1: {message}")
    assert result.stderr.count("\n") == 1
    assert_untouched(store)


def test_missing_origin_and_source(runner: Runner, store: Store) -> None:
    result = runner("ingest", str(FIXTURES / "real.jsonl"), code=1)
    assert result.stderr.startswith(
        f"Error: {FIXTURES / 'real.jsonl'}:1: field `origin`: missing: pass --origin real|synthetic or give an "
        "`origin` column (and 599 more rejected rows"
    )


def test_unknown_file_and_format(runner: Runner, tmp_path: Path) -> None:
    result = runner("ingest", str(tmp_path / "nope.jsonl"), "--origin", "real", "--source", "s", code=1)
    assert result.stderr == f"Error: `{tmp_path / 'nope.jsonl'}`: no such file\n"
    (tmp_path / "data.txt").write_text("hello\n", encoding="utf-8")
    result = runner("ingest", str(tmp_path / "data.txt"), "--origin", "real", "--source", "s", code=1)
    assert "cannot tell the format from the name; pass --format jsonl|json|parquet|csv|arrow" in result.stderr


def test_corrupt_parquet_is_one_line(runner: Runner, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    result = runner("ingest", str(path), "--origin", "real", "--source", "s", code=1)
    assert result.stderr.startswith(f"Error: `{path}`: cannot read as parquet:")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(("header", "twice"), [("id,text,text", "text"), ("id,Text,source,TEXT", "TEXT")])
def test_a_csv_column_named_twice_is_refused(
    runner: Runner, store: Store, tmp_path: Path, header: str, twice: str
) -> None:
    """DuckDB renames the second column (`text_1`) and reads on: which one is the text was left to chance."""
    names = header.split(",")
    rows = [",".join(f"{name.lower()} {i}" for name in names) for i in range(3)]
    path = tmp_path / "twice.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    result = runner("ingest", str(path), "--origin", "real", "--source", "s", code=1)
    assert result.stderr == f"Error: {path}:1: field `{twice}`: named twice in the header; rename or drop one\n"
    assert_untouched(store)
    fine = tmp_path / "fine.csv"  # the same rows under distinct names are stored
    distinct = [*(n.lower() for n in names[:-1]), "note"]
    fine.write_text("\n".join([",".join(distinct), *rows]) + "\n", encoding="utf-8")
    assert "3 new" in runner("ingest", str(fine), "--origin", "real", "--source", "s").stdout
