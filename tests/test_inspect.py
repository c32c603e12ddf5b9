"""show and stats, through the CLI."""

from __future__ import annotations

from conftest import Runner

from lineage.store import Store


def test_show_by_external_id_and_prefix(runner: Runner, small_store: Store) -> None:
    info = runner.json("show", "syn2-00001")
    sample = info["sample"]
    assert (sample["generation"], sample["source"], sample["generator"]) == (2, "syn-v2", "llama-3-8b")
    assert [a["depth"] for a in info["ancestors"]] == [1, 2]
    assert info["ancestors"][-1]["origin"] == "real"
    assert info["batch"]["input_uri"].endswith("synthetic-g2.jsonl")
    by_prefix = runner.json("show", sample["sample_id"][:10])
    assert by_prefix["sample"]["sample_id"] == sample["sample_id"]
    text = runner("show", "syn2-00001", "--format", "table").stdout
    assert "generation: 2" in text and "ancestors: 2" in text


def test_show_unknown_and_ambiguous(runner: Runner, small_store: Store) -> None:
    assert runner("show", "zzzz", code=1).stderr == "Error: no sample with id, id prefix or external id `zzzz`\n"
    result = runner("show", "", code=1)
    assert result.stderr == "Error: `` matches several samples; give more of the id\n"


def test_stats_by_dimensions(runner: Runner, small_store: Store) -> None:
    rows = runner.json("stats", "--by", "origin,generation")
    assert [(r["origin"], r["generation"], r["samples"]) for r in rows] == [
        ("real", 0, 600),
        ("synthetic", 1, 300),
        ("synthetic", 2, 150),
        ("synthetic", 3, 75),
    ]
    # JSON keeps exact values (they were rounded to 4 and 1 digits in every format): the SQL's own.
    assert [r["share"] for r in rows] == [600 / 1125, 300 / 1125, 150 / 1125, 75 / 1125]
    exact = small_store.sql("SELECT origin, generation, avg(length(text)) AS m FROM samples GROUP BY ALL "
                            "ORDER BY origin, generation")
    assert [r["mean_chars"] for r in rows] == exact["m"].to_pylist()
    assert all(r["min_chars"] <= r["median_chars"] <= r["max_chars"] for r in rows)
    # The collapse shows in the data: later generations are longer and more repetitive.
    assert rows[3]["mean_chars"] > rows[0]["mean_chars"]
    bad = runner("stats", "--by", "text", code=1)
    assert bad.stderr.startswith("Error: cannot group by `text`; choose from origin, source")


def test_help_has_examples(runner: Runner) -> None:
    for command in ("init", "ingest", "sql", "show", "stats", "doctor", "gc"):
        out = runner(command, "--help").stdout
        assert "Example" in out, command
