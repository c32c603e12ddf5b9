"""near-dedup and exact-dedup out of core (`lineage.filters.near_dedup_bounded`, `lineage.filters.bounded`): the
in-memory algorithms' decisions, in bounded memory, spilling to STORE/tmp, and the faults of spilling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from lineage.filters.base import BASE_COLUMNS, SelectionContext
from lineage.filters.near_dedup import NearDedupFilter, NearDedupParams
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
from neardups import documents

COLUMNS = ["sample_id", "decision", "score", "reason", "related_id", "cluster_id"]


def planted(store: Store, n: int, *, words: int = 60, dup_rate: float = 0.3, seed: int = 0) -> Store:
    store.ingest(list(documents(n, words=words, dup_rate=dup_rate, seed=seed)), source="planted", method="edit")
    return store


def recorded(store: Store) -> list[dict]:
    return store.sql(
        f"SELECT {', '.join(COLUMNS)} FROM status WHERE filter = 'near-dedup' ORDER BY sample_id"
    ).to_pylist()


def in_memory(store: Store, params: dict | None = None) -> list[dict]:
    """Today's algorithm: the whole selection in one table, `decide_all`."""
    flt = NearDedupFilter(NearDedupParams(**(params or {})))
    columns = ", ".join(dict.fromkeys([*BASE_COLUMNS, "text"]))
    features = store.sql(f"SELECT {columns} FROM samples ORDER BY sample_id")
    return flt.decide_all(features, SelectionContext(store, "reference")).select(COLUMNS).to_pylist()


def same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert {k: v for k, v in g.items() if k != "score"} == {k: v for k, v in w.items() if k != "score"}
        assert (g["score"] is None) == (w["score"] is None)
        assert g["score"] is None or g["score"] == pytest.approx(w["score"], abs=1e-12)


@pytest.mark.parametrize(("n", "params"), [(700, {}), (6_000, {}), (3_000, {"threshold": 0.6, "ngram": 3})])
def test_the_decisions_are_those_of_the_in_memory_algorithm(store: Store, n: int, params: dict) -> None:
    planted(store, n)
    # 24MB: a quarter of it holds fewer than 700 samples' signatures, so the run goes out of core.
    result = store.run_filter("near-dedup", params=params, memory_limit="24MB")
    got = recorded(store)
    assert result.dropped > n // 10 and result.selected == n
    assert "out of core" in result.note
    same(got, in_memory(store, params))
    # Again over the signatures cached by the first run: the same decisions.
    store.run_filter("near-dedup", params=params, force=True, memory_limit="24MB")
    same(recorded(store), got)


def test_a_selection_that_fits_is_decided_in_memory_alike(store: Store) -> None:
    """The default limit holds 3,000 short documents many times over: no scratch database, the same decisions."""
    planted(store, 3_000)
    result = store.run_filter("near-dedup")
    assert "out of core" not in result.note and result.dropped > 300
    got = recorded(store)
    same(got, in_memory(store))
    store.run_filter("near-dedup", force=True, memory_limit="24MB")
    same(recorded(store), got)


def test_a_small_memory_limit_spills_and_decides_the_same(store: Store) -> None:
    planted(store, 20_000, words=40, dup_rate=0.3)
    result = store.run_filter("near-dedup", memory_limit="24MB")
    assert "MB spilled to disk at most" in result.note, result.note
    same(recorded(store), in_memory(store))
    assert not list((store.root / "tmp").iterdir())  # the spill folder went with the run


def test_drops_by_source_are_counted(store: Store) -> None:
    planted(store, 700)
    result = store.run_filter("near-dedup")
    assert sum(r["n"] for r in result.by_source) == 700
    assert sum(r["n"] for r in result.by_source if r["decision"] == "drop") == result.dropped > 0
    assert {r["source"] for r in result.by_source} == {"planted"}


def test_an_empty_selection_decides_nothing(store: Store) -> None:
    planted(store, 50)
    result = store.run_filter("near-dedup", where="false")
    assert (result.selected, result.kept, result.dropped) == (0, 0, 0)
    assert store.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]


def test_a_bad_memory_limit_is_one_line(store: Store) -> None:
    from lineage.errors import LineageError

    with pytest.raises(LineageError, match=r"^memory_limit='lots': must look like 512MB or 2GB$"):
        store.run_filter("near-dedup", memory_limit="lots")


def test_texts_join_with_64_bit_offsets() -> None:
    from lineage.features.minhash import signatures

    texts = ["one two three four five six", "one two three four five seven"]
    assert (signatures(pa.array(texts, pa.large_string())) == signatures(pa.array(texts))).all()


def spill_files(store: Store) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in (store.root / "tmp").rglob("*") if p.is_file())


def run_cli(store: Store, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "lineage", "--store", str(store.root), *args],
        capture_output=True, text=True, env=clean | env, timeout=600,
    )


