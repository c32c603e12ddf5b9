"""The CLI's surface: listing formats that scripts parse back, help that teaches, options where people put them."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import FIXTURES, Runner, fill_small_store

from lineage.cli import cli
from lineage.errors import LineageError
from lineage.store import Store


def parse_tsv(text: str) -> list[dict[str, str]]:
    """TSV as `write_tsv` writes it: a header, one line per row, \\t \\n \\\\ escaped."""
    lines = text.rstrip("\n").split("\n")
    unescape = re.compile(r"\\(.)")
    rows = [[unescape.sub(lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), c) for c in line.split("\t")]
            for line in lines]
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def no_python_reprs(text: str) -> None:
    for word in ("None", "True", "False", "{'"):
        assert word not in text, word


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The small store with two filter runs, a protected set, a build, a model and evals (read-only in tests)."""
    tmp_path = tmp_path_factory.mktemp("busy")
    small_store = fill_small_store(Store.init(tmp_path / "store"))
    small_store.run_filter("exact-dedup")
    small_store.run_filter("sql", params={"where": "length(text) < 30", "reason": "too_short"})
    from lineage.sets import create_set

    create_set(small_store, "heldout", where="external_id LIKE 'wn-r-0000%'", protected=True)
    spec = tmp_path / "mix.yaml"
    spec.write_text("name: mix\nsize: 200\nseed: 1\nquotas:\n  origin:\n    real: {min: 0.5}\n")
    small_store.build(spec)
    small_store.register_model("m1", trained_on="mix@v1")
    small_store.record_eval("m1", metrics={"acc": 0.123456789, "loss": 2.0}, benchmark="qa")
    return small_store


LISTINGS = [
    ("sql", "SELECT origin, avg(generation) AS g, count(*) AS n FROM samples GROUP BY ALL ORDER BY ALL"),
    ("stats", "--by", "origin,generation"),
    ("runs",),
    ("builds",),
    ("models",),
    ("eval", "list"),
    ("set", "list"),
    ("show", "syn2-00001"),
    ("filter", "list"),
]


@pytest.mark.parametrize("args", LISTINGS, ids=[" ".join(a[:2]) for a in LISTINGS])
def test_listings_parse_back_in_every_format(busy: Store, args: tuple[str, ...]) -> None:
    runner = Runner(busy.root)
    piped = runner(*args).stdout  # CliRunner's stdout is not a terminal: TSV
    assert piped == runner(*args, "--format", "tsv").stdout
    rows = parse_tsv(piped)
    assert rows and all(len(r) == len(rows[0]) for r in rows)
    no_python_reprs(piped)
    as_csv = list(csv.DictReader(io.StringIO(runner(*args, "--format", "csv").stdout)))
    assert [list(r) for r in as_csv] == [list(r) for r in rows]
    jsonl = [json.loads(line) for line in runner(*args, "--format", "jsonl").stdout.splitlines()]
    nested_only = {"by_source"}  # `runs`: the breakdown by source and reason, an object only JSON can carry
    assert [[k for k in r if k not in nested_only] for r in jsonl] == [list(r) for r in rows]
    if args[0] == "runs":
        assert all(isinstance(r["by_source"], list) for r in jsonl)
    if args[0] != "show":  # show's JSON is the whole document; its lines are the sample and relatives
        assert json.loads(runner(*args, "--json").stdout) == jsonl
        assert json.loads(runner(*args, "--format", "json").stdout) == jsonl
    table = runner(*args, "--format", "table").stdout
    no_python_reprs(table)


def test_floats_are_rounded_for_display_only(busy: Store) -> None:
    runner = Runner(busy.root)
    tsv = parse_tsv(runner("eval", "list").stdout)
    assert {r["metric"]: r["value"] for r in tsv} == {"acc": "0.123457", "loss": "2"}
    assert {r["metric"]: r["stderr"] for r in tsv} == {"acc": "", "loss": ""}  # nothing, not None
    exact = json.loads(runner("eval", "list", "--json").stdout)
    assert {r["metric"]: r["value"] for r in exact} == {"acc": 0.123456789, "loss": 2.0}
    table = runner("sql", "SELECT 1/3 AS third, 2e9 + 0.25 AS big, true AS yes, NULL AS nothing", "--format", "table")
    assert "0.333333" in table.stdout and "2000000000.2" in table.stdout and "true" in table.stdout
    assert "None" not in table.stdout


