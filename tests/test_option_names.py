"""An error names what the caller typed: the parameter from Python (`memory_limit='lots'`), the flag from the CLI
(`--memory-limit lots`). Each case is checked both ways, on the same store."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, Runner

from lineage.core.lock import WriterLock
from lineage.errors import LineageError
from lineage.store import Store

SLOW = "SELECT count(*) FROM range(100000000000) a"


def error(runner: Runner, *args: str, code: int = 1) -> str:
    return runner(*args, code=code).stderr.strip()


@pytest.fixture
def run(small_store: Store) -> Runner:
    return Runner(small_store.root)


def test_query_limits(small_store: Store, run: Runner) -> None:
    with pytest.raises(LineageError, match=r"^memory_limit='lots': "):
        small_store.sql("SELECT 1", memory_limit="lots")
    assert error(run, "sql", "SELECT 1", "--memory-limit", "lots").startswith("Error: --memory-limit `lots`: ")
    with pytest.raises(LineageError, match=r"and was stopped; raise timeout=SECONDS$"):
        small_store.sql(SLOW, timeout=0.2)
    assert error(run, "sql", SLOW, "--timeout", "0.2").endswith("and was stopped; raise --timeout SECONDS")


def test_user_filter_module(small_store: Store, run: Runner) -> None:
    with pytest.raises(LineageError, match=r"^module= must look like package.module:ClassName, got `nocolon`$"):
        small_store.run_filter("mine", module="nocolon")
    assert error(run, "filter", "run", "mine", "--module", "nocolon") == (
        "Error: --module must look like package.module:ClassName, got `nocolon`")


def test_engine_options(small_store: Store, run: Runner) -> None:
    with pytest.raises(LineageError, match=r"^workers= must be at least 1, got 0$"):
        small_store.run_filter("quality", engine="ray", workers=0)
    assert error(run, "filter", "run", "quality", "--engine", "ray", "--workers", "0") == (
        "Error: --workers must be at least 1, got 0")
    with pytest.raises(LineageError, match=r"^ray_address= goes with engine=ray$"):
        small_store.run_filter("quality", ray_address="auto")
    assert error(run, "filter", "run", "quality", "--ray-address", "auto") == (
        "Error: --ray-address goes with --engine ray")
    with pytest.raises(LineageError, match=r"^workers= goes with engine=ray \(the local engine runs in this"):
        small_store.diversity(workers=2)
    assert error(run, "diversity", "--workers", "2") == (
        "Error: --workers goes with --engine ray (the local engine runs in this process)")


def test_locked_store(small_store: Store, run: Runner) -> None:
    real = str(FIXTURES / "real.jsonl")
    with WriterLock(small_store.root / "lineage.lock"):
        with pytest.raises(LineageError, match=r"retry later or pass wait=SECONDS$"):
            small_store.ingest(real, origin="real", source="again")
        assert error(run, "ingest", real, "--origin", "real", "--source", "again").endswith(
            "retry later or pass --wait SECONDS")


def test_formats(small_store: Store, run: Runner, tmp_path: Path) -> None:
    with pytest.raises(LineageError, match=r"name it .html, .md or .json, or pass format=html\|md\|json$"):
        small_store.report("models", output=tmp_path / "r.txt")
    assert error(run, "report", "models", "--output", str(tmp_path / "r.txt")).endswith(
        "name it .html, .md or .json, or pass --format html|md|json")
    odd = tmp_path / "rows.data"
    odd.write_text('{"text": "a"}\n', encoding="utf-8")
    with pytest.raises(LineageError, match=r"pass input_format=jsonl\|json\|parquet\|csv\|arrow$"):
        small_store.ingest(odd, origin="real", source="odd")
    assert error(run, "ingest", str(odd), "--origin", "real", "--source", "odd").endswith(
        "pass --format jsonl|json|parquet|csv|arrow")


def test_force(small_store: Store, run: Runner) -> None:
    small_store.run_filter("exact-dedup")
    assert small_store.run_filter("exact-dedup").summary().endswith("nothing to do, force=True runs it again")
    assert run("filter", "run", "exact-dedup").stdout.strip().endswith("nothing to do, --force runs it again")


def test_selections_and_retention(small_store: Store, run: Runner, tmp_path: Path) -> None:
    from lineage.sets import create_set
    from lineage.takedown import takedown

    with pytest.raises(LineageError, match=r"^give exactly one of source= or where=$"):
        takedown(small_store, reason="x")
    assert error(run, "takedown", "--reason", "x") == "Error: give exactly one of --source or --where"
    with pytest.raises(LineageError, match=r"^give where= or ids=, not both$"):
        create_set(small_store, "s", where="true", ids=["a"])
    (tmp_path / "ids.txt").write_text("a\n", encoding="utf-8")
    assert error(run, "set", "create", "s", "--where", "true", "--ids", str(tmp_path / "ids.txt")) == (
        "Error: give --where or --ids, not both")
    with pytest.raises(LineageError, match=r"^retain_versions= must be at least 1"):
        small_store.gc(retain_versions=0)
    assert error(run, "gc", "--retain-versions", "0").startswith("Error: --retain-versions must be at least 1")
    with pytest.raises(LineageError, match=r"^no samples selected by where=origin = 'none'$"):
        small_store.diversity(where="origin = 'none'", record=False)
    assert error(run, "diversity", "--where", "origin = 'none'") == (
        "Error: no samples selected by --where origin = 'none'")


def test_errors_keep_their_inputs() -> None:
    from lineage.errors import NotFound, UsageError
    from lineage.filters.base import filter_class
    from lineage.metrics import resolve
    from lineage.report import report_format

    with pytest.raises(NotFound, match=r"^unknown filter `nope`; available: ") as found:
        filter_class("nope")
    assert (found.value.kind, found.value.name) == ("filter", "nope")
    with pytest.raises(UsageError, match=r"^unknown metric `bogus`; choose from ") as usage:
        resolve("distinct,bogus")
    assert (usage.value.option, usage.value.value) == ("metrics", "bogus")
    with pytest.raises(UsageError, match=r"^unknown report format `pdf`") as usage:
        report_format("out.pdf", "pdf")
    assert (usage.value.option, usage.value.value) == ("format", "pdf")
