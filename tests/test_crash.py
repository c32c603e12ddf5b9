"""Crash safety of ingest: SIGKILL at every named step of the commit protocol and at random moments.

Every kill must leave the store as it was before the ingest or as it is after it (`doctor` ok, row count
old or old + N), and a rerun must then store exactly the expected rows, once. Ingests run through the
real CLI in a subprocess; `LINEAGE_CRASH_AT=<step>` makes that process SIGKILL itself at a named step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lineage
import lineage.ingest
import lineage.store
from lineage.core import faults
from lineage.ingest.readers import BLOCK_BYTES

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "fixtures"
MAKE_CORPUS = ROOT / "benchmarks" / "make_corpus.py"
REAL = FIXTURES / "real.jsonl"
G1 = FIXTURES / "synthetic-g1.jsonl"

# The string arguments of the crash_point(...) calls in lineage/, in the order an ingest reaches them.
CRASH_STEPS = [
    "ingest_staged",
    "segment_written",
    "segment_fsynced",
    "segment_renamed",
    "segment_dir_fsynced",
    "ingest_edges_written",  # the samples segment's edges (`lineage.core.edges`), written, not registered
    "ingest_before_commit",
    "catalog_segment_inserted",
    "catalog_before_commit",
    "catalog_committed",
]
AFTER_COMMIT = {"catalog_committed"}

REAL_OPTIONS = {"origin": "real", "source": "wordnet-examples", "method": "human"}
G1_OPTIONS = {
    "origin": "synthetic",
    "source": "synthetic-v1-paraphrased",
    "method": "paraphrase",
    "generator": "llama-3-8b",
    "parent_field": "parent_id",
}
G1_ARGS = [arg for key, value in G1_OPTIONS.items() for arg in (f"--{key.replace('_', '-')}", value)]
REAL_ROWS, G1_ROWS = 600, 300

# Random-timing kills: a generated corpus of short records, so one ingest takes ~2 s and 15 kill-and-rerun
# rounds fit the time budget; two rounds run at once to use both cores.
CORPUS_ROWS = 100_000
CORPUS_TEXT_BYTES = 40
RANDOM_RUNS = 15
WORKERS = 2
SEED = 20240611


@dataclass(frozen=True)
class State:
    version: int
    rows: int


# -- helpers ---------------------------------------------------------------------------------


def cli(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lineage", "--store", str(store), *args]


def env(crash_at: str | None = None) -> dict[str, str]:
    """The test's environment without any LINEAGE_* variable it may have inherited, plus the crash hook."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
    return clean | ({"LINEAGE_CRASH_AT": crash_at} if crash_at else {})


def run(store: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(store, *args), capture_output=True, text=True, env=env(crash_at), timeout=300)


