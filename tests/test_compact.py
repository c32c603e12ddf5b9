"""Compaction: one atomic commit that merges small segments; time travel unchanged; gc with a retention; crash
safety (SIGKILL at each step of `lineage compact`); the lock; the automatic policy; the format-3 migration."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, Runner, fill_small_store, templated

from lineage.compaction import ROW_GROUP, SegmentInfo, due
from lineage.core import catalog
from lineage.core.handle import LOCK_FILE
from lineage.core.lock import WriterLock
from lineage.errors import IngestError, StoreError, StoreLocked
from lineage.ingest.lookup import LIST_MAX
from lineage.store import Store

RNG_SEED = 20261206
WORDS = ["model", "data", "lineage", "sample", "real", "synthetic", "filter", "build", "quota", "parent", "corpus"]


def chat_rows(batch: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Chat records with ids, some sharing an answer (identical short texts), as a pipeline appends them."""
    rows = []
    for i in range(n):
        answer = "Yes." if i % 7 == 0 else " ".join(rng.choice(WORDS) for _ in range(12))
        rows.append({"id": f"b{batch}-{i}", "messages": [
            {"role": "user", "content": f"Question {batch}.{i}: {' '.join(rng.choice(WORDS) for _ in range(6))}?"},
            {"role": "assistant", "content": answer},
        ]})
    return rows


def grown_store(root: Path, batches: int = 6) -> Store:
    """The small store (real + three synthetic generations), then `batches` small chat ingests and two filter
    runs: many small segments of both kinds. Automatic compaction is off, so the test decides when to merge.
    Built once per pytest run for each `batches`, then copied (see `conftest.templated`)."""
    return templated(Store.init(root), lambda store: grow(store, batches), key=f"test_compact.grown-{batches}")


def grow(store: Store, batches: int) -> Store:
    store.set_auto_compact(None)
    fill_small_store(store)
    rng = random.Random(RNG_SEED)
    store.run_filter("exact-dedup")
    for b in range(batches):
        store.ingest(chat_rows(b, 40, rng), origin="synthetic", source="chat-v1", generation=1)
    store.run_filter("exact-dedup")
    store.run_filter("quality")
    return store


SNAPSHOT = {
    "samples": "SELECT * FROM samples ORDER BY sample_id",
    "events": "SELECT * FROM events ORDER BY run_id, sample_id",
    "status": "SELECT * FROM status ORDER BY filter, sample_id",
    "edges": "SELECT * FROM lineage_edges ORDER BY ALL",
}


def snapshot(store: Store) -> dict[str, list[dict[str, Any]]]:
    """What a reader sees, in a fixed order: every sample column, the events, the status, the edges. One reader
    (the views `store.sql` reads) for the four queries: its catalog copy is most of a query's cost here."""
    with store.reader() as con:
        return {name: con.sql(query).to_arrow_table().to_pylist() for name, query in SNAPSHOT.items()}


def every_version(store: Store) -> dict[int, dict[str, list[dict[str, Any]]]]:
    return {v: snapshot(store.at(v)) for v in range(store.version + 1)}


def live_files(store: Store, kind: str) -> list[str]:
    return store.sql("SELECT path FROM segments WHERE kind = ? ORDER BY path", params=[kind])["path"].to_pylist()


