"""Fixed costs: no heavy library is imported on a path that does not use it (each checked in a fresh interpreter,
as a user's command starts), and band selection needs no datasketch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lineage.errors import LineageError
from lineage.store import Store

HEAVY = ("scipy", "polars", "torch", "sentence_transformers", "ray", "datasketch", "sklearn", "pandas")

# Runs the CLI in this interpreter with `args`, then prints the heavy packages it imported.
PROBE = """
import json, sys
from lineage.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))), file=sys.stderr)
"""


def heavy_imports(*args: str, code: str = PROBE, allow: tuple[str, ...] = ()) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}", *args], capture_output=True, text=True, check=True
    )
    return [name for name in json.loads(done.stderr.strip().splitlines()[-1]) if name not in allow]


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code = "import json, sys\nimport lineage.cli\n" + PROBE.split("pass\n", 1)[1]
    assert heavy_imports(code=code) == []


@pytest.mark.parametrize("args", [["--help"], ["sql", "--help"], ["filter", "run", "--help"], ["build", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    assert heavy_imports(*args) == []


def test_commands_import_only_what_they_use(small_store: Store) -> None:
    root = str(small_store.root)
    assert heavy_imports("--store", root, "sql", "SELECT count(*) FROM samples") == []
    assert heavy_imports("--store", root, "stats") == []
    assert heavy_imports("--store", root, "runs") == []
    # MinHash, LSH bands and clusters are numpy only: no datasketch, no scipy. (pyarrow imports pandas, when it is
    # installed, at its first `pa.array`: its pandas shim checks whether a value is a pandas object.)
    assert heavy_imports("--store", root, "filter", "run", "near-dedup", allow=("pandas",)) == []


def test_no_datasketch_in_the_band_choice(tmp_path: Path) -> None:
    code = (
        "import json, sys\nfrom lineage.features import minhash\nminhash.bands(0.8, 128)\n"
        "minhash._optimal_bands(0.8, 128, minhash.CANDIDATE_WEIGHTS)\n" + PROBE.split("pass\n", 1)[1]
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
    assert catalog._with_inputs({"status"}) == {"status", "events", "_events", "runs"}
    assert catalog.views_named("SELECT view_name FROM duckdb_views()") is None  # listing: every view
    listed = small_store.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")["view_name"]
    assert {"samples", "events", "status", "lineage_edges", "build_members"} <= set(listed.to_pylist())
    first = small_store.sql("SELECT sample_id FROM samples ORDER BY sample_id LIMIT 1")["sample_id"][0].as_py()
    assert small_store.sql("SELECT count(*) AS n FROM ancestors(?)", params=[first]).to_pylist() == [{"n": 0}]