def run_ok(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = run(store, *args)
    assert proc.returncode == 0, f"`lineage {' '.join(args)}` exited {proc.returncode}: {proc.stdout}{proc.stderr}"
    return proc


def doctor(store: Path) -> State:
    """`lineage doctor --json` must report a consistent store; returns its version and row count (run once, on
    the base store: after each kill, `doctor_in_process` makes the same check without starting an interpreter)."""
    proc = run(store, "doctor", "--json")
    assert proc.stdout, f"doctor exited {proc.returncode}: {proc.stderr}"
    report = json.loads(proc.stdout)
    assert report["ok"] and proc.returncode == 0, f"doctor: {report['problems']}"
    return State(report["version"], report["rows"])


def doctor_in_process(store: Path) -> State:
    """The same check without starting an interpreter, where a test repeats it many times."""
    report = lineage.open(store).doctor()
    assert report.ok, report.problems
    return State(report.version, report.rows)


def count_samples(store: Path) -> tuple[int, int]:
    """(rows, distinct sample ids) as the samples view sees them."""
    row = lineage.open(store).sql("SELECT count(*) AS n, count(DISTINCT sample_id) AS d FROM samples").to_pylist()
    return row[0]["n"], row[0]["d"]


def ingest_json(store: Path, path: Path, *args: str) -> dict[str, Any]:
    return json.loads(run_ok(store, "ingest", str(path), *args, "--json").stdout)


def assert_clean(store: Path) -> None:
    """Consistent, and nothing left lying around: no orphan, no temporary segment, no scratch dir."""
    report = lineage.open(store).doctor()
    assert report.ok, report.problems
    assert report.orphans == []
    assert not list((store / "data").rglob(".tmp-*"))


def copy_store(base: BaseStore, dest: Path) -> Path:
    shutil.copytree(base.path, dest)
    return dest


@dataclass(frozen=True)
class BaseStore:
    """A store holding real.jsonl; every test works on its own copy."""

    path: Path
    state: State


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseStore:
    path = tmp_path_factory.mktemp("base") / "store"
    run_ok(path, "init")
    run_ok(path, "ingest", str(REAL), *(arg for k, v in REAL_OPTIONS.items() for arg in (f"--{k}", v)))
    state = doctor(path)
    assert state == State(1, REAL_ROWS)
    return BaseStore(path, state)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    args = ["--rows", str(CORPUS_ROWS), "--seed", str(SEED), "--text-bytes", str(CORPUS_TEXT_BYTES), str(path)]
    subprocess.run([sys.executable, str(MAKE_CORPUS), *args], check=True, capture_output=True, timeout=120)
    return path


# -- SIGKILL at each named step --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("step", CRASH_STEPS)
def test_sigkill_at_named_step(step: str, base: BaseStore, tmp_path: Path) -> None:
    store = copy_store(base, tmp_path / "store")
    old, new = base.state, State(base.state.version + 1, base.state.rows + G1_ROWS)

    proc = run(store, "ingest", str(G1), *G1_ARGS, crash_at=step)
    assert proc.returncode == -signal.SIGKILL, f"not killed at `{step}`: exit {proc.returncode} {proc.stderr}"

    expected = new if step in AFTER_COMMIT else old
    assert doctor_in_process(store) == expected  # the killed process was the CLI; checking needs no interpreter
    assert count_samples(store) == (expected.rows, expected.rows)

    result = ingest_json(store, G1, *G1_ARGS)
    assert result["rows_stored"] == (0 if expected == new else G1_ROWS)
    assert count_samples(store) == (REAL_ROWS + G1_ROWS, REAL_ROWS + G1_ROWS)
    g1 = lineage.open(store).sql(
        "SELECT count(*) AS n, count(DISTINCT external_id) AS d FROM samples WHERE source = ?",
        params=[G1_OPTIONS["source"]],
    )
    assert g1.to_pylist() == [{"n": G1_ROWS, "d": G1_ROWS}]

    lineage.open(store).gc(dry_run=False)
    assert_clean(store)


# -- SIGKILL at random moments ---------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    seconds: float
    added: int


@dataclass(frozen=True)
class Outcome:
    delay: float
    elapsed: float  # until the process ended, killed or not
    killed: bool
    state: State


def clean_ingest(base: BaseStore, corpus: Path, dest: Path) -> Timing:
    store = copy_store(base, dest)
    started = time.monotonic()
    result = ingest_json(store, corpus)
    return Timing(time.monotonic() - started, result["rows_stored"])


def kill_and_rerun(base: BaseStore, corpus: Path, dest: Path, delay: float, added: int) -> Outcome:
    """Start an ingest, SIGKILL it after `delay` seconds, check the store, rerun, check again."""
    store = copy_store(base, dest)
    old, new = base.state, State(base.state.version + 1, base.state.rows + added)
    started = time.monotonic()
    proc = subprocess.Popen(
        cli(store, "ingest", str(corpus)), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    elapsed, killed = time.monotonic() - started, proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, f"ingest exited {proc.returncode} (delay {delay:.2f} s): {stderr}"

    state = doctor_in_process(store)
    # A process that finished before its kill must have committed; a killed one may have or not.
    assert state in ((old, new) if killed else (new,)), f"delay {delay:.2f} s, killed {killed}: {state}"
    assert count_samples(store) == (state.rows, state.rows)

    result = ingest_json(store, corpus)
    assert result["rows_stored"] == (added if state == old else 0)
    assert count_samples(store) == (new.rows, new.rows)
    lineage.open(store).gc(dry_run=False)
    assert_clean(store)
    return Outcome(delay, elapsed, killed, state)


def kill_run(base: BaseStore, corpus: Path, dest: Path, run: int, delay: float, added: int) -> Outcome:
    """One kill point: if the ingest beat its kill (the machine was quicker than measured), aim again, earlier."""
    rng = random.Random(SEED + run)
    for attempt in range(3):
        outcome = kill_and_rerun(base, corpus, dest / f"attempt-{attempt}", delay, added)
        if outcome.killed:
            break
        delay = outcome.elapsed * rng.uniform(0.5, 0.95)
    return outcome


def kill_delays(duration: float) -> list[float]:
    """RANDOM_RUNS seeded delays, one in each equal slice of the ingest's duration (stratified), shuffled."""
    rng = random.Random(SEED)
    start, stop = 0.05 * duration, 0.97 * duration
    delays = [start + (stop - start) * (i + rng.random()) / RANDOM_RUNS for i in range(RANDOM_RUNS)]
    rng.shuffle(delays)
    return delays


@pytest.mark.slow
def test_sigkill_at_random_moments(base: BaseStore, corpus: Path, tmp_path: Path) -> None:
    # Time clean runs under the same load as the kills (WORKERS at once) to choose the delay range.
    with ThreadPoolExecutor(WORKERS) as pool:
        clean = list(pool.map(lambda i: clean_ingest(base, corpus, tmp_path / f"clean-{i}"), range(WORKERS)))
    added = clean[0].added
    assert added > 0.99 * CORPUS_ROWS and all(t.added == added for t in clean)
    delays = kill_delays(max(t.seconds for t in clean))
    print(f"clean runs: {[round(t.seconds, 2) for t in clean]} s")

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(
            pool.map(lambda i: kill_run(base, corpus, tmp_path / f"run-{i}", i, delays[i], added), range(RANDOM_RUNS))
        )
    for o in sorted(outcomes, key=lambda o: o.delay):  # shown by `pytest -s`
        print(f"kill after {o.delay:5.2f} s: killed={o.killed}, ended after {o.elapsed:5.2f} s, store {o.state}")
    # Each kill lands at a different moment; with the named steps that is well over 20 kill points.
    killed = [o for o in outcomes if o.killed]
    assert len(killed) + len(CRASH_STEPS) > 20, f"only {len(killed)} of {RANDOM_RUNS} ingests were killed: {outcomes}"


# -- a Python exception mid-ingest -----------------------------------------------------------


LATE_ROW = 80_000  # ~19 MiB of short records before it: more than one of the reader's blocks (BLOCK_BYTES, 16 MiB)
BAD_TAILS = {
    # Refused while checking the staged rows, after every block of the file was read and extracted.
    "malformed": '{"id": "late", "text": "cut off in the midd',
    # Refused later still, while resolving parents against the store.
    "unknown-parent": json.dumps(
        {"id": "late", "text": "A late orphan.", "origin": "synthetic", "source": "late", "parent_ids": "nowhere"}
    ),
}


def corpus_with_bad_tail(corpus: Path, dest: Path, last_line: str) -> Path:
    """The first LATE_ROW - 1 corpus records, then one bad line."""
    with open(corpus, encoding="utf-8") as src, open(dest, "w", encoding="utf-8") as out:
        out.writelines(line for _, line in zip(range(LATE_ROW - 1), src, strict=False))
        before = out.tell()
        out.write(last_line + "\n")
    # The bad line must lie past the reader's first block (it once did not: the block grew from 8 to 16 MiB).
    assert before > BLOCK_BYTES, f"only {before:,} bytes before the bad line"
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("defect", BAD_TAILS)
def test_late_bad_row_leaves_nothing(defect: str, base: BaseStore, corpus: Path, tmp_path: Path) -> None:
    store = copy_store(base, tmp_path / "store")
    bad = corpus_with_bad_tail(corpus, tmp_path / "bad.jsonl", BAD_TAILS[defect])
    proc = run(store, "ingest", str(bad))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}:{LATE_ROW}: "), proc.stderr
    assert doctor_in_process(store) == base.state
    assert_clean(store)
    assert sorted(p.name for p in (store / "data" / "samples").iterdir()) == sorted(
        p.name for p in (base.path / "data" / "samples").iterdir()
    )


class InjectedFault(Exception):
    """Raised instead of SIGKILL at a named step, to follow the exception path of the commit protocol."""


def _raise_at(step: str) -> Callable[[str], None]:
    def crash_point(name: str) -> None:
        if name == step:
            raise InjectedFault(name)

    return crash_point


def _crash_point_users() -> list[ModuleType]:
    """Every loaded lineage module that imported `crash_point` by name."""
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("lineage.") and getattr(module, "crash_point", None) is faults.crash_point
    ]