def test_compact_is_one_commit_and_every_version_reads_as_before(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store")
    before = every_version(store)
    latest = store.version
    assert len(live_files(store, "samples")) == 10 and len(live_files(store, "events")) == 3

    result = store.compact()
    assert result.version == latest + 1 == store.version
    # The three ingests with parents wrote an edges segment each (`lineage.core.edges`), merged like the others.
    assert result.merged == {"samples": 10, "events": 3, "edges": 3}
    assert result.written == {"samples": 1, "events": 1, "edges": 1}
    assert result.rows["samples"] == 1125 + 6 * 40
    assert len(live_files(store, "samples")) == 1 and len(live_files(store, "events")) == 1
    # Every earlier version reads exactly what it read before; the new one what the latest read.
    assert every_version(store) == {**before, latest + 1: before[latest]}
    commit = store.sql("SELECT kind, summary FROM commits WHERE version = ?", params=[latest + 1]).to_pylist()[0]
    assert commit["kind"] == "compact"
    assert json.loads(commit["summary"])["merged"] == {"samples": 10, "events": 3, "edges": 3}

    report = store.doctor()
    assert report.ok and report.orphans == [] and report.segments == 2
    assert report.rows == 1125 + 240 + sum(len(before[latest][k]) for k in ("events",))
    assert store.compact().version is None  # one segment per kind: nothing to merge


def test_compacted_segments_are_sorted_with_prunable_row_groups(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store")
    store.compact(kinds=("samples",), target_rows=700)
    paths = live_files(store, "samples")
    assert len(paths) == 2  # 1,365 rows in segments of 700 and 665
    ids: list[str] = []
    for rel in paths:
        meta = pq.ParquetFile(store.root / rel).metadata
        assert all(meta.row_group(i).num_rows <= ROW_GROUP for i in range(meta.num_row_groups))
        stats = meta.row_group(0).column(0).statistics
        assert stats.has_min_max
        ids += pq.read_table(store.root / rel, columns=["sample_id"])["sample_id"].to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == 1365  # sorted within and across segments, none lost or doubled
    one = ids[700]
    found = store.sql("SELECT sample_id FROM samples WHERE sample_id = ?", params=[one]).to_pylist()
    assert found == [{"sample_id": one}]


def test_a_reader_copies_what_its_version_reads_not_the_history(tmp_path: Path) -> None:
    """A query's copy of the catalog holds the segments its version reads and, unless it names `commits`, one
    commit: its cost does not grow with the commits and replaced segments behind it. A query of the catalog's
    own tables sees them whole."""
    store = grown_store(tmp_path / "store")
    first = store.version
    store.compact()
    registered = store.sql("SELECT count(*) AS n FROM _lineage.segments")["n"][0].as_py()
    assert registered == 10 + 3 + 3 + 3  # 10 samples, 3 events and 3 edges segments replaced by one of each
    for reader, version, live in ((store, store.version, 3), (store.at(first), first, 16)):
        with reader.reader(views={"samples"}) as con:
            assert con.execute("SELECT count(*) FROM _lineage.segments").fetchall()[0][0] == live
            assert con.execute("SELECT list(version) FROM _lineage.commits").fetchall()[0][0] == [store.version]
        counts = reader.sql("SELECT (SELECT count(*) FROM segments) AS s, (SELECT count(*) FROM commits) AS c")
        assert counts.to_pylist() == [{"s": live, "c": version + 1}]


def test_gc_keeps_every_retained_version(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store")
    store.compact()
    rng = random.Random(7)
    for b in range(10, 13):
        store.ingest(chat_rows(b, 30, rng), origin="synthetic", source="chat-v2", generation=1)
    store.compact()
    versions = every_version(store)
    latest = store.version
    files_before = set(store.root.glob("data/*/*.parquet"))

    # Without a retention, gc removes nothing registered: every version stays readable.
    assert store.gc(dry_run=False) == []
    assert every_version(store) == versions

    listed = store.gc(dry_run=True, retain_versions=5)
    assert listed and set(store.root.glob("data/*/*.parquet")) == files_before  # a dry run deletes nothing
    removed = store.gc(dry_run=False, retain_versions=5)
    assert removed == listed
    cutoff = latest - 4
    for v in range(cutoff, latest + 1):
        assert snapshot(store.at(v)) == versions[v], f"version {v} changed after gc"
    with pytest.raises(StoreError, match=rf"as_of={cutoff - 1}: `lineage gc` removed the segments of versions "
                                         rf"before {cutoff}"):
        store.at(cutoff - 1)
    gone = files_before - set(store.root.glob("data/*/*.parquet"))
    assert {str(p.relative_to(store.root)) for p in gone} == set(removed)
    report = store.doctor()
    assert report.ok and report.orphans == []

    # --older-than: every version is recent, so nothing more goes; 0 s keeps only the latest.
    assert store.gc(dry_run=False, older_than=3600) == []
    store.gc(dry_run=False, older_than=0)
    assert snapshot(store) == versions[latest]
    assert store.doctor().ok


def test_compact_and_gc_on_the_cli(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store")
    runner = Runner(store.root)
    out = runner("compact").stdout
    assert out == f"compacted samples: 10 segments -> 1 (1,365 rows); events: 3 segments -> 1 (3,855 rows); " \
                  f"edges: 3 segments -> 1 (1,050 rows) (version {store.version})\n"
    assert runner("compact").stdout == "nothing to compact\n"
    assert runner("gc").stdout == "would remove 0 file(s)\n"
    out = runner("gc", "--retain-versions", "1").stdout
    assert out.count("would remove: data/") == 16 and out.endswith("would remove 16 file(s); pass --yes to delete\n")
    assert out.count("would remove: data/edges/") == 3
    assert runner("gc", "--yes", "--older-than", "0s").stdout.endswith("removed 16 file(s)\n")
    assert "not a duration" in runner("gc", "--older-than", "soon", code=2).stderr
    assert runner("--as-of", "1", "sql", "SELECT 1", code=1).stderr.startswith(
        "Error: --as-of 1: `lineage gc` removed the segments of versions before"
    )


def test_ingest_after_compaction_finds_ids_texts_and_parents(tmp_path: Path) -> None:
    """Lookups through compacted segments (sorted, with Bloom filters): a re-ingest stores nothing, a repeated
    text is counted as a duplicate, parents resolve by external id and by SOURCE:ID, unknown ones are refused."""
    store = Store.init(tmp_path / "store")
    store.set_auto_compact(None)
    fill_small_store(store)
    store.compact()
    assert len(live_files(store, "samples")) == 1
    again = store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet", method="human")
    assert (again.rows_stored, again.rows_present) == (0, 600)

    stored = store.sql("SELECT external_id, text FROM samples WHERE source = 'wordnet' ORDER BY external_id LIMIT 2")
    (first, text), (second, _) = [tuple(r.values()) for r in stored.to_pylist()]
    children = write_jsonl(tmp_path / "children.jsonl", [
        {"id": "c1", "text": "A paraphrase of the first.", "parent_id": first},
        {"id": "c2", "text": "A paraphrase of the second.", "parent_id": f"wordnet:{second}"},
        {"id": "c3", "text": text, "parent_id": first},  # the same text as a stored sample: a duplicate
    ])
    result = store.ingest(children, origin="synthetic", source="para", generator="m", parent_field="parent_id")
    assert (result.rows_stored, result.rows_duplicate) == (3, 1)
    parents = store.sql("SELECT external_id, generation, parent_ids FROM samples WHERE source = 'para' ORDER BY 1")
    rows = store.sql("SELECT external_id, sample_id FROM samples WHERE source = 'wordnet'").to_pylist()
    ids = {r["external_id"]: r["sample_id"] for r in rows}
    assert [(r["external_id"], r["generation"], r["parent_ids"]) for r in parents.to_pylist()] == [
        ("c1", 1, [ids[first]]), ("c2", 1, [ids[second]]), ("c3", 1, [ids[first]])
    ]
    orphan = write_jsonl(tmp_path / "orphan.jsonl", [{"id": "o1", "text": "No parent here.", "parent_id": "nowhere"}])
    with pytest.raises(IngestError, match="unknown parent `nowhere`"):
        store.ingest(orphan, origin="synthetic", source="para", generator="m", parent_field="parent_id")


@pytest.mark.parametrize("plan", ["list", "semi-join"])
def test_ingest_lookups_past_the_list_size_read_only_matches(
    plan: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input with more keys than `LIST_MAX` (ids, texts and parent references) resolves exactly as a small one:
    the semi-join plan gives what the list plan gives, on compacted and on fresh segments alike."""
    if plan == "list":
        monkeypatch.setattr(sys.modules["lineage.ingest.lookup"], "LIST_MAX", 10**9)
    store = Store.init(tmp_path / "store")
    store.set_auto_compact(None)
    rng = random.Random(RNG_SEED)
    first = [chat_rows(b, 600, rng) for b in range(4)]
    for rows in first[:3]:
        store.ingest(rows, origin="real", source="chat")
    store.compact()
    store.ingest(first[3], origin="real", source="chat")  # a fresh segment beside the compacted one
    stored = store.sql("SELECT external_id, sample_id, text FROM samples").to_pylist()
    ids = {r["external_id"]: r["sample_id"] for r in stored}
    assert len(ids) == 2_400 > LIST_MAX

    # 2,100 new: 1,500 children of stored samples by id, by external id or by SOURCE:ID, 300 repeating their parent's
    # text, 300 children of new rows of this input; then the 2,400 stored records again.
    again = [row for rows in first for row in rows]
    refs = [(ids[f"b{i % 4}-{i // 4}"], f"b{i % 4}-{i // 4}", f"chat:b{i % 4}-{i // 4}")[i % 3] for i in range(1_500)]
    kids = [{"id": f"k{i}", "text": f"A paraphrase, number {i}.", "parent": [refs[i]]} for i in range(1_500)]
    same = [{"id": f"s{i}", "text": stored[i]["text"], "parent": [stored[i]["sample_id"]]} for i in range(300)]
    grand = [{"id": f"g{i}", "text": f"A paraphrase of paraphrase {i}.", "parent": [f"k{i}"]} for i in range(300)]
    path = write_jsonl(tmp_path / "mixed.jsonl", kids + same + grand)
    result = store.ingest(path, origin="synthetic", source="para", generator="m", parent_field="parent")
    assert (result.rows_stored, result.rows_present, result.rows_duplicate) == (2_100, 0, 300)
    repeat = store.ingest(again, origin="real", source="chat")
    assert (repeat.rows_stored, repeat.rows_present) == (0, 2_400)
    gens = store.sql(
        "SELECT left(external_id, 1) AS kind, generation, count(*) AS n FROM samples WHERE source = 'para' "
        "GROUP BY ALL ORDER BY ALL"
    ).to_pylist()
    assert gens == [{"kind": "g", "generation": 2, "n": 300}, {"kind": "k", "generation": 1, "n": 1_500},
                    {"kind": "s", "generation": 1, "n": 300}]
    parents = store.sql("SELECT external_id, parent_ids FROM samples WHERE external_id LIKE 'k%'").to_pylist()
    expect = {f"k{i}": [ids[f"b{i % 4}-{i // 4}"]] for i in range(1_500)}
    assert {r["external_id"]: r["parent_ids"] for r in parents} == expect

    clash = [{"id": r["id"], "messages": [r["messages"][0], {"role": "assistant", "content": "Other text."}]}
             for r in again[:2_100]]
    with pytest.raises(IngestError, match=r"is already sample \w+ \(line \d+ of <python>\) with other text"):
        store.ingest(clash, origin="real", source="chat")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_compact_with_a_concurrent_writer_fails_with_the_lock_message(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store", batches=2)
    with WriterLock(store.root / LOCK_FILE):
        with pytest.raises(StoreLocked, match="store is locked by pid"):
            store.compact()
        err = Runner(store.root)("compact", code=1).stderr
        assert err.startswith(f"Error: store is locked by pid {os.getpid()}")
    assert store.compact().version == store.version  # once the writer is gone, it runs


def test_compact_with_wait_runs_once_the_writer_is_done(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store", batches=2)
    before = store.version
    held = threading.Event()

    def writer() -> None:
        with WriterLock(store.root / LOCK_FILE):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait()
    started = time.monotonic()
    out = Runner(store.root)("--wait", "60", "compact").stdout
    thread.join()
    assert time.monotonic() - started >= 1.0 and out.startswith("compacted samples:")
    assert store.version == before + 1


def test_automatic_policy_merges_a_full_tier_and_can_be_turned_off(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "store")
    runner = Runner(store.root)
    assert runner("compact", "--auto", "4").stdout == "automatic compaction: merge 4 segments per tier\n"
    rng = random.Random(3)
    for b in range(3):
        store.ingest(chat_rows(b, 10, rng), origin="real", source="chat")
    assert len(live_files(store, "samples")) == 3
    store.ingest(chat_rows(3, 10, rng), origin="real", source="chat")  # the 4th 10-row segment fills tier 1
    assert len(live_files(store, "samples")) == 1
    kinds = store.sql("SELECT kind FROM commits ORDER BY version")["kind"].to_pylist()
    assert kinds == ["init", "ingest", "ingest", "ingest", "ingest", "compact"]
    assert store.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 40

    assert runner("compact", "--auto", "off").stdout == "automatic compaction: off\n"
    for b in range(4, 9):
        store.ingest(chat_rows(b, 10, rng), origin="real", source="chat")
    assert len(live_files(store, "samples")) == 6


def test_the_default_policy_bounds_the_segment_count() -> None:
    segs = [SegmentInfo(str(i), "samples", f"p{i}", 100) for i in range(15)]
    assert due(segs, 16, 1_000_000) == []
    full = due([*segs, SegmentInfo("x", "samples", "px", 120)], 16, 1_000_000)
    assert len(full) == 16
    big = [SegmentInfo(str(i), "samples", f"p{i}", 1_000_000) for i in range(20)]
    assert due(big, 16, 1_000_000) == []  # segments at the target size are never merged again


# -- SIGKILL at each step of `lineage compact` -------------------------------------------------------------------

COMPACT_STEPS = [
    "segment_written",
    "segment_fsynced",
    "segment_renamed",
    "segment_dir_fsynced",
    "compact_before_commit",
    "catalog_segment_inserted",
    "catalog_before_commit",
    "catalog_committed",
]


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    root = tmp_path_factory.mktemp("compact-base") / "store"
    store = grown_store(root, batches=3)
    return root, every_version(store)


def run_cli(store: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    if crash_at:
        env["LINEAGE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "lineage", "--store", str(store), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("step", COMPACT_STEPS)
def test_sigkill_at_each_compaction_step(step: str, base_store: tuple[Path, dict[int, Any]], tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(base_store[0], root)
    versions = base_store[1]
    latest = max(versions)

    proc = run_cli(root, "compact", crash_at=step)
    assert proc.returncode == -signal.SIGKILL, f"not killed at `{step}`: {proc.returncode} {proc.stderr}"
    store = Store(root)
    report = store.doctor()
    assert report.ok, report.problems
    committed = step == "catalog_committed"
    assert store.version == latest + (1 if committed else 0)
    # Before or after, never between: every version reads as before, nothing lost or doubled.
    assert every_version(store) == {**versions, **({latest + 1: versions[latest]} if committed else {})}

    proc = run_cli(root, "compact")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nothing to compact" if committed else "compacted samples: 7 segments -> 1")
    store.gc(dry_run=False)  # in process: `lineage gc` on the CLI is tested above
    report = store.doctor()
    assert report.ok and report.orphans == []
    assert not list((root / "data").rglob(".tmp-*")) and not list((root / "tmp").iterdir())
    assert snapshot(store) == versions[latest]


RANDOM_KILLS = 8  # seeded moments, one in each equal slice of a clean compaction's run


def kill_after(store: Path, delay: float) -> tuple[bool, float]:
    """Start `lineage compact`, SIGKILL it after `delay` seconds (unless it ended first): (killed, elapsed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lineage", "--store", str(store), "compact"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), f"compact exited {proc.returncode}: {stderr}"
    return proc.returncode == -signal.SIGKILL, time.monotonic() - started


@pytest.mark.slow
def test_sigkill_at_random_moments_of_compaction(base_store: tuple[Path, dict[int, Any]], tmp_path: Path) -> None:
    """Kill `lineage compact` at seeded random moments between the end of its start-up and its exit: the store is
    as before or as after, `doctor` clean, every version reads as before (nothing lost or doubled), a rerun merges
    once, and `gc` with a retention keeps every retained version readable."""
    versions = base_store[1]
    latest = max(versions)
    clean = tmp_path / "clean"
    shutil.copytree(base_store[0], clean)
    started = time.monotonic()
    assert run_cli(clean, "sql", "SELECT 1").returncode == 0
    startup = time.monotonic() - started  # the interpreter and imports: killed there, nothing has begun
    killed, duration = kill_after(clean, 600)
    assert not killed
    rng = random.Random(RNG_SEED)
    start, stop = 0.8 * startup, max(duration, startup) * 1.05
    delays = [start + (stop - start) * (i + rng.random()) / RANDOM_KILLS for i in range(RANDOM_KILLS)]
    outcomes = []
    for i, delay in enumerate(delays):
        for attempt in range(3):  # a run that beat its kill (the load fell) is aimed again, earlier
            root = tmp_path / f"kill-{i}-{attempt}"
            shutil.copytree(base_store[0], root)
            killed, elapsed = kill_after(root, delay)
            if killed:
                break
            delay = elapsed * rng.uniform(0.5, 0.95)
        store = Store(root)
        report = store.doctor()
        assert report.ok, (delay, report.problems)
        committed = store.version == latest + 1
        assert store.version in (latest, latest + 1) and (killed or committed), (delay, killed, store.version)
        # Before or after, never between: every version reads as before, nothing lost or doubled.
        assert every_version(store) == {**versions, **({latest + 1: versions[latest]} if committed else {})}, delay
        outcomes.append((round(delay, 2), killed, committed))

        proc = run_cli(root, "compact")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("nothing to compact" if committed else "compacted samples: 7 segments -> 1")
        now = Store(root).version
        assert run_cli(root, "gc", "--yes", "--retain-versions", "3").returncode == 0
        for v in range(now - 2, now + 1):  # the retained versions read as before gc
            assert snapshot(store.at(v)) == versions[min(v, latest)], (delay, v)
        report = store.doctor()
        assert report.ok and report.orphans == [], (delay, report)
        assert not list((root / "data").rglob(".tmp-*")) and not list((root / "tmp").iterdir())
    print(f"clean compact {duration:.2f} s (start-up {startup:.2f} s); kills (delay, killed, committed): {outcomes}")
    assert sum(killed for _, killed, _ in outcomes) >= RANDOM_KILLS // 2, outcomes


# -- the format-3 migration --------------------------------------------------------------------------------------


def test_a_format2_store_migrates_and_compacts(tmp_path: Path) -> None:
    store = grown_store(tmp_path / "store", batches=2)
    before = every_version(store)
    con = duckdb.connect(str(store.catalog_path))  # the catalog as format 2 wrote it
    con.execute(f"ALTER TABLE {catalog.SCHEMA}.segments DROP COLUMN retired_version")
    con.execute(f"DELETE FROM {catalog.SCHEMA}.segments WHERE kind = 'edges'")  # format 4 made them
    con.execute(f"UPDATE {catalog.SCHEMA}.meta SET value = '2' WHERE key = 'format_version'")
    con.close()
    with pytest.raises(StoreError, match="has format 2; run `lineage migrate` to upgrade it to 4"):
        Store(store.root)
    assert Runner(store.root)("migrate").stdout == "migrated through formats [3, 4]\n"
    store = Store(store.root)
    assert every_version(store) == before
    assert store.compact().version == store.version
    assert every_version(store) == {**before, store.version: before[store.version - 1]}