def test_json_nests_json_values(busy: Store) -> None:
    runner = Runner(busy.root)
    run = next(r for r in json.loads(runner("runs", "--json").stdout) if r["filter"] == "exact-dedup")
    assert isinstance(run["reasons"], dict)
    assert parse_tsv(runner("runs").stdout)[0]["reasons"].startswith("{")  # one cell of JSON text in TSV
    shown = json.loads(runner("show", "syn2-00001", "--json").stdout)
    assert shown["sample"]["record"]["id"] == "syn2-00001"  # the original record as an object
    lines = parse_tsv(runner("show", "syn2-00001").stdout)
    assert [(r["relation"], r["depth"], r["generation"]) for r in lines] == [
        ("sample", "0", "2"), ("ancestor", "1", "1"), ("ancestor", "2", "0")
    ]


def test_macros_take_what_show_takes(busy: Store) -> None:
    info = busy.sample("syn2-00001")
    full = info["sample"]["sample_id"]
    expected = [(a["sample_id"], a["depth"]) for a in info["ancestors"]]
    for ref in (full, full[:8], "syn2-00001", "syn-v2:syn2-00001"):
        rows = busy.sql("SELECT sample_id, depth FROM ancestors(?)", params=[ref]).to_pylist()
        assert [(r["sample_id"], r["depth"]) for r in rows] == expected, ref
    root = info["ancestors"][-1]
    below = busy.sql("SELECT sample_id FROM descendants(?)", params=[root["external_id"]])["sample_id"].to_pylist()
    assert full in below
    with pytest.raises(Exception, match="no sample with id, id prefix or external id `zzzz`"):
        busy.sql("SELECT * FROM ancestors('zzzz')")
    with pytest.raises(Exception, match="matches several samples; give more of the id"):
        busy.sql("SELECT * FROM descendants('')")


def test_build_members_view(busy: Store) -> None:
    rows = busy.sql("SELECT name, build_version, count(*) AS n FROM build_members GROUP BY ALL").to_pylist()
    assert rows == [{"name": "mix", "build_version": 1, "n": 200}]
    members = set(busy.sql("SELECT sample_id FROM build_members")["sample_id"].to_pylist())
    from lineage.build import Build

    assert members == set(Build(busy, "mix", 1).members()["sample_id"].to_pylist())
    assert busy.at(1).sql("SELECT count(*) AS n FROM build_members")["n"][0].as_py() == 0


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the top group loads its commands' modules when asked (lazily)
        command = group.get_command(ctx, name)
        assert command is not None
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
    return found


def test_every_command_and_group_has_an_example(runner: Runner) -> None:
    missing = []
    for path, _ in [((), cli), *all_commands(cli)]:
        out = runner(*path, "--help").stdout
        if not re.search(r"^\s*Examples?:\n\s+lineage ", out, re.MULTILINE):
            missing.append(" ".join(path) or "lineage")
    assert missing == []


def test_help_examples_name_builds_as_builds_are_named(runner: Runner) -> None:
    """A build is `NAME` or `NAME@vN` everywhere (`build show`, `export`, `report build`, `diversity --build`): an
    example writing `mix-v1` names a build that `lineage build` never makes from the `mix` of the others."""
    wrong = []
    for path, _ in [((), cli), *all_commands(cli)]:
        for line in runner(*path, "--help").stdout.splitlines():
            if line.strip().startswith("lineage ") and re.search(r"\bmix-v\d", line):
                wrong.append(line.strip())
    assert wrong == []


def test_sql_help_lists_every_view_and_macro(runner: Runner, busy: Store) -> None:
    help_text = runner("sql", "--help").stdout
    with busy.reader() as con:
        query = "SELECT view_name FROM duckdb_views() WHERE database_name = 'temp'"
        views = [r[0] for r in con.execute(query).fetchall()]
        macros = [r[0] for r in con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE database_name = 'temp' "
            "AND function_type IN ('macro', 'table_macro')").fetchall()]
    public = [name for name in views + macros if not name.startswith("_")]
    assert "build_members" in public and "ancestors" in public
    assert [name for name in public if not re.search(rf"\b{name}\b", help_text)] == []