# Every named step also fails as a Python exception: the segment file must go unless the catalog committed it.
EXCEPTION_STEPS = list(CRASH_STEPS)


@pytest.mark.parametrize("step", EXCEPTION_STEPS)
def test_exception_at_named_step(step: str, base: BaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = copy_store(base, tmp_path / "store")
    for module in _crash_point_users():
        monkeypatch.setattr(module, "crash_point", _raise_at(step))
    with pytest.raises(InjectedFault):
        lineage.open(store).ingest(G1, **G1_OPTIONS)
    monkeypatch.undo()

    committed = step in AFTER_COMMIT
    expected = State(base.state.version + 1, base.state.rows + G1_ROWS) if committed else base.state
    assert_clean(store)
    report = lineage.open(store).doctor()
    assert State(report.version, report.rows) == expected
    lineage.open(store).ingest(G1, **G1_OPTIONS)
    assert count_samples(store) == (REAL_ROWS + G1_ROWS, REAL_ROWS + G1_ROWS)


# -- a filter run killed while writing its decisions and their index ----------------------------------------------


@pytest.mark.parametrize("step", ["decision_index_published", "filter_before_commit"])
def test_sigkill_in_an_incremental_run_then_the_next_decides_like_a_full_run(
    step: str, base: BaseStore, tmp_path: Path
) -> None:
    """Killed after its decisions' index is (half) written, before the commit: nothing of the run counts, doctor is
    clean, the next `--new` run decides as a full run does, and gc removes the index the killed run left."""
    store = copy_store(base, tmp_path / "store")
    run_ok(store, "filter", "run", "exact-dedup")
    run_ok(store, "ingest", str(REAL), "--source", "mirror", "--origin", "synthetic", "--generation", "1")
    before = doctor(store)
    proc = run(store, "filter", "run", "exact-dedup", "--new", crash_at=step)
    assert proc.returncode == -signal.SIGKILL, f"not killed at `{step}`: exit {proc.returncode} {proc.stderr}"
    assert doctor(store) == before
    full = Path(shutil.copytree(store, tmp_path / "full"))
    run_ok(store, "filter", "run", "exact-dedup", "--new")
    run_ok(full, "filter", "run", "exact-dedup", "--force")
    query = "SELECT sample_id, decision, score, reason, related_id, cluster_id FROM status ORDER BY sample_id"
    assert lineage.open(store).sql(query).to_pylist() == lineage.open(full).sql(query).to_pylist()
    assert lineage.open(store).sql("SELECT count(*) AS n FROM status WHERE decision = 'drop'")["n"][0].as_py() \
        == REAL_ROWS
    run_ok(store, "gc", "--yes")
    assert_clean(store)
    indexes = {p.name.split(".")[0] for p in (store / "data/features/decisions").iterdir()}
    assert indexes == {p.stem for p in (store / "data/events").iterdir()}