@pytest.mark.parametrize("cleanup", ["next run", "gc"])
def test_a_run_killed_while_spilling_leaves_no_spill_files_after_the_next_run_or_gc(store: Store, cleanup: str) -> None:
    planted(store, 20_000, words=40, dup_rate=0.3)
    proc = run_cli(store, "filter", "run", "near-dedup", "--memory-limit", "24MB",
                   LINEAGE_CRASH_AT="near_dedup_spilled")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = spill_files(store)
    assert any("/spill/" in p for p in left), left  # killed with its spill files on disk
    assert store.sql("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 0}]
    if cleanup == "gc":
        store.gc(dry_run=False)
    else:
        store.run_filter("near-dedup", memory_limit="24MB")
        assert store.sql("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]
    assert spill_files(store) == []


def test_a_disk_that_fills_while_spilling_is_one_line_and_records_nothing(store: Store) -> None:
    planted(store, 20_000, words=40, dup_rate=0.3)
    version = store.version
    # The spill folder may hold 256 KB (one block): DuckDB fails as it does on a full disk, before this one fills.
    proc = run_cli(store, "filter", "run", "near-dedup", "--memory-limit", "24MB", LINEAGE_SPILL_LIMIT="256KB")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: near-dedup: the disk filled while spilling to `"), lines
    assert lines[0].endswith("free space there and run it again (nothing was recorded)")
    assert Store(store.root).version == version
    assert store.sql("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 0}]
    assert spill_files(store) == []
    assert not list((store.root / "data" / "events").iterdir())


@pytest.mark.slow
def test_a_50_mb_document_in_the_selection(store: Store) -> None:
    """One document of 50 MB and an edited copy of it among ordinary ones: hashed, verified and dropped like any."""
    rng = np.random.default_rng(7)
    vocab = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
                      "lambda", "omicron", "sigma", "upsilon", "omega"])
    words = vocab[rng.integers(0, len(vocab), 8_500_000)]
    big = " ".join(words.tolist())
    words[::1000] = "changed"
    records = [{"id": "big", "text": big}, {"id": "big-copy", "text": " ".join(words.tolist())}]
    records += list(documents(500, words=60, dup_rate=0.2))
    assert len(big) > 50_000_000
    store.ingest(records, source="planted", origin="real", max_record_bytes=128 << 20, memory_limit="2GB")
    result = store.run_filter("near-dedup", memory_limit="256MB")
    got = {r["sample_id"]: r for r in recorded(store)}
    rows = store.sql("SELECT external_id, sample_id FROM samples WHERE external_id LIKE 'big%'").to_pylist()
    ids = {r["external_id"]: r["sample_id"] for r in rows}
    assert got[ids["big"]]["decision"] == "keep"
    assert got[ids["big-copy"]]["decision"] == "drop" and got[ids["big-copy"]]["related_id"] == ids["big"]
    assert result.selected == 502


def test_exact_dedup_out_of_core_decides_as_in_memory(store: Store) -> None:
    from lineage.filters.exact_dedup import ExactDedupFilter

    planted(store, 20_000, words=20, dup_rate=0.3)  # a tenth of the planted copies are exact
    result = store.run_filter("exact-dedup", memory_limit="64MB")
    assert result.dropped > 300 and "out of core" in result.note
    got = store.sql(f"SELECT {', '.join(COLUMNS)} FROM status WHERE filter = 'exact-dedup' ORDER BY sample_id")
    features = store.sql(f"SELECT {', '.join(BASE_COLUMNS)} FROM samples ORDER BY sample_id")
    want = ExactDedupFilter(ExactDedupFilter.Params()).decide_all(features, SelectionContext(store, "reference"))
    assert got.to_pylist() == want.select(COLUMNS).to_pylist()
    assert sum(r["n"] for r in result.by_source if r["decision"] == "drop") == result.dropped


def test_contamination_out_of_core_decides_as_in_memory(store: Store) -> None:
    from lineage.filters.contamination import ContaminationFilter
    from lineage.sets import create_set

    planted(store, 3_000, words=60, dup_rate=0.2)
    create_set(store, "heldout", where="external_id < 'd000000300'", protected=True)
    result = store.run_filter("contamination")
    assert result.dropped > 20
    got = store.sql(f"SELECT {', '.join(COLUMNS)} FROM status WHERE filter = 'contamination' ORDER BY sample_id")
    features = store.sql("SELECT sample_id, text, content_hash FROM samples ORDER BY sample_id")
    flt = ContaminationFilter(ContaminationFilter.Params())
    want = flt.decide_all(features, SelectionContext(store, "reference")).sort_by("sample_id")
    assert got.to_pylist() == want.select(COLUMNS).to_pylist()
    assert sum(r["n"] for r in result.by_source if r["decision"] == "drop") == result.dropped


def test_sample_filters_are_streamed_and_count_by_source(store: Store) -> None:
    planted(store, 2_000, words=30)
    result = store.run_filter("sql", params={"where": "length(text) < 30", "reason": "too_short"})
    dropped = store.sql("SELECT count(*) AS n FROM samples WHERE length(text) < 30").to_pylist()[0]["n"]
    assert result.dropped == dropped > 0 and result.selected == 2_000
    assert result.by_source == [
        {"source": "planted", "decision": "drop", "reason": "too_short", "n": dropped},
        {"source": "planted", "decision": "keep", "reason": None, "n": 2_000 - dropped},
    ]
    assert (store.root / "data" / "events" / f"{result.run_id}.parquet").is_file()


@pytest.mark.parametrize("name", ["exact-dedup", "near-dedup"])
def test_a_memory_limit_too_small_to_work_in_is_one_line(store: Store, tmp_path: Path, name: str) -> None:
    """At 1MB DuckDB cannot even commit the scratch table of 2,000 chats, Alpaca records and documents: one line
    naming the limit, exit status 1, nothing recorded; never DuckDB's traceback."""
    import realistic

    from lineage.cli import cli

    realistic.write(realistic.make(seed=5, n=400), tmp_path)
    for shape in ("chat", "sharegpt", "inst"):
        store.ingest(tmp_path / f"{shape}.jsonl", origin="synthetic", source=shape, generation=1)
    store.ingest(tmp_path / "alpaca.json", origin="synthetic", source="alpaca", generation=1)
    store.ingest(tmp_path / "docs.jsonl", origin="real", source="web")
    result = CliRunner().invoke(cli, ["--store", str(store.root), "filter", "run", name, "--memory-limit", "1MB"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {name}: ran out of its memory limit (1MB) (")
    assert result.output.count("\n") == 1 and result.output.endswith("(nothing was recorded)\n")
    assert store.runs(name).num_rows == 0