def test_global_options_after_the_verb(runner: Runner, small_store: Store, tmp_path) -> None:
    other = Store.init(tmp_path / "other")
    out = runner.cli.invoke(cli, ["sql", "SELECT count(*) AS n FROM samples", "--store", str(small_store.root),
                                  "--as-of", "1"])
    assert out.exit_code == 0, out.output
    assert parse_tsv(out.stdout) == [{"n": "600"}]
    done = runner.cli.invoke(cli, ["ingest", str(FIXTURES / "real.jsonl"), "--origin", "real", "--source", "r",
                                   "--store", str(other.root)])
    assert done.exit_code == 0, done.output
    assert other.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 600
    # after the verb wins over before it, as the later flag does everywhere else
    late = runner.cli.invoke(cli, ["--store", str(other.root), "stats", "--store", str(small_store.root)])
    assert sum(int(r["samples"]) for r in parse_tsv(late.stdout)) == 1125


def test_language_is_a_bcp47_tag(runner: Runner, store: Store, tmp_path) -> None:
    real = str(FIXTURES / "real.jsonl")
    bad = runner("ingest", real, "--origin", "real", "--source", "r", "--language", "english", code=1)
    assert bad.stderr == (
        "Error: --language `english` is not a BCP-47 language tag; write e.g. `en`, `pt-BR`, `zh-Hant`\n"
    )
    with pytest.raises(LineageError, match=r"^language='en_US' is not a BCP-47 language tag \(`en-US`\?\)"):
        store.ingest(real, origin="real", source="r", language="en_US")
    rows = tmp_path / "langs.jsonl"
    rows.write_text("".join(json.dumps({"id": f"l{i}", "text": f"Text number {i}.", "language": tag}) + "\n"
                            for i, tag in enumerate(["en", "pt-BR", "zh-Hant-TW", "es-419", "English"])))
    refused = runner("ingest", str(rows), "--origin", "real", "--source", "l", code=1)
    assert refused.stderr == (f"Error: {rows}:5: field `language`: not a BCP-47 language tag, got `English`; "
                              "write e.g. en, pt-BR, zh-Hant; nothing was written\n")
    runner("ingest", str(rows), "--origin", "real", "--source", "l", "--skip-bad")
    assert store.sql("SELECT list(language ORDER BY language) AS l FROM samples")["l"][0].as_py() == [
        "en", "es-419", "pt-BR", "zh-Hant-TW"
    ]


def test_python_errors_name_python_arguments(store: Store, runner: Runner) -> None:
    records = [{"body": "no text here"}]
    with pytest.raises(LineageError, match=r"set text_field= or template=\)"):
        store.ingest(records, origin="real", source="r")
    with pytest.raises(LineageError, match=r"^real data is generation 0; got generation=2$"):
        store.ingest(records, origin="real", source="r", generation=2)
    path = FIXTURES / "real.jsonl"
    cli_error = runner("ingest", str(path), "--origin", "real", "--source", "r", "--text-field", "body", code=1)
    assert "set --text-field or --template)" in cli_error.stderr
    assert "--skip-bad stores the good ones" in cli_error.stderr


def test_progress_lines_when_not_a_terminal(small_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_PROGRESS_SECONDS", "0.05")
    runner = Runner(small_store.root)
    lines = runner("filter", "run", "near-dedup").stderr.splitlines()
    assert lines, "a step without a terminal still says it is alive"
    pattern = re.compile(r"^filter near-dedup: ([\d,]+)(?:/([\d,]+) samples \((\d+)%\).*| samples), \d+s elapsed$")
    for line in lines:
        found = pattern.match(line)
        assert found, line
        done, total, percent = found[1], found[2], found[3]
        if total:
            assert int(done.replace(",", "")) <= int(total.replace(",", "")) == 1125 and int(percent) <= 100
    assert runner("filter", "run", "near-dedup", "--force", "--quiet").stderr == ""
    assert runner("--quiet", "filter", "run", "near-dedup", "--force").stderr == ""


def test_progress_line_units_rate_and_eta() -> None:
    from lineage.cli.common import _ProgressLines

    lines = _ProgressLines("ingest big.jsonl", "bytes", 60)
    lines.start -= 10
    lines.update(30_000_000, 120_000_000)
    line = lines.line()
    assert line.startswith("ingest big.jsonl: 30.0/120.0 MB (25%), 3.0 MB/s, ETA 30s, 10s elapsed"), line
    lines.update(130, 120)  # a total estimated low grows to what was done: never over 100%
    assert "0/0 kB (100%)" in lines.line() and "finishing" in lines.line()
    slow = _ProgressLines("demo", "generations", 60)
    slow.start -= 10
    slow.update(3, 15)  # under one a second: the time each takes, not "0 generations/s"
    assert slow.line().startswith("demo: 3/15 generations (20%), 3.3 s each, ETA 40s, 10s elapsed"), slow.line()


def test_make_demo_installs_the_core_only(tmp_path) -> None:
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make")
    root = Path(__file__).resolve().parent.parent
    venv = str(tmp_path / "venv")
    demo = subprocess.run(["make", "-n", "demo", f"VENV={venv}"], cwd=root, capture_output=True, text=True, check=True)
    assert "scripts/uv_install.py --quiet --compile-bytecode -e .\n" in demo.stdout
    assert "torch" not in demo.stdout and "[dev" not in demo.stdout and "ray" not in demo.stdout
    assert f"run {venv}/bin/lineage" in demo.stdout and f"source {venv}/bin/activate" in demo.stdout
    test = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=root, capture_output=True, text=True, check=True)
    assert "torch==2.13.0" in test.stdout and "'.[dev,embed,hf,ray]'" in test.stdout


