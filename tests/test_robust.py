"""Robust under faults, concurrency and hostile input (#22): real processes, real files, no mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lineage.build.spec import SpecError, load_spec
from lineage.errors import StoreError
from lineage.store import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL = ["--origin", "real", "--source", "wordnet", "--method", "human"]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    return {**base, **extra}


def cli(*args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lineage", *args], capture_output=True, text=True,
                          env=env(**extra), timeout=timeout)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


# -- init and gc never touch a user's files ------------------------------------------------------


def test_init_refuses_a_folder_with_user_files_and_gc_keeps_them(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "data" / "corpus").mkdir(parents=True)
    (proj / "tmp").mkdir()
    (proj / "data" / "corpus" / "train.jsonl").write_text("1\n2\n3\n")
    (proj / "tmp" / "notes").write_text("mine")
    line = one_line(cli("init", str(proj)))
    assert "is not empty and not a lineage store" in line and "`data`" in line
    assert not (proj / "lineage.duckdb").exists()

    # A store made properly, then a user drops files inside it: gc --yes lists and removes none of them.
    store = Store.init(tmp_path / "store")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    mine = [store.root / "data" / "samples" / "my-notes.parquet", store.root / "data" / "corpus.jsonl",
            store.root / "tmp" / "notes.txt", store.root / "builds" / "readme.md"]
    for path in mine:
        path.write_text("user data")
    orphan = store.root / "data" / "samples" / "0190f0a0-0000-7000-8000-000000000000.parquet"
    orphan.write_bytes(b"left by a crash")
    done = cli("--store", str(store.root), "gc", "--yes")
    assert done.returncode == 0, done.stderr
    assert "removed 1 file(s)" in done.stdout and "my-notes" not in done.stdout
    assert all(p.read_text() == "user data" for p in mine) and not orphan.exists()


def test_init_accepts_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert Store.init(tmp_path / "empty").version == 0


INIT_RACE = """
import sys, time
from lineage.errors import LineageError
from lineage.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    Store.init(sys.argv[1])
    print("created")
except LineageError as exc:
    print("refused:", exc)
"""


@pytest.mark.slow  # two interpreters started at one moment
def test_concurrent_inits_one_wins_the_other_is_refused(tmp_path: Path) -> None:
    for attempt in range(4):
        target = tmp_path / f"race{attempt}"
        start = str(time.time() + 1.5)
        procs = [subprocess.Popen([sys.executable, "-c", INIT_RACE, str(target), start], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env()) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        results = sorted(o.strip() for o, _ in outs)
        assert results.count("created") == 1, results
        assert all("is already a lineage store" in r for r in results if r != "created"), results
        assert Store(target).version == 0 and cli("--store", str(target), "doctor").returncode == 0


# -- a damaged catalog is one line, doctor included ------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_catalog_is_one_line_naming_file_and_remedy(tmp_path: Path, damage: str) -> None:
    store = Store.init(tmp_path / "s")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    path = store.catalog_path
    if damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        os.truncate(path, 12_000)
    else:
        path.write_bytes(b"")
    for args in (["doctor"], ["sql", "SELECT 1"], ["ingest", str(FIXTURES / "real.jsonl"), *REAL]):
        line = one_line(cli("--store", str(store.root), *args))
        assert "lineage.duckdb" in line and "restore it from a backup" in line, line


# -- readers never block writers; a reader cannot read the catalog file ---------------------------

SLOW_QUERY = "SELECT count(*) FROM range(3000000000) a WHERE a.range % 7 = 3"


def test_a_long_reader_does_not_block_a_writer(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    reader = subprocess.Popen([sys.executable, "-m", "lineage", "--store", str(store.root), "sql", SLOW_QUERY,
                               "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    try:
        time.sleep(3)  # the query is running
        assert reader.poll() is None
        started = time.monotonic()
        g1 = cli("--store", str(store.root), "ingest", str(FIXTURES / "synthetic-g1.jsonl"), "--origin",
                 "synthetic", "--source", "syn-v1", "--parent-field", "parent_id")
        assert g1.returncode == 0, g1.stderr
        assert reader.poll() is None, "the writer waited for the reader to finish"
        assert time.monotonic() - started < 60
    finally:
        reader.kill()
        reader.communicate()
    assert Store(store.root).version == 2


def test_sql_cannot_read_the_catalog_file(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    for query in (f"SELECT * FROM read_blob('{store.catalog_path}')",
                  f"SELECT * FROM read_text('{store.catalog_path}')"):
        line = one_line(cli("--store", str(store.root), "sql", query))
        assert "lineage.duckdb" in line or "Permission" in line or "disabled" in line, line


HOLD_CATALOG = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


WRITER = """
import sys
import lineage
from lineage.core import catalog
catalog.WAIT = 2.0  # what other commands wait for the catalog (30 s): the commit below must wait longer
store = lineage.open(sys.argv[1])
with store.transaction("test", "t1", {}, allow_empty=True) as txn:  # an empty one would commit nothing
    print("working", flush=True)
    sys.stdin.readline()  # the test makes the catalog busy now; then the commit starts
