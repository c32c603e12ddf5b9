"""The store: layout, versions and time travel, format versions, doctor and gc."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURES, Runner, count

from lineage.core import catalog
from lineage.errors import StoreError, StoreFormatError, StoreNotFound
from lineage.store import Store


def test_init_creates_the_layout(store: Store) -> None:
    for sub in ("data/samples", "data/events", "data/features", "builds"):
        assert (store.root / sub).is_dir()
    assert (store.root / "lineage.duckdb").is_file()
    assert store.version == 0
    with pytest.raises(StoreError, match="is already a lineage store"):
        Store.init(store.root)


def test_open_missing_store_says_how_to_create_one(tmp_path: Path, runner: Runner) -> None:
    with pytest.raises(StoreNotFound, match=f"no lineage store at `{tmp_path / 'x'}`: run `lineage init"):
        Store(tmp_path / "x")
    result = Runner(tmp_path / "x")("sql", "SELECT 1", code=1)
    assert (
        result.stderr == f"Error: no lineage store at `{tmp_path / 'x'}`: run `lineage init {tmp_path / 'x'}` first\n"
    )


def test_each_commit_is_a_version_and_as_of_reads_the_past(small_store: Store) -> None:
    assert small_store.version == 4
    assert [count(small_store.at(v)) for v in range(5)] == [0, 600, 900, 1050, 1125]
    commits = small_store.sql("SELECT version, kind FROM commits ORDER BY version").to_pylist()
    assert [c["kind"] for c in commits] == ["init", "ingest", "ingest", "ingest", "ingest"]
    assert small_store.at(2).sql("SELECT count(*) AS n FROM batches")["n"][0].as_py() == 2
    with pytest.raises(StoreError, match=r"as_of=9 is not a version of this store \(0..4\)"):
        small_store.at(9)
    with pytest.raises(StoreError, match="cannot write to a store opened as_of=2"):
        small_store.at(2).ingest(FIXTURES / "real.jsonl", origin="real", source="x")


def test_as_of_on_the_cli(runner: Runner, small_store: Store) -> None:
    out = runner("--as-of", "1", "sql", "SELECT count(*) AS n FROM samples", "--format", "csv").stdout
    assert out == "n\n600\n"


def _set_format(store: Store, value: int) -> None:
    con = duckdb.connect(str(store.catalog_path))
    con.execute(f"UPDATE {catalog.SCHEMA}.meta SET value = ? WHERE key = 'format_version'", [str(value)])
    con.close()


def test_newer_format_is_refused(store: Store) -> None:
    _set_format(store, catalog.FORMAT_VERSION + 1)
    with pytest.raises(StoreFormatError, match=f"has format {catalog.FORMAT_VERSION + 1}, newer than this lineage"):
        Store(store.root)


def test_migration_ladder(store: Store, monkeypatch: pytest.MonkeyPatch, runner: Runner) -> None:
    # A ladder of its own, as if this lineage wrote format 1 (tests/test_identity.py migrates a real format-1 store).
    monkeypatch.setattr(catalog, "FORMAT_VERSION", 1)
    monkeypatch.setattr(catalog, "MIGRATIONS", {})
    _set_format(store, 0)
    with pytest.raises(StoreFormatError, match="has format 0; run `lineage migrate` to upgrade it to 1"):
        Store(store.root)
    result = runner("migrate", code=1)
    assert result.stderr == "Error: no upgrade path from store format 0 to 1\n"

    def step(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"INSERT INTO {catalog.SCHEMA}.meta VALUES ('migrated', 'yes')")

    monkeypatch.setitem(catalog.MIGRATIONS, 0, step)
    assert runner("migrate").stdout == "migrated through formats [1]\n"
    assert Store(store.root).version == 0


def test_doctor_finds_damage_and_orphans(runner: Runner, small_store: Store) -> None:
    assert runner("doctor").stdout.startswith(f"ok: version 4, format {catalog.FORMAT_VERSION}, 4 segments, 1,125 rows")
    orphan = small_store.root / "data" / "samples" / ".tmp-leftover.parquet"
    orphan.write_bytes(b"partial")
    report = runner.json("doctor")
    assert report["ok"] and report["orphans"] == ["data/samples/.tmp-leftover.parquet"]
    segment = sorted((small_store.root / "data" / "samples").glob("0*.parquet"))[0]
    data = bytearray(segment.read_bytes())
    data[100] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = runner("doctor", code=1)
    assert f"problem: segment `data/samples/{segment.name}` does not match its recorded sha256" in result.stdout
    # A query that reads a damaged file says where to look (it once said only "Out of buffer").
    middle = len(data) // 2
    data[middle - 2000 : middle + 2000] = bytes(4000)
    segment.write_bytes(bytes(data))
    err = runner("sql", "SELECT sum(length(text)), sum(length(record::VARCHAR)) FROM samples", code=1).stderr
    assert err.startswith("Error: ") and "`lineage doctor` checks every segment" in err, err
    segment.unlink()
    result = runner("doctor", code=1)
    assert f"problem: segment `data/samples/{segment.name}` is registered but missing" in result.stdout


def test_gc_is_a_dry_run_unless_yes(runner: Runner, small_store: Store) -> None:
    # What an interrupted ingest leaves: a segment named by its batch id, and the batch's scratch folder.
    dead = "0190f0a0-1111-7000-8000-000000000001"
    orphan = small_store.root / "data" / "samples" / f"{dead}.parquet"
    orphan.write_bytes(b"x")
    (small_store.root / "tmp" / dead).mkdir()
    out = runner("gc").stdout
    assert f"would remove: data/samples/{dead}.parquet" in out and "pass --yes to delete" in out
    assert orphan.exists()
    runner("gc", "--yes")
    assert not orphan.exists() and not (small_store.root / "tmp" / dead).exists()
    assert runner.json("doctor")["orphans"] == []
    assert count(small_store) == 1125


def test_stores_are_self_contained_directories(small_store: Store, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    os.rename(small_store.root, moved)
    assert count(Store(moved)) == 1125
    assert Store(moved).doctor().ok


def test_errors_keep_their_inputs(tmp_path: Path) -> None:
    """A caller can tell what was not found, or which option had which value, without parsing the message."""
    from lineage.errors import NotFound, UsageError

    store = Store.init(tmp_path / "store")
    with pytest.raises(NotFound) as missing:
        store.show_set("heldout")
    assert (missing.value.kind, missing.value.name) == ("set", "heldout")
    with pytest.raises(NotFound) as build:
        store.build_version("mix@v2")
    assert (build.value.kind, build.value.name) == ("build", "mix@v2")
    with pytest.raises(UsageError) as bad:
        store.ingest([{"text": "a"}], origin="human", source="s", method="m")
    assert (bad.value.option, bad.value.value) == ("origin", "human")
    assert store.version == 0  # nothing was written
