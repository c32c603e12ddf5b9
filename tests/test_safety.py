"""What a user types cannot change the store or crash the CLI (issue: read-only means read-only).

Each test reproduces a case a red-team pass found: `EXPLAIN ANALYZE COPY` over a segment, outputs written
over the catalog or a segment, a spec predicate escaping its pool, markup in data, unbounded queries,
tracebacks, NaN metrics; and the output-safety cases of the robustness pass (JSON of every type, formulas in
CSV, terminal control sequences).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import fill_small_store, run_cli

from lineage.build import InfeasibleSpec
from lineage.cli import cli
from lineage.errors import LineageError, QueryError
from lineage.store import Store


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the store with its sha256: what must not change."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small store with a protected set, a takedown, exact-dedup and a build: made once per module."""
    root = tmp_path_factory.mktemp("safety") / "store"
    store = fill_small_store(Store.init(root))
    store.run_filter("exact-dedup")
    from lineage.sets import create_set
    from lineage.takedown import takedown

    create_set(store, "heldout", where="external_id LIKE 'wn-n-0%'", protected=True)
    takedown(store, source="syn-v3", reason="licence withdrawn")
    store.build({"name": "mix", "size": 300, "seed": 1})
    return root


@pytest.fixture
def fresh(built: Path, tmp_path: Path) -> Store:
    """A private copy of the module's store, for tests that try to damage it."""
    shutil.copytree(built, tmp_path / "store")
    return Store(tmp_path / "store")