print("committed", store.version, flush=True)
"""


def test_a_commit_waits_for_a_busy_catalog_instead_of_failing(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    holder = None
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "working\n"
        # Longer than the writer's default wait (set to 2 s, as 30 s is for a reader): the commit used to die here
        # with "Conflicting lock", having waited only as long as a reader would.
        holder = subprocess.Popen([sys.executable, "-c", HOLD_CATALOG, str(store.catalog_path), "5"],
                                  stdout=subprocess.PIPE, text=True, env=env())
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        out, err = writer.communicate("go\n", timeout=300)
        assert writer.returncode == 0 and out.strip() == "committed 1", err
        assert "waiting for" in err and "held by another process" in err  # an idle command says why
    finally:
        for proc in (writer, holder):
            if proc is not None:
                proc.kill()
                proc.communicate()


def test_backup_is_a_consistent_copy_taken_while_a_reader_runs(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    store.run_filter("exact-dedup", engine="inline")
    reader = subprocess.Popen([sys.executable, "-m", "lineage", "--store", str(store.root), "sql", SLOW_QUERY,
                               "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    try:
        time.sleep(2)
        done = cli("--store", str(store.root), "backup", str(tmp_path / "copy"))
        assert done.returncode == 0 and reader.poll() is None, done.stderr
    finally:
        reader.kill()
        reader.communicate()
    copy = Store(tmp_path / "copy")
    assert copy.doctor().ok and copy.doctor().orphans == [] and copy.version == store.version
    query = "SELECT count(*) AS n, sum(hash(sample_id)) AS h FROM samples"
    assert copy.sql(query).to_pylist() == store.sql(query).to_pylist()
    assert "already exists" in one_line(cli("--store", str(store.root), "backup", str(tmp_path / "copy")))
    assert "overwrite the store's own" in one_line(cli("--store", str(store.root), "backup",
                                                       str(store.root / "data" / "b")))


# -- a full disk ends in one line, with nothing half-written and the lock free ---------------------


def test_disk_full_while_writing_a_segment_is_one_line_not_a_hang(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    failed = cli("--store", str(store.root), "ingest", str(FIXTURES / "real.jsonl"), *REAL, timeout=60,
                 LINEAGE_FAIL_AT="parquet_write_group")
    assert "No space left on device" in one_line(failed)
    assert Store(store.root).version == 0
    assert [p for p in (store.root / "data").rglob("*") if p.is_file()] == []
    assert list((store.root / "tmp").iterdir()) == []
    ok = cli("--store", str(store.root), "ingest", str(FIXTURES / "real.jsonl"), *REAL)  # the lock is free
    assert ok.returncode == 0, ok.stderr


# -- workers die with their driver ---------------------------------------------------------------


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_a_filter_run_kills_its_workers(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    for g in range(3):  # more than one batch of 20,000, so the run uses its process pool
        rows = [{"id": f"q{g}-{i}", "text": f"sample {g} {i} " + "word " * (i % 40)} for i in range(15_000)]
        store.ingest(rows, origin="real", source=f"src{g}")
    driver = subprocess.Popen([sys.executable, "-m", "lineage", "--store", str(store.root), "filter", "run",
                               "quality", "--engine", "local", "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        workers = children(driver.pid)
        if len(workers) >= 3:  # two workers and multiprocessing's resource tracker
            break
        time.sleep(0.05)
    assert len(workers) >= 3, "the pool never started"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


# -- hostile specs ------------------------------------------------------------------------------

BOMB = """name: bomb
size: 10
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(SpecError, match=r"bomb.yaml`:3: YAML anchors and aliases"):
        load_spec(spec)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"expr": [{"name": f"e{i}", "sql": "true"} for i in range(1_001)]}, "expr: 1,001 entries, past the limit"),
        ({"quotas": {"source": {f"s{i}": {"min": 0} for i in range(10_001)}}}, "quotas: 10,001 entries"),
        ({"floors": [{"metric": "distinct_2", "min": float("nan")}]}, "floors.0.min"),
        ({"floors": [{"metric": "distinct_2", "max": float("inf")}]}, "floors.0.max"),
        ({"quotas": {"origin": {"real": {"min": float("nan")}}}}, "quotas.origin.real.min"),
        ({"sizes": 3}, "sizes: unknown key"),
    ],
)
def test_hostile_specs_are_one_line_naming_the_field(tmp_path: Path, data: dict, message: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "x", "size": 10, **data}))
    started = time.monotonic()
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - started < 5


def test_big_spec_file_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "big.json"
    spec.write_text(json.dumps({"name": "x", "size": 10, "description": "x" * 2_000_000}))
    with pytest.raises(SpecError, match="past the limit of 1,048,576"):
        load_spec(spec)


