"""`lineage sql` is read-only by construction, and the views and macros answer provenance questions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import Runner

from lineage.errors import QueryError
from lineage.store import Store

REFUSED = [
    ("INSERT INTO samples SELECT * FROM samples", "INSERT statements are refused"),
    ("UPDATE samples SET text = 'x'", "UPDATE statements are refused"),
    ("DELETE FROM samples", "DELETE statements are refused"),
    ("DROP VIEW samples", "DROP statements are refused"),
    ("CREATE TABLE t AS SELECT 1", "CREATE statements are refused"),
    ("COPY (SELECT 1) TO 'out.csv'", "COPY statements are refused"),
    ("EXPORT DATABASE 'dump'", "EXPORT statements are refused"),
    ("ATTACH 'other.duckdb' AS o", "ATTACH statements are refused"),
    ("SET threads = 1", "SET statements are refused"),
    ("PRAGMA enable_profiling", "PRAGMA statements are refused"),
    ("CHECKPOINT", "statements are refused"),
    ("INSTALL httpfs", "statements are refused"),
    ("SELECT 1; DELETE FROM samples", "give exactly one SQL statement, got 2"),
]


@pytest.mark.parametrize(("query", "message"), REFUSED)
def test_writes_are_refused(small_store: Store, query: str, message: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = small_store.doctor()
    with pytest.raises(QueryError, match=message):
        small_store.sql(query)
    assert small_store.doctor().as_dict() == before.as_dict()
    assert list(tmp_path.iterdir()) == [small_store.root]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM (SELECT 1) t, read_text('/etc/hostname')",
        "SELECT * FROM query('DELETE FROM samples')",
    ],
)
def test_file_access_outside_the_store_and_nested_writes_fail(small_store: Store, query: str) -> None:
    with pytest.raises(QueryError):
        small_store.sql(query)
    assert small_store.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 1125


def test_catalog_tables_cannot_be_written_even_by_name(small_store: Store) -> None:
    with pytest.raises(QueryError, match="DELETE statements are refused"):
        small_store.sql("DELETE FROM _lineage.segments")


def test_cli_refusal_is_one_line(runner: Runner, small_store: Store) -> None:
    result = runner("sql", "DELETE FROM samples", code=1)
    assert result.stderr == "Error: `lineage sql` is read-only: DELETE statements are refused\n"


def test_sql_error_is_one_line(runner: Runner, small_store: Store) -> None:
    result = runner("sql", "SELECT nope FROM samples", code=1)
    assert result.stderr.startswith('Error: Binder Error: Referenced column "nope" not found')
    assert result.stderr.count("\n") == 1


def test_output_formats(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    query = "SELECT origin, count(*) AS n FROM samples GROUP BY ALL ORDER BY ALL"
    assert json.loads(runner("sql", query, "--format", "json").stdout) == [
        {"origin": "real", "n": 600},
        {"origin": "synthetic", "n": 525},
    ]
    assert runner("sql", query, "--format", "csv").stdout == "origin,n\nreal,600\nsynthetic,525\n"
    out = tmp_path / "out.parquet"
    runner("sql", query, "--format", "parquet", "--output", str(out))
    assert pq.read_table(out).to_pylist() == [{"origin": "real", "n": 600}, {"origin": "synthetic", "n": 525}]
    table = runner("sql", query).stdout
    assert "synthetic" in table and "525" in table


def test_ancestors_descendants_and_edges(small_store: Store) -> None:
    g3 = small_store.sample("syn3-00001")["sample"]
    chain = small_store.sql(
        "SELECT s.generation, a.depth FROM ancestors(?) a JOIN samples s USING (sample_id) ORDER BY depth",
        params=[g3["sample_id"]],
    ).to_pylist()
    assert chain == [{"generation": 2, "depth": 1}, {"generation": 1, "depth": 2}, {"generation": 0, "depth": 3}]
    root = small_store.ancestors(g3["sample_id"]).to_pylist()[-1]["sample_id"]
    below = small_store.descendants(root).to_pylist()
    assert g3["sample_id"] in {row["sample_id"] for row in below}
    assert max(row["depth"] for row in below) == 3
    edges = small_store.sql("SELECT count(*) AS n FROM lineage_edges")["n"][0].as_py()
    assert edges == 525


def test_polars_variant(small_store: Store) -> None:
    frame = small_store.sql_polars("SELECT generation, count(*) AS n FROM samples GROUP BY ALL ORDER BY ALL")
    assert frame.to_dicts() == [
        {"generation": 0, "n": 600},
        {"generation": 1, "n": 300},
        {"generation": 2, "n": 150},
        {"generation": 3, "n": 75},
    ]


def _settings(run: Callable[..., pa.Table]) -> dict[str, object]:
    query = ("SELECT current_setting('lock_configuration') AS locked, "
             "current_setting('enable_external_access') AS ext, current_setting('memory_limit') AS mem")
    return run(query).to_pylist()[0]


def test_user_and_internal_queries_keep_their_own_guards_in_any_order(small_store: Store, tmp_path: Path) -> None:
    """User SQL runs locked down on an instance it keeps; lineage's own queries (`query`) run unlocked on another.
    Alternating them on one Store object, each stays what it is, and a commit is seen by both."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    escapes = [
        f"SELECT * FROM read_text('{outside}')",
        f"SELECT * FROM read_blob('{small_store.root}/lineage.duckdb')",
        "SELECT * FROM query('DELETE FROM samples')",
    ]
    refused = ["SET lock_configuration = false", "RESET enable_external_access", f"ATTACH '{outside}' AS o",
               f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'"]
    counts = "SELECT count(*) AS n FROM samples"
    for round_ in range(2):  # the second round: the user's instance is reused, the internal one was used between
        assert _settings(small_store.query)["locked"] is False
        assert small_store.query(counts)["n"][0].as_py() == 1125
        assert _settings(small_store.sql) == {"locked": True, "ext": False, "mem": _settings(small_store.sql)["mem"]}
        for query in escapes + refused:
            with pytest.raises(QueryError):
                small_store.sql(query)
        assert small_store.sql(counts)["n"][0].as_py() == 1125, round_
        assert _settings(small_store.query)["locked"] is False  # after user queries: still unlocked
    limited = small_store.sql("SELECT current_setting('memory_limit') AS m", memory_limit="300MB")["m"][0].as_py()
    assert limited.startswith(("286", "300"))  # DuckDB shows the limit in MiB
    new = [{"text": f"a sentence ingested between two queries, number {i}"} for i in range(5)]
    small_store.ingest(new, origin="real", source="late", method="human")  # a new version
    assert small_store.sql(counts)["n"][0].as_py() == small_store.query(counts)["n"][0].as_py() == 1130
    assert _settings(small_store.sql)["locked"] is True and _settings(small_store.query)["locked"] is False
    for query in escapes:
        with pytest.raises(QueryError):
            small_store.sql(query)
    assert not (tmp_path / "x.csv").exists() and outside.read_text() == "secret"


@pytest.mark.parametrize("fmt", ["table", "tsv", "csv", "json", "jsonl", "parquet"])
def test_a_join_whose_columns_share_a_name_keeps_every_value(runner: Runner, small_store: Store, fmt: str,
                                                            tmp_path: Path) -> None:
    """`SELECT a.decision, b.decision …` comparing two runs: both columns, each under a name of its own (DuckDB's
    `decision_1`), never a row one value short under the header or a JSON object that kept only the last."""
    query = ("SELECT s.external_id, s.generation, p.generation, p.external_id FROM samples s "
             "JOIN samples p ON p.sample_id = s.parent_ids[1] WHERE s.external_id = 'syn2-00001'")
    out = tmp_path / "out.parquet"
    text = runner("sql", query, "--format", fmt, *(["--output", str(out)] if fmt == "parquet" else [])).stdout
    expected = {"external_id": "syn2-00001", "generation": 2, "generation_1": 1, "external_id_1": "syn1-00292"}
    if fmt == "parquet":
        assert pq.read_table(out).to_pylist() == [expected]
    elif fmt in ("json", "jsonl"):
        assert json.loads(text.strip().removeprefix("[").removesuffix("]")) == expected
    else:
        sep = {"csv": ",", "tsv": "\t"}.get(fmt)
        lines = [line for line in text.splitlines() if "syn2-00001" in line or "generation_1" in line]
        cells = [[c.strip() for c in (line.split(sep) if sep else line.strip("│┃ ").replace("┃", "│").split("│"))]
                 for line in lines]
        assert cells == [list(expected), [str(v) for v in expected.values()]]