def cli_run(store: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(store: Path, *args: str, match: str = "") -> str:
    code, _, err = cli_run(store, *args)
    assert code == 1, err
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


# -- 1. no statement changes a byte under the store -------------------------------------------------

def _statements(seg: str, root: Path) -> dict[str, str]:
    """One statement of each kind DuckDB parses into a distinct StatementType, aimed at the store's files."""
    return {
        "INSERT": "INSERT INTO samples SELECT * FROM samples",
        "UPDATE": "UPDATE samples SET text = 'x'",
        "CREATE": "CREATE TABLE t AS SELECT 1",
        "DELETE": "DELETE FROM _lineage.segments",
        "PREPARE": "PREPARE p AS SELECT 1",
        "EXECUTE": "EXECUTE p",
        "ALTER": "ALTER VIEW samples RENAME TO s2",
        "TRANSACTION": "BEGIN TRANSACTION",
        "COPY TO a segment": f"COPY (SELECT 'x' AS x) TO '{seg}' (FORMAT parquet)",
        "COPY FROM": f"COPY samples FROM '{seg}'",
        "ANALYZE": "ANALYZE",
        "VARIABLE_SET": "SET VARIABLE x = 1",
        "CREATE_FUNC": "CREATE MACRO m(x) AS x",
        "DROP": "DROP VIEW samples",
        "EXPORT": f"EXPORT DATABASE '{root}/data/dump'",
        "PRAGMA": "PRAGMA enable_profiling",
        "VACUUM": "VACUUM",
        "CALL": "CALL pragma_version()",
        "SET": "SET enable_external_access = true",
        "LOAD": "LOAD httpfs",
        "INSTALL": "INSTALL httpfs",
        "ATTACH": f"ATTACH '{root}/data/x.duckdb' AS x",
        "DETACH": "DETACH x",
        "COPY_DATABASE": "COPY FROM DATABASE memory TO x",
        "MERGE_INTO": "MERGE INTO samples USING (SELECT 1 AS id) s ON false WHEN NOT MATCHED THEN INSERT VALUES (1)",
        "CHECKPOINT": "CHECKPOINT",
    }


@pytest.mark.parametrize("wrap", ["", "EXPLAIN ", "EXPLAIN ANALYZE ", "explain analyze ", "EXPLAIN (FORMAT json) "])
def test_no_statement_changes_a_byte_under_the_store(built: Path, wrap: str) -> None:
    store = Store(built)
    seg = str(sorted((built / "data" / "samples").glob("*.parquet"))[0])
    before = snapshot(built)
    for kind, statement in _statements(seg, built).items():
        with pytest.raises(QueryError):
            store.sql(wrap + statement)
        assert snapshot(built) == before, f"{wrap}{kind} changed the store"
    assert store.doctor().ok


def test_explain_of_a_query_still_runs(built: Path) -> None:
    store = Store(built)
    assert store.sql("EXPLAIN SELECT count(*) FROM samples").num_rows >= 1
    assert store.sql("EXPLAIN ANALYZE SELECT count(*) FROM samples").num_rows >= 1


def test_explain_analyze_copy_through_the_cli_is_one_line(built: Path) -> None:
    seg = sorted((built / "data" / "samples").glob("*.parquet"))[0]
    before = snapshot(built)
    one_line_error(built, "sql", f"EXPLAIN ANALYZE COPY (SELECT 'x' AS x) TO '{seg}' (FORMAT parquet)",
                   match="COPY statements are refused")
    assert snapshot(built) == before


# -- 2. outputs cannot overwrite the store -----------------------------------------------------------

def test_outputs_never_land_in_the_store(fresh: Store, tmp_path: Path) -> None:
    root = fresh.root
    seg = sorted((root / "data" / "samples").glob("*.parquet"))[0]
    before = snapshot(root)
    for args in (
        ["sql", "SELECT 1 AS x", "--output", str(seg)],
        ["sql", "SELECT 1 AS x", "--format", "parquet", "--output", str(seg)],
        ["sql", "SELECT 1 AS x", "--output", str(root / "lineage.duckdb")],
        ["sql", "SELECT 1 AS x", "--output", str(root / "tmp" / "x.csv")],
        ["report", "build", "mix", "--output", str(root / "lineage.duckdb"), "--format", "html"],
        ["report", "build", "mix", "--output", str(root / "builds" / "mix" / "v1" / "manifest.json")],
        ["review", "export", "--n", "5", "--output", str(root / "data" / "review.csv")],
        ["attribute", "ablate", "mix", "--output", str(root / "data" / "samples")],
    ):
        one_line_error(root, *args, match="would overwrite the store's own")
    # a relative path that walks into the store, and a symlink pointing into it, resolve first
    link = tmp_path / "innocent.parquet"
    link.symlink_to(seg)
    one_line_error(root, "sql", "SELECT 1 AS x", "--format", "parquet", "--output", str(link))
    assert snapshot(root) == before and fresh.doctor().ok


def test_outputs_beside_the_store_are_written_whole(fresh: Store, tmp_path: Path) -> None:
    out = fresh.root / "report.csv"  # inside the store's folder but not in its own files: fine
    code, _, err = cli_run(fresh.root, "sql", "SELECT 1 AS x", "--output", str(out))
    assert code == 0, err and out.read_text() == "x\n1\n"
    assert not [p for p in fresh.root.iterdir() if p.name.startswith(".report.csv")]  # no temporary left


# -- 3. a spec's predicate narrows its pool and nothing else ----------------------------------------

ESCAPES = [
    "false) OR (sample_id IN (SELECT sample_id FROM status WHERE filter = 'takedown' AND decision = 'drop')) "
    "OR (source <> 'eval'",
    "true) --",
    "true) OR (true",
    "true /* ) */",
    "true; DELETE FROM samples",
    "origin = $protected",
    "origin = ?",
]


@pytest.mark.parametrize("where", ESCAPES)
def test_spec_where_cannot_escape_the_pool(built: Path, tmp_path: Path, where: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "escape", "size": 10, "pool": {"where": where}}))
    before = snapshot(built)
    one_line_error(built, "build", "run", str(spec), match="pool.where")
    for args in (
        ["filter", "run", "sql", "--param", f"where={where}", "--param", "reason=x"],
        ["filter", "run", "quality", "--where", where],
        ["set", "create", "s", "--where", where],
        ["review", "export", "--where", where, "--n", "3", "--output", str(tmp_path / "r.csv")],
        ["takedown", "--where", where, "--reason", "x"],
        ["diversity", "--where", where],
    ):
        one_line_error(built, *args)
    assert snapshot(built) == before


