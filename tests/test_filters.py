"""The filter framework: runs, events, status, re-runs, params, user filters, crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, Runner, run_cli

from lineage.errors import LineageError
from lineage.store import Store

PLANTED = json.loads((FIXTURES / "planted.json").read_text(encoding="utf-8"))


def ext_ids(store: Store, query: str) -> set[str]:
    return set(store.sql(query)["external_id"].to_pylist())


def test_exact_dedup_keeps_real_and_names_it(small_store: Store) -> None:
    result = small_store.run_filter("exact-dedup")
    assert (result.selected, result.dropped, result.reasons) == (1125, 10, {"exact_duplicate": 10})
    dropped = small_store.sql(
        "SELECT s.external_id, k.origin AS kept_origin, k.text = s.text AS same_text FROM status e "
        "JOIN samples s USING (sample_id) JOIN samples k ON k.sample_id = e.related_id "
        "WHERE e.filter = 'exact-dedup' AND e.decision = 'drop'"
    ).to_pylist()
    assert {r["external_id"] for r in dropped} == set(PLANTED["exact_dup_of_parent"])
    assert all(r["kept_origin"] == "real" and r["same_text"] for r in dropped)


def test_keep_policy_prefers_real_even_when_ingested_later(store: Store) -> None:
    store.ingest([{"id": "s", "text": "The same words."}], origin="synthetic", source="syn", generation=1)
    store.ingest([{"id": "r", "text": "The same   words."}], origin="real", source="web")
    store.ingest([{"id": "s2", "text": "The same words."}], origin="synthetic", source="syn2", generation=3)
    store.run_filter("exact-dedup")
    rows = store.sql(
        "SELECT s.external_id, e.decision FROM events e JOIN samples s USING (sample_id) ORDER BY 1"
    ).to_pylist()
    assert rows == [
        {"external_id": "r", "decision": "keep"},
        {"external_id": "s", "decision": "drop"},
        {"external_id": "s2", "decision": "drop"},
    ]


def test_why_was_it_dropped_is_one_query(small_store: Store) -> None:
    small_store.run_filter("exact-dedup")
    target = PLANTED["exact_dup_of_parent"][0]
    why = small_store.sql(
        "SELECT e.filter, e.reason, e.score, k.external_id AS kept FROM status e "
        "JOIN samples s USING (sample_id) LEFT JOIN samples k ON k.sample_id = e.related_id "
        "WHERE s.external_id = ? AND e.decision = 'drop'",
        params=[target],
    ).to_pylist()
    parent = json.loads(
        next(
            line
            for line in (FIXTURES / "synthetic-g1.jsonl").read_text().splitlines()
            if json.loads(line)["id"] == target
        )
    )["parent_id"]
    assert why == [{"filter": "exact-dedup", "reason": "exact_duplicate", "score": 2.0, "kept": parent}]


def test_rerun_is_a_no_op_unless_forced_or_selection_changes(small_store: Store) -> None:
    first = small_store.run_filter("exact-dedup")
    again = small_store.run_filter("exact-dedup")
    assert again.skipped and again.run_id == first.run_id and small_store.version == first.version
    assert "already run" in again.summary()
    forced = small_store.run_filter("exact-dedup", force=True)
    assert not forced.skipped and forced.version == first.version + 1
    narrower = small_store.run_filter("exact-dedup", where="origin = 'real'")
    assert narrower.selected == 600 and not narrower.skipped
    small_store.ingest([{"text": "a brand new sentence"}], origin="real", source="new")
    assert not small_store.run_filter("exact-dedup").skipped


def test_status_is_the_latest_decision_per_filter(small_store: Store) -> None:
    small_store.run_filter("sql", params={"where": "length(text) < 40", "reason": "too_short"})
    small_store.run_filter("sql", params={"where": "length(text) < 20", "reason": "too_short"})
    dropped = small_store.sql("SELECT count(*) AS n FROM status WHERE filter = 'sql' AND decision = 'drop'")
    expected = small_store.sql("SELECT count(*) AS n FROM samples WHERE length(text) < 20")
    assert dropped["n"][0].as_py() == expected["n"][0].as_py()
    total = small_store.sql("SELECT count(*) AS n FROM events WHERE filter = 'sql'")["n"][0].as_py()
    assert total == 2 * 1125


def test_events_segment_and_runs_row(small_store: Store) -> None:
    result = small_store.run_filter("exact-dedup")
    run = small_store.sql("SELECT * FROM runs").to_pylist()[0]
    assert (run["run_id"], run["filter"], run["params"], run["selected"], run["dropped"]) == (
        result.run_id,
        "exact-dedup",
        "{}",
        1125,
        10,
    )
    assert json.loads(run["reasons"]) == {"exact_duplicate": 10}
    assert (small_store.root / "data" / "events" / f"{result.run_id}.parquet").is_file()
    assert small_store.doctor().ok


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"foo": "1"}, "unknown param `foo` for filter sql; allowed: where, reason, decision"),
        ({"where": "true", "decision": "maybe"}, "param `decision` of filter sql: Value error, must be drop or flag"),
        ({}, "param `where` of filter sql: Field required"),
    ],
)
def test_bad_params_are_one_line(small_store: Store, params: dict, message: str) -> None:
    with pytest.raises(LineageError, match=message.replace("(", r"\(")):
        small_store.run_filter("sql", params=params)


def test_bad_params_on_the_cli(small_store: Store) -> None:
    runner = Runner(small_store.root)
    result = runner("filter", "run", "sql", "--param", "where=true", "--param", "decision=maybe", code=1)
    assert result.stderr == "Error: param `decision` of filter sql: Value error, must be drop or flag, got 'maybe'\n"
    assert runner("filter", "run", "nope", code=1).stderr.startswith("Error: unknown filter `nope`; available:")
    assert runner("filter", "run", "sql", "--param", "oops", code=1).stderr == (
        "Error: --param must look like key=value, got `oops`\n"
    )


def test_user_filter_by_module_path_in_a_process_pool(store: Store, tmp_path: Path) -> None:
    rows = [{"text": f"THIS IS VERY LOUD TEXT {i}" if i % 3 == 0 else f"quiet text number {i}"} for i in range(45_000)]
    store.ingest(rows, origin="real", source="s")
    result = store.run_filter("shouting", module="user_filters:ShoutingFilter", engine="local", workers=2)
    assert (result.selected, result.flagged) == (45_000, 15_000)
    assert result.reasons == {"shouting": 15_000}
    bad = Runner(store.root)("filter", "run", "x", "--module", "user_filters:Nope", code=1)
    assert bad.stderr.startswith("Error: cannot load filter `user_filters:Nope`")


def test_killed_filter_run_leaves_no_events_and_reruns(small_store: Store) -> None:
    store_arg = ["--store", str(small_store.root)]
    env = {"LINEAGE_CRASH_AT": "filter_before_commit", "PYTHONPATH": str(Path(__file__).parent)}
    died = run_cli(*store_arg, "filter", "run", "exact-dedup", env=env)
    assert died.returncode == -9
    assert small_store.sql("SELECT count(*) AS n FROM events")["n"][0].as_py() == 0
    assert small_store.doctor().ok and small_store.version == 4
    done = run_cli(*store_arg, "filter", "run", "exact-dedup")
    assert done.returncode == 0, done.stderr
    assert small_store.sql("SELECT count(*) AS n FROM events")["n"][0].as_py() == 1125
    Runner(small_store.root)("gc", "--yes")
    assert small_store.doctor().orphans == []


def test_show_includes_filter_history(small_store: Store) -> None:
    small_store.run_filter("exact-dedup")
    info = Runner(small_store.root).json("show", PLANTED["exact_dup_of_parent"][0])
    assert [(f["filter"], f["decision"], f["reason"]) for f in info["filters"]] == [
        ("exact-dedup", "drop", "exact_duplicate")
    ]


def test_filter_list_names_params(small_store: Store) -> None:
    rows = Runner(small_store.root).json("filter", "list")
    sql = next(r for r in rows if r["filter"] == "sql")
    assert sql["params"] == 'where=(required), reason="sql_predicate", decision="drop"'


@pytest.mark.parametrize("engine", ["local", "inline"])
def test_every_builtin_filter_runs_on_an_empty_selection(small_store: Store, engine: str) -> None:
    """`--where` that selects nothing is an empty run, as on Ray: exact-dedup once failed with DuckDB's traceback
    (its decide_all got a table without its columns)."""
    from lineage.filters.base import BUILTINS

    for name in sorted(BUILTINS):
        if name in ("sql", "takedown"):  # each needs parameters of its own (`where`, `reason`)
            continue
        result = small_store.run_filter(name, where="false", engine=engine, force=True)
        assert (result.selected, result.kept, result.dropped) == (0, 0, 0), name
    out = Runner(small_store.root)("filter", "run", "exact-dedup", "--where", "source = 'nowhere'", "--force")
    assert out.stdout.startswith("exact-dedup: 0 selected, 0 kept, 0 dropped")