def test_shell_completion_as_documented() -> None:
    from conftest import run_cli

    script = run_cli(env={"_LINEAGE_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "_lineage_completion()" in script.stdout
    words = run_cli(env={"_LINEAGE_COMPLETE": "bash_complete", "COMP_WORDS": "lineage sql x --fo", "COMP_CWORD": "3"})
    assert words.stdout.split() == ["plain,--format"]


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_a_reader_that_stops_early_is_no_error(busy: Store, fmt: str) -> None:
    """`lineage sql … | head -1`: the reader closes the pipe after one line. Nothing went wrong, so no `Error:` line;
    the exit status is a SIGPIPE death's (141), as `git log | head` gives under `set -o pipefail`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lineage", "--store", str(busy.root), "sql", "SELECT * FROM samples", "--format", fmt],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    with process.stderr:
        assert process.stderr.read() == ""
    assert process.wait(timeout=120) == 141


def test_the_process_ends_with_the_commands_status_and_all_its_output(tmp_path: Path) -> None:
    """`lineage` ends its process without the interpreter's teardown (`lineage.cli._end`: DuckDB's threads aborted
    ~1 run in 160 there, after a successful command): every line still reaches a pipe and a file, each status is
    the command's, the atexit handlers of code the command loaded (a user filter's module) still run, and a thread
    pool it left open does not hold the exit."""
    from conftest import run_cli

    root = str(tmp_path / "s")
    assert run_cli("init", root).returncode == 0
    many = run_cli("--store", root, "sql", "SELECT range AS n FROM range(300000)", "--format", "csv")
    assert many.returncode == 0 and many.stdout.splitlines() == ["n", *map(str, range(300000))]
    out = tmp_path / "n.csv"
    assert run_cli("--store", root, "sql", "SELECT 7 AS n", "--output", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8").splitlines() == ["n", "7"]
    wrong = run_cli("--store", root, "sql", "SELECT nope")
    assert wrong.returncode == 1 and wrong.stderr.startswith("Error: ") and wrong.stdout == ""
    assert run_cli("--store", root, "sql").returncode == 2  # a usage error: click's status
    assert run_cli("--version").returncode == 0
    (tmp_path / "exiting.py").write_text(
        "import atexit, pathlib\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "from user_filters import ShoutingFilter\n"
        f"atexit.register(pathlib.Path({str(tmp_path / 'ran')!r}).write_text, 'yes')\n"
        "POOL = ThreadPoolExecutor(1)  # never shut down: its worker must not hold the process's exit\n"
        "POOL.submit(int).result()\n",
        encoding="utf-8",
    )
    (tmp_path / "one.jsonl").write_text('{"text": "HELLO THERE"}\n', encoding="utf-8")
    assert run_cli("--store", root, "ingest", str(tmp_path / "one.jsonl"), "--origin", "real", "--source", "x",
                   "--quiet").returncode == 0
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parent)])}
    done = run_cli("--store", root, "filter", "run", "shouting", "--module", "exiting:ShoutingFilter", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").read_text(encoding="utf-8") == "yes"