def test_no_spec_reincludes_protected_or_taken_down_samples(fresh: Store) -> None:
    excluded = {
        r["sample_id"]
        for r in fresh.sql(
            "SELECT sample_id FROM status WHERE filter = 'takedown' AND decision = 'drop' "
            "UNION SELECT sample_id FROM set_members"
        ).to_pylist()
    }
    assert len(excluded) > 100
    # predicates that try to select exactly those, each one legitimate expression: they only narrow
    only_excluded = {"name": "try", "size": 1, "pool": {
        "where": "sample_id IN (SELECT sample_id FROM status WHERE filter = 'takedown') "
                 "OR sample_id IN (SELECT sample_id FROM set_members)", "exclude_dropped_by": []}}
    with pytest.raises(InfeasibleSpec, match="the pool has 0 after filters, protected sets and the pool's limits"):
        fresh.build(only_excluded, dry_run=True)
    for i, where in enumerate(("sample_id IN (SELECT sample_id FROM set_members) OR true", "(true)")):
        spec = {"name": f"try{i}", "size": 1, "pool": {"where": where, "exclude_dropped_by": []}}
        spec["size"] = fresh.build(spec, dry_run=True).pool_size
        members = set(fresh.build(spec).member_ids()["sample_id"].to_pylist())
        assert members and not members & excluded


def test_a_predicate_that_does_not_bind_is_one_line(built: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "nb", "size": 10, "pool": {"where": "no_such_column = 1"}}))
    one_line_error(built, "build", "run", str(spec), match="no_such_column")
    spec.write_text(json.dumps({"name": "nb", "size": 10, "expr": [{"name": "e", "sql": "nope > 1", "min": 0.1}]}))
    one_line_error(built, "build", "run", str(spec), match="nope")


# -- 5. data is never markup ---------------------------------------------------------------------------

MARKUP = ["[INST] What is 2+2? [/INST] 4", "[bold]not bold[/bold]", "[link=https://evil.example]click[/link]", "[/]"]


def test_square_brackets_print_as_written(fresh: Store) -> None:
    fresh.ingest([{"id": f"m{i}", "text": t} for i, t in enumerate(MARKUP)], origin="real", source="markup")
    code, out, err = cli_run(fresh.root, "sql", "SELECT external_id, text FROM samples WHERE source = 'markup'")
    assert code == 0, err
    flat = "".join(out.split())
    for text in MARKUP:
        assert "".join(text.split()) in flat
    code, out, err = cli_run(fresh.root, "show", "m0")
    assert code == 0 and "[INST] What is 2+2? [/INST] 4" in out, err
    code, out, err = cli_run(fresh.root, "sql", "SELECT name, value FROM duckdb_settings() LIMIT 50")
    assert code == 0, err
    code, out, err = cli_run(fresh.root, "stats", "--by", "source")
    assert code == 0 and "markup" in out, err


def test_terminal_control_sequences_are_shown_not_run(fresh: Store) -> None:
    title = "\x1b]0;pwned\x07 and \x1b[2J clear"
    fresh.ingest([{"id": "esc", "text": f"innocent {title}"}], origin="real", source="esc")
    for args in (["show", "esc"], ["sql", "SELECT text FROM samples WHERE source = 'esc'"],
                 ["sql", "SELECT text FROM samples WHERE source = 'esc'", "--format", "tsv"]):
        code, out, err = cli_run(fresh.root, *args)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out, args
        assert "\\x1b]0;pwned" in out
    # machine formats keep the exact text
    code, out, _ = cli_run(fresh.root, "sql", "SELECT text FROM samples WHERE source = 'esc'", "--format", "json")
    assert json.loads(out)[0]["text"] == f"innocent {title}"


# -- 6. queries with limits -----------------------------------------------------------------------------

def test_runaway_queries_stop_with_one_line(built: Path) -> None:
    one_line_error(built, "sql", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) "
                   "SELECT count(*) FROM t", "--timeout", "1", match="raise --timeout")
    one_line_error(built, "sql", "SELECT count(*) FROM range(100000000) a, range(100000000) b, range(10) c",
                   "--timeout", "1", match="raise --timeout")
    one_line_error(built, "sql", "SELECT list(repeat('x', 1000000)) FROM range(100000)",
                   "--memory-limit", "200MB", match="raise --memory-limit")
    one_line_error(built, "sql", "SELECT 1", "--memory-limit", "lots", match="--memory-limit `lots`")


def test_a_query_deaf_to_interrupts_still_stops_at_its_timeout(built: Path) -> None:
    """DuckDB checks for an interrupt between vectors; one value of 300 MB built by `repeat` (about 6 s here) runs
    on past it. The `lineage` process ends such a query a second after its --timeout, with the same one line."""
    query = ("SELECT length(repeat(repeat('ab', 100000), 1500) || n::VARCHAR) AS d "
             "FROM (SELECT count(*) AS n FROM samples)")
    started = time.monotonic()
    done = run_cli("--store", str(built), "sql", query, "--timeout", "1")
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert done.stderr == "Error: the query ran longer than 1 s and was stopped; raise --timeout SECONDS\n"
    assert elapsed < 4.5, elapsed


