"""Fixed costs: no heavy library is imported on a path that does not use it (each checked in a fresh interpreter,
as a user's command starts), and band selection needs no datasketch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Runner

from lineage.errors import LineageError
from lineage.store import Store

HEAVY = ("scipy", "polars", "torch", "sentence_transformers", "ray", "datasketch", "sklearn", "pandas")

# Runs the CLI in this interpreter with `args`, then prints the heavy packages it imported.
PROBE = """
import json, os, sys
from lineage.cli import run
run(sys.argv[1:])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))), file=sys.stderr)
sys.stderr.flush()
os._exit(0)  # as `lineage` ends (cli._end): DuckDB can abort in the interpreter's teardown
"""


def heavy_imports(*args: str, code: str = PROBE, allow: tuple[str, ...] = ()) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}", *args], capture_output=True, text=True, check=True
    )
    return [name for name in json.loads(done.stderr.strip().splitlines()[-1]) if name not in allow]


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code = "import json, os, sys\nimport lineage.cli\n" + PROBE.split("run(sys.argv[1:])\n", 1)[1]
    assert heavy_imports(code=code) == []


@pytest.mark.parametrize("args", [["--help"], ["sql", "--help"], ["filter", "run", "--help"], ["build", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    assert heavy_imports(*args) == []


def test_commands_import_only_what_they_use(small_store: Store) -> None:
    root = str(small_store.root)
    assert heavy_imports("--store", root, "sql", "SELECT count(*) FROM samples") == []
    assert heavy_imports("--store", root, "stats") == []
    assert heavy_imports("--store", root, "runs") == []
    assert heavy_imports("--store", root, "show", "--help") == []
    # MinHash, LSH bands and clusters are numpy only: no datasketch, no scipy; and no pandas, which pyarrow's first
    # `pa.array` would import (`skip_pandas_probe`).
    assert heavy_imports("--store", root, "filter", "run", "near-dedup") == []
    assert heavy_imports("filter", "list") == []  # opens no store: its table once probed pandas (0.3 s)


# What a command loads besides the heavy libraries: its own CLI module only, one filter module, no pydantic, no
# pyarrow.fs for a local store.
LOADED = """
import json, os, sys
from lineage.cli import run
run(sys.argv[1:])
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.stderr.flush()
os._exit(0)  # as `lineage` ends (cli._end): DuckDB can abort in the interpreter's teardown
"""


def loaded_modules(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=True)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_query_loads_only_its_own_command_module(small_store: Store) -> None:
    loaded = loaded_modules("--store", str(small_store.root), "sql", "SELECT 1")
    assert {m for m in loaded if m.startswith("lineage.cli.")} == {"lineage.cli.common", "lineage.cli.query"}
    assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "pandas", "rich")}
    assert "pyarrow.fs" not in loaded and "lineage.filters" not in loaded


def test_a_filter_run_loads_only_its_filter(small_store: Store) -> None:
    loaded = loaded_modules("--quiet", "--store", str(small_store.root), "filter", "run", "exact-dedup")
    filters = {m.split(".")[2] for m in loaded if m.startswith("lineage.filters.")}
    assert "exact_dedup" in filters
    assert not filters & {"near_dedup", "semantic_dedup", "quality", "contamination", "builtin"}


def test_near_dedup_reads_its_files_without_pyarrow_dataset(small_store: Store) -> None:
    """pq.read_table imports pyarrow.dataset (~0.3 CPU-s); a run, a re-run over cached signatures and an
    incremental one read single files with pq.ParquetFile."""
    root = str(small_store.root)
    for args in (["near-dedup"], ["near-dedup", "--force"], ["near-dedup", "--new"]):
        assert "pyarrow.dataset" not in loaded_modules("--quiet", "--store", root, "filter", "run", *args), args


def test_the_lazy_maps_name_every_command_and_filter() -> None:
    import importlib

    from lineage.cli import COMMAND_MODULES
    from lineage.filters.base import BUILTINS
    from lineage.filters.builtin import registry

    for name, module in COMMAND_MODULES.items():
        defined = importlib.import_module(f"lineage.cli.{module}").COMMANDS
        assert name in {command.name for command in defined}, name
    modules = {path.stem for path in (Path(__file__).parent.parent / "lineage" / "cli").glob("*.py")} - {
        "__init__", "common"}
    assert {c.name for m in modules for c in importlib.import_module(f"lineage.cli.{m}").COMMANDS} == set(
        COMMAND_MODULES)
    # every built-in filter, as builtin.py lists them
    builtins = {name: cls.__module__ for name, cls in registry().items() if cls.__module__.startswith("lineage.")}
    assert builtins == {name: f"lineage.filters.{module}" for name, module in BUILTINS.items()}


def test_typos_are_still_suggested_among_every_command(runner: Runner) -> None:
    assert "Did you mean 'sql'?" in runner("sqll", code=2).stderr
    assert "Did you mean one of: 'ingest', 'init'?" in runner("ingst", code=2).stderr


def test_pyarrow_still_converts_pandas_after_the_skipped_probe() -> None:
    """The probe `skip_pandas_probe` skips leaves pyarrow able to convert pandas objects later in the process."""
    pytest.importorskip("pandas")
    code = (
        "import sys, pyarrow as pa\nfrom lineage.cli.common import skip_pandas_probe\nskip_pandas_probe()\n"
        "assert 'pandas' not in sys.modules\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', None]})\n"
        "assert pa.table(df).to_pylist() == [{'a': 1, 'b': 'x'}, {'a': 2, 'b': None}]\n"
        "assert pa.array(df['a']).to_pylist() == [1, 2]\nassert pa.Table.from_pandas(df).num_rows == 2\n"
        "assert pa.table({'a': [1]}).to_pandas().shape == (1, 1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_datasketch_in_the_band_choice(tmp_path: Path) -> None:
    code = (
        "import json, os, sys\nfrom lineage.features import minhash\nminhash.bands(0.8, 128)\n"
        "minhash._optimal_bands(0.8, 128, minhash.CANDIDATE_WEIGHTS)\n" + PROBE.split("run(sys.argv[1:])\n", 1)[1]
    )
    assert heavy_imports(code=code) == []


def test_a_query_opens_the_catalog_once_and_reads_no_segment_it_does_not_name(
    small_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    started: list[str] = []
    connect = duckdb.connect

    def counted(database: str = ":memory:", *args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        started.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counted)
    store = Store(small_store.root)
    assert store.sql("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    assert started == [":memory:"]  # one DuckDB instance: the open's catalog read and the query's copy share it
    # No view over segments unless the query names one: a lost segment fails only the queries that read samples.
    (small_store.root / store.sql("SELECT path FROM segments LIMIT 1")["path"][0].as_py()).unlink()
    assert Store(small_store.root).sql("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 0}]
    with pytest.raises(LineageError):
        Store(small_store.root).sql("SELECT count(*) FROM samples")


def test_views_a_query_names_and_what_they_read(small_store: Store) -> None:
    from lineage.core import catalog

    assert catalog.views_named("SELECT 1") == set()
    assert catalog.views_named("SELECT * FROM Status JOIN descendants('x') USING (sample_id)") == {
        "status", "descendants"}
    # status reads the runs since each filter's last full run, and their events segments (made by create_views)
    assert catalog._with_inputs({"status"}) == {"status", "_status_runs", "_status_base", "_status_tail", "runs",
                                                "commits"}
    assert catalog.views_named("SELECT view_name FROM duckdb_views()") is None  # listing: every view
    listed = small_store.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")["view_name"]
    assert {"samples", "events", "status", "lineage_edges", "build_members"} <= set(listed.to_pylist())
    first = small_store.sql("SELECT sample_id FROM samples ORDER BY sample_id LIMIT 1")["sample_id"][0].as_py()
    assert small_store.sql("SELECT count(*) AS n FROM ancestors(?)", params=[first]).to_pylist() == [{"n": 0}]
