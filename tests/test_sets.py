"""Sets, ingest --set, takedowns, human review and imported decisions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import FIXTURES, Runner

from lineage.decisions import import_decisions
from lineage.errors import InputError, LineageError
from lineage.sets import create_set, protected_ids
from lineage.store import Store

EVAL_INGEST = ("--origin", "real", "--source", "eval", "--set", "heldout", "--template", "{prompt} {response}")


def test_protected_set_filled_by_ingest(runner: Runner, store: Store) -> None:
    runner("set", "create", "heldout", "--protected", "--description", "eval data")
    runner("ingest", str(FIXTURES / "qa.jsonl"), *EVAL_INGEST)
    info = runner.json("set", "show", "heldout")
    assert (info["protected"], info["members"], info["composition"]) == (
        True,
        20,
        [{"origin": "real", "source": "eval", "n": 20}],
    )
    assert protected_ids(store).num_rows == 20
    runner("ingest", str(FIXTURES / "qa.jsonl"), *EVAL_INGEST)
    assert runner.json("set", "show", "heldout")["members"] == 20  # re-ingest adds no duplicates


def test_set_from_where_and_ids(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    out = runner("set", "create", "deep", "--where", "generation >= 2").stdout
    assert out == "created set deep with 225 samples (version 5)\n"
    ids = tmp_path / "ids.txt"
    ids.write_text("# my ids\nsyn1-00001\nsyn1-00002\n", encoding="utf-8")
    runner("set", "create", "two", "--ids", str(ids))
    rows = runner.json("set", "list")
    assert [(r["name"], r["members"], r["protected"]) for r in rows] == [("deep", 225, False), ("two", 2, False)]
    ids.write_text("syn1-00001\nnot-a-sample\n", encoding="utf-8")
    assert runner("set", "create", "bad", "--ids", str(ids), code=1).stderr == (
        "Error: 1 ids match no sample, first: `not-a-sample`\n"
    )
    assert runner("set", "create", "deep", code=1).stderr == "Error: set `deep` already exists\n"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 200])
def test_set_names_never_become_paths(store: Store, name: str) -> None:
    with pytest.raises(LineageError, match=r"name .* is not allowed"):
        create_set(store, name)


def test_takedown_drops_roots_and_all_descendants(runner: Runner, small_store: Store) -> None:
    chain = small_store.sample("syn3-00001")
    real_root = chain["ancestors"][-1]["sample_id"]
    out = runner("takedown", "--where", f"sample_id = '{real_root}'", "--reason", "Licence withdrawn!").stdout
    assert out.startswith("takedown: 4 selected, 0 kept, 4 dropped")
    rows = small_store.sql(
        "SELECT s.generation, e.reason, e.related_id FROM status e JOIN samples s USING (sample_id) "
        "WHERE e.filter = 'takedown' ORDER BY 1"
    ).to_pylist()
    assert [r["generation"] for r in rows] == [0, 1, 2, 3]
    assert {r["reason"] for r in rows} == {"takedown:licence_withdrawn"}
    assert {r["related_id"] for r in rows} == {real_root}


def test_takedown_by_source_and_nothing_matching(runner: Runner, small_store: Store) -> None:
    result = runner.json("takedown", "--source", "syn-v2", "--reason", "bad generator")
    assert (result["selected"], result["dropped"]) == (225, 225)  # 150 of syn-v2 and their 75 children
    assert runner("takedown", "--source", "nope", "--reason", "x", code=1).stderr == (
        "Error: nothing matches the takedown (source = 'nope'); nothing was recorded\n"
    )
    assert runner("takedown", "--reason", "x", code=1).stderr == "Error: give exactly one of --source or --where\n"


def test_review_round_trip(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    assert (
        "wrote 5 samples"
        in runner(
            "review", "export", "--where", "origin = 'synthetic'", "--n", "5", "--seed", "1", "--output", str(path)
        ).stdout
    )
    first = path.read_text(encoding="utf-8")
    runner("review", "export", "--where", "origin = 'synthetic'", "--n", "5", "--seed", "1", "--output", str(path))
    assert path.read_text(encoding="utf-8") == first  # seeded
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "sample_id",
        "origin",
        "source",
        "method",
        "generator",
        "generation",
        "text",
        "verdict",
        "note",
    ]
    rows[0].update(verdict="drop", note="Repetitive filler"), rows[1].update(verdict="keep")
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = runner.json("review", "import", str(path), "--reviewer", "alice")
    assert (result["filter"], result["selected"], result["dropped"], result["kept"]) == ("human-review", 2, 1, 1)
    why = small_store.sql("SELECT reason FROM status WHERE filter = 'human-review' AND decision = 'drop'")
    assert why["reason"].to_pylist() == ["repetitive_filler"]
    rows[2].update(verdict="maybe")
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert runner("review", "import", str(path), "--reviewer", "alice", code=1).stderr == (
        f"Error: {path}:3: field `decision`: must be keep, drop or flag, got `maybe`\n"
    )


def test_decisions_import_by_id_and_by_text(small_store: Store, tmp_path: Path) -> None:
    real = [json.loads(line) for line in (FIXTURES / "real.jsonl").read_text(encoding="utf-8").splitlines()[:3]]
    some_id = small_store.sample(real[0]["id"])["sample"]["sample_id"]
    path = tmp_path / "exclusions.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"sample_id": some_id, "decision": "drop", "score": 0.91, "reason": "gopher_repetition"},
                {"text": "  " + real[1]["text"] + " ", "decision": "flag", "reason": "Needs a look"},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = import_decisions(small_store, path, filter_name="datatrove-gopher")
    assert (result.selected, result.dropped, result.flagged) == (2, 1, 1)
    rows = small_store.sql("SELECT decision, reason, score FROM status WHERE filter = 'datatrove-gopher' ORDER BY 1")
    assert rows.to_pylist() == [
        {"decision": "drop", "reason": "gopher_repetition", "score": 0.91},
        {"decision": "flag", "reason": "needs_a_look", "score": None},
    ]


def test_decisions_import_errors(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("sample_id,decision\nnope,drop\n", encoding="utf-8")
    assert runner("decisions", "import", str(path), "--filter", "ext", code=1).stderr == (
        f"Error: {path}:1: no sample with this sample_id\n"
    )
    assert runner("decisions", "import", str(path), "--filter", "exact-dedup", code=1).stderr == (
        "Error: `exact-dedup` is a built-in filter; name imported decisions differently\n"
    )
    path.write_text("id,verdict\n1,drop\n", encoding="utf-8")
    with pytest.raises(InputError, match="needs a `decision` column and a `sample_id` or `text` column"):
        import_decisions(small_store, path, filter_name="ext")