# -- 7. every error a user can cause is one line ----------------------------------------------------------

BAD = [
    ["sql", ""],
    ["sql", "SELEC 1"],
    ["sql", "SELECT * FROM nope"],
    ["sql", "SELECT 1", "--format", "parquet"],
    ["sql", "SELECT ?"],
    ["sql", "SELECT * FROM read_csv('/etc/passwd')"],
    ["show", "no-such-sample"],
    ["stats", "--by", "nope"],
    ["build", "show", "nope"],
    ["report", "build", "nope", "--output", "x.html"],
    ["report", "build", "mix", "--output", "x.txt"],
    ["filter", "run", "nope"],
    ["filter", "run", "quality", "--param", "nope=1"],
    ["eval", "record", "nope", "--metric", "acc=1"],
    ["takedown", "--where", "nope = 1", "--reason", "x"],
    ["set", "create", "s2", "--where", "nope = 1"],
    ["diversity", "--by", "nope"],
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_input_corpus_is_one_line_each(built: Path, args: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(built)
    one_line_error(built, *args)
    assert snapshot(built) == before


# -- 8. numbers that are numbers --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_nan_metrics_are_refused(fresh: Store, tmp_path: Path, bad: str) -> None:
    root = fresh.root
    assert cli_run(root, "model", "register", "m1", "--trained-on", "mix")[0] == 0
    before = fresh.version
    one_line_error(root, "eval", "record", "m1", "--metric", f"acc={bad}", match="finite number")
    one_line_error(root, "eval", "record", "m1", "--metric", "acc=0.5", "--stderr", f"acc={bad}",
                   match="finite number")
    results = tmp_path / "results.json"
    results.write_text('{"results": {"hellaswag": {"acc,none": NaN, "acc_stderr,none": 0.01}}}')
    one_line_error(root, "eval", "import", "m1", str(results), match="not a finite number")
    results.write_text('{"results": {"hellaswag": {"acc,none": 0.5, "acc_stderr,none": Infinity}}}')
    one_line_error(root, "eval", "import", "m1", str(results), match="not a finite number")
    with pytest.raises(LineageError, match="finite number"):
        fresh.record_eval("m1", metrics={"acc": float(bad)})
    decisions = tmp_path / "decisions.jsonl"
    sid = fresh.sql("SELECT sample_id FROM samples LIMIT 1")["sample_id"][0].as_py()
    decisions.write_text(json.dumps({"sample_id": sid, "decision": "drop", "score": bad}) + "\n")
    one_line_error(root, "decisions", "import", str(decisions), "--filter", "vendor", match="finite number")
    assert fresh.version == before


# -- output that is safe to open ----------------------------------------------------------------------

TYPES = (
    "SELECT true AS b, 1::TINYINT AS ti, 2::SMALLINT AS si, 3 AS i, 4::BIGINT AS bi, sum(range) AS huge, "
    "170141183460469231731687303715884105727::HUGEINT AS hmax, 5::UBIGINT AS ub, 1.5 AS dec, 1.5::FLOAT AS f, "
    "'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, 'x' AS s, '\\x00\\x01'::BLOB AS blob, DATE '2024-01-02' AS d, "
    "TIME '10:11:12' AS t, TIMESTAMP '2024-01-02 03:04:05' AS ts, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tstz, "
    "INTERVAL 3 DAY + INTERVAL 90 MINUTE AS iv, uuid() AS u, [1, 2] AS l, {'a': 1, 'b': [1.5]} AS st, "
    "MAP {'k': 1} AS m, [1, 2]::INTEGER[2] AS arr, union_value(n := 1) AS un, 'a'::ENUM_X AS en, "
    "'{\"j\": 1}'::JSON AS js, '101'::BIT AS bit, 12345678901234567890123::VARINT AS vi "
    "FROM range(3)"
)


@pytest.fixture(scope="module")
def types_query(built: Path) -> str:
    store = Store(built)
    try:
        store.sql("SELECT 'a'::ENUM_X")
    except QueryError:
        return TYPES.replace("'a'::ENUM_X AS en", "'a'::ENUM('a', 'b') AS en").replace(
            ", 12345678901234567890123::VARINT AS vi", ""
        )
    return TYPES


def test_every_type_round_trips_through_every_format(built: Path, types_query: str, tmp_path: Path) -> None:
    code, out, err = cli_run(built, "sql", types_query, "--format", "json")
    assert code == 0, err
    row = json.loads(out)[0]
    assert row["dec"] == 1.5 and row["huge"] == 3 and row["hmax"] == 2**127 - 1
    assert row["nan"] is None and row["inf"] is None and row["t"] == "10:11:12" and row["iv"] == "P0M3DT5400S"
    assert row["st"] == {"a": 1, "b": [1.5]} and row["l"] == [1, 2]
    code, out, err = cli_run(built, "sql", types_query, "--format", "jsonl")
    assert code == 0, err and json.loads(out.splitlines()[0]).keys() == row.keys()
    code, out, err = cli_run(built, "sql", types_query, "--format", "csv")
    assert code == 0, err
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert parsed[0]["dec"] == "1.5" and parsed[0]["l"] == "[1, 2]" and list(parsed[0]) == list(row)
    code, out, err = cli_run(built, "sql", types_query, "--format", "tsv")
    assert code == 0, err and out.splitlines()[0].split("\t") == list(row)
    target = tmp_path / "types.parquet"
    code, _, err = cli_run(built, "sql", types_query, "--format", "parquet", "--output", str(target))
    assert code == 0, err
    back = pq.read_table(target).to_pylist()[0]
    assert back["dec"] == pytest.approx(1.5) and back["s"] == "x" and math.isnan(back["nan"])
    code, out, err = cli_run(built, "sql", types_query)
    assert code == 0 and "hmax" in out, err


def test_formulas_are_escaped_in_files_for_people(fresh: Store, tmp_path: Path) -> None:
    texts = ['=HYPERLINK("http://evil.example","click")', "+cmd", "-2+3", "@SUM(A1)", "plain"]
    fresh.ingest([{"id": f"f{i}", "text": t} for i, t in enumerate(texts)], origin="real", source="formula")
    code, out, err = cli_run(fresh.root, "sql", "SELECT text, -5 AS n FROM samples WHERE source = 'formula' "
                             "ORDER BY external_id", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["text"] for r in rows] == ["'" + t if t[0] in "=+-@" else t for t in texts]
    assert {r["n"] for r in rows} == {"-5"}
    review = tmp_path / "review.csv"
    code, _, err = cli_run(fresh.root, "review", "export", "--where", "source = 'formula'", "--n", "10",
                           "--output", str(review))
    assert code == 0, err
    cells = [c for r in csv.reader(io.StringIO(review.read_text())) for c in r]
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in cells and not any(c.startswith("=") for c in cells)


def test_read_blob_cannot_read_the_catalog(built: Path) -> None:
    with pytest.raises(QueryError):
        Store(built).sql(f"SELECT * FROM read_blob('{built}/lineage.duckdb')", timeout=10)


READS_A_FILE = "length(text) > 0 AND (SELECT count(*) FROM read_text('/etc/hostname')) > 0"
WHERE_TAKERS = {
    "filter --where": lambda s: s.run_filter("quality", where=READS_A_FILE),
    "sql filter's where": lambda s: s.run_filter("sql", params={"where": READS_A_FILE, "reason": "r"}),
    "build pool": lambda s: s.build({"name": "b", "size": 5, "seed": 1, "pool": {"where": READS_A_FILE}}, dry_run=True),
    "set --where": lambda s: s.create_set("x", where=READS_A_FILE),
    "takedown --where": lambda s: s.takedown(where=READS_A_FILE, reason="r"),
}


@pytest.mark.parametrize("verb", WHERE_TAKERS)
def test_a_users_where_reads_no_file_outside_the_store(small_store: Store, verb: str) -> None:
    """Every verb that runs a user's predicate runs it on a reader locked down before it is handed out (its own
    DuckDB instance, `reader(locked=True)`): a predicate that reads a file is refused and nothing is written."""
    before = small_store.version
    with pytest.raises(LineageError, match="file system operations are disabled by configuration"):
        WHERE_TAKERS[verb](small_store)
    assert small_store.version == before
