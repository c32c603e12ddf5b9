"""The single-writer lock, across real processes: a second writer is refused or waits; readers never block."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import templated

import lineage
from lineage.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures"
G1 = FIXTURES / "synthetic-g1.jsonl"
G1_ARGS = ["--origin", "synthetic", "--source", "syn-v1", "--method", "paraphrase", "--parent-field", "parent_id"]
LOCKED = re.compile(r"Error: store is locked by pid (\d+) since (\S+) .*")

# Holds the writer lock until its stdin closes (a clean release) or it is killed.
HOLDER = """
import sys
from pathlib import Path
from lineage.core.lock import WriterLock

with WriterLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def cli(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lineage", "--store", str(store), *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}


def run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(store, *args), capture_output=True, text=True, env=env(), timeout=120)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A store holding the 600 real fixture samples (version 1; built once per run, then copied)."""
    return templated(Store.init(tmp_path / "store"), ingest_real).root


def ingest_real(store: Store) -> None:
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet", method="human")


@pytest.fixture
def holder(store_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's writer lock; yielded once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_dir / "lineage.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def version(store: Path) -> int:
    return lineage.open(store).version


def test_second_writer_is_refused(store_dir: Path, holder: subprocess.Popen[str]) -> None:
    started = datetime.now(UTC)
    proc = run(store_dir, "ingest", str(G1), *G1_ARGS)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    match = LOCKED.fullmatch(lines[0])
    assert match, lines[0]
    assert int(match[1]) == holder.pid
    # The holder took the lock moments before the test began, stamped in whole seconds.
    since = datetime.fromisoformat(match[2])
    assert started - timedelta(seconds=30) <= since <= datetime.now(UTC)
    assert str(store_dir / "lineage.lock") in lines[0]
    assert version(store_dir) == 1


def test_second_writer_waits_for_release(store_dir: Path, holder: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        cli(store_dir, "--wait", "5", "ingest", str(G1), *G1_ARGS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    time.sleep(1.0)
    release(holder)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "300 new" in out
    assert time.monotonic() - started >= 1.0
    assert version(store_dir) == 2


def test_readers_work_while_locked(store_dir: Path, holder: subprocess.Popen[str]) -> None:
    proc = run(store_dir, "sql", "SELECT count(*) AS n FROM samples", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["n", "600"]
    assert run(store_dir, "doctor").returncode == 0
    # gc deletes files, so it is a writer: refused like ingest.
    gc = run(store_dir, "gc", "--yes")
    assert gc.returncode == 1 and LOCKED.fullmatch(gc.stderr.strip()), gc.stderr


def test_lock_is_released_when_holder_is_killed(store_dir: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    # No --wait: the kernel dropped the dead holder's flock, so the next writer gets it at once.
    proc = run(store_dir, "ingest", str(G1), *G1_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert version(store_dir) == 2