def test_unknown_exclude_dropped_by_names_the_known_filters(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    store.run_filter("exact-dedup", engine="inline")
    with pytest.raises(SpecError, match=r"exclude_dropped_by: unknown filter `no-such-filter`; known: .*exact-dedup"):
        store.build({"name": "b", "size": 10, "pool": {"exclude_dropped_by": ["no-such-filter"]}}, dry_run=True)
    plan = store.build({"name": "b", "size": 10, "pool": {"exclude_dropped_by": ["exact-dedup", "quality"]}},
                       dry_run=True)
    assert plan.pool_size > 0


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="exists and is not a directory"):
        Store.init(tmp_path / "file")


# -- careless input files: one line naming the file, or accepted ------------------------------------


def test_careless_input_files(tmp_path: Path) -> None:
    import gzip

    store = Store.init(tmp_path / "s")
    whole = gzip.compress((FIXTURES / "real.jsonl").read_bytes())
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "plain.jsonl.gz").write_bytes((FIXTURES / "real.jsonl").read_bytes())
    for name, message in (("cut.jsonl.gz", "Compressed file ended"), ("plain.jsonl.gz", "Not a gzipped file")):
        line = one_line(cli("--store", str(store.root), "ingest", str(tmp_path / name), *REAL))
        assert f"`{tmp_path / name}`: cannot read as gzip: {message}" in line, line
    assert Store(store.root).version == 0
    bom = tmp_path / "bom.jsonl"
    rows = [{"id": "b1", "text": "Saved by a Windows editor."}, {"id": "b2", "text": "x"}]
    bom.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert store.ingest(bom, origin="real", source="bom").rows_stored == 2
    assert "/dev/null`: no records" in one_line(cli("--store", str(store.root), "ingest", "/dev/null", "--format",
                                                    "jsonl", *REAL))
    quote = tmp_path / "quote.csv"
    quote.write_text('id,text\n1,"an unterminated quote\n2,the next row\n')
    assert "quote.csv" in one_line(cli("--store", str(store.root), "ingest", str(quote), *REAL))


def test_an_oversize_line_is_rejected_as_it_streams(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    with big.open("w") as out:
        out.write(json.dumps({"id": "a", "text": "first"}) + "\n")
        out.write('{"id": "huge", "text": "' + "x" * (200 << 20) + '"}\n')
        out.write(json.dumps({"id": "c", "text": "last"}) + "\n")
    store = Store.init(tmp_path / "s")
    # VmHWM, the peak of this process's own memory (ru_maxrss would carry the parent's over fork and exec).
    probe = ("import re, sys, lineage; s = lineage.open(sys.argv[1]); "
             "r = s.ingest(sys.argv[2], origin='real', source='big', skip_bad=True); "
             "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
             "print(r.rows_stored, r.rejects[0].line, r.rejects[0].reason, int(hwm) // 1024)")
    done = subprocess.run([sys.executable, "-c", probe, str(store.root), str(big)], capture_output=True, text=True,
                          env=env(), timeout=300)
    assert done.returncode == 0, done.stderr
    stored, line, *reason, peak_mb = done.stdout.split()
    assert (stored, line) == ("2", "2") and "over the limit" in " ".join(reason)
    assert int(peak_mb) < 650, f"peak {peak_mb} MB for a 200 MB line"  # 981 MB when the line was read whole
    refused = one_line(cli("--store", str(store.root), "ingest", str(big), "--source", "big2", "--origin", "real"))
    assert "big.jsonl:2: field `record`: record is 209715226 bytes, over the limit" in refused, refused


def test_a_damaged_segment_is_diagnosed_by_doctor_and_one_line_elsewhere(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")
    (segment,) = (store.root / "data" / "samples").glob("*.parquet")
    segment.write_bytes(b"garbage")
    report = cli("--store", str(store.root), "doctor")
    assert report.returncode == 1 and report.stderr == "", report.stderr
    assert f"problem: segment `data/samples/{segment.name}` is damaged" in report.stdout
    line = one_line(cli("--store", str(store.root), "sql", "SELECT count(*) FROM samples"))
    assert segment.name in line and "restore them from a backup" in line


def test_one_store_read_from_two_threads_while_one_runs_a_users_where(small_store: Store) -> None:
    """A build's pool runs its spec's `where` on a reader locked down (it reads the store's data and nothing else).
    Locking is for a DuckDB instance's life: when that reader was a connection of the instance the Store's reads
    share, the reads another thread was starting on it failed, saying the catalog was damaged."""
    import threading

    spec = {"name": "t", "size": 50, "seed": 1, "pool": {"where": "length(text) > 10"}}
    child = small_store.sql("SELECT sample_id FROM samples WHERE generation = 2 LIMIT 1")["sample_id"][0].as_py()
    failed: list[BaseException] = []
    stop = threading.Event()

    def plans() -> None:
        while not stop.is_set():
            try:
                small_store.build(spec, dry_run=True)
            except BaseException as exc:
                failed.append(exc)
                return

    thread = threading.Thread(target=plans)
    thread.start()
    try:
        for _ in range(80):
            assert small_store.ancestors(child).num_rows == 2
            assert small_store.query("SELECT count(*) AS n FROM samples")["n"].to_pylist() == [1125]
    finally:
        stop.set()
        thread.join()
    assert failed == []
