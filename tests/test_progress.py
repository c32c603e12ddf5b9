"""Progress of the long commands: build (steps), export (samples), diversity (groups), eval outputs (steps).
From Python, a `progress(done, total)` callback sees every step up to the total; from the CLI, without a terminal,
periodic lines on stderr, and nothing with --quiet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Runner

from lineage.evals import eval_outputs
from lineage.store import Store

LINE = re.compile(r"^(build \S+|export \S+|diversity|eval outputs \S+): [\d,]+(/[\d,]+ \w+ \(\d+%\)| \w+).* elapsed$")


def recorder() -> tuple[list[tuple[int, int | None]], object]:
    seen: list[tuple[int, int | None]] = []
    return seen, lambda done, total: seen.append((done, total))


def assert_counts_up_to(seen: list[tuple[int, int | None]], total: int) -> None:
    assert seen[0] == (0, total) and seen[-1] == (total, total), seen
    done = [d for d, _ in seen]
    assert done == sorted(done) and {t for _, t in seen} == {total}


def outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "outputs.jsonl"
    texts = [f"the model wrote sentence {i} about {w}" for i, w in enumerate(["rivers", "stone", "light"] * 20)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_python_callbacks_count_to_the_total(small_store: Store, tmp_path: Path) -> None:
    seen, progress = recorder()
    small_store.build({"name": "mix", "size": 200, "seed": 1}, progress=progress)
    assert_counts_up_to(seen, 6)
    seen, progress = recorder()
    small_store.build({"name": "mix", "size": 200, "seed": 1}, dry_run=True, progress=progress)
    assert_counts_up_to(seen, 4)

    seen, progress = recorder()
    result = small_store.export("mix", tmp_path / "out", format="jsonl", split={"validation": 0.1},
                                progress=progress)
    assert_counts_up_to(seen, 200)
    assert len(seen) == 3 and sum(result.splits.values()) == 200  # one report per split

    seen, progress = recorder()
    groups = small_store.diversity(by=["source"], record=False, progress=progress).table.num_rows
    assert groups == 4
    assert_counts_up_to(seen, groups)

    small_store.register_model("m1", trained_on="mix@v1")
    seen, progress = recorder()
    eval_outputs(small_store, "m1", outputs_file(tmp_path), sample_size=20, draws=2, progress=progress)
    assert_counts_up_to(seen, 5)


def test_cli_lines_when_not_a_terminal_and_quiet(
    small_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAGE_PROGRESS_SECONDS", "0.005")
    run = Runner(small_store.root)
    spec = tmp_path / "mix.yaml"
    spec.write_text("name: mix\nsize: 200\nseed: 1\n", encoding="utf-8")
    outputs = outputs_file(tmp_path)
    commands = [
        ["build", str(spec)],
        ["export", "mix", "--format", "jsonl", "--output", str(tmp_path / "out")],
        ["diversity", "--by", "source", "--no-record"],
        ["model", "register", "m1", "--trained-on", "mix@v1"],
        ["eval", "outputs", "m1", str(outputs), "--sample-size", "20", "--draws", "2"],
    ]
    printed = []
    for args in commands:
        lines = [line for line in run(*args).stderr.splitlines() if not line.startswith("warning: ")]
        assert [line for line in lines if not LINE.match(line)] == []
        printed += lines
    assert {line.split(":")[0].split(" ")[0] for line in printed} >= {"build", "diversity", "eval"}
    quiet = [["build", str(spec)], ["export", "mix", "--format", "jsonl", "--output", str(tmp_path / "q")],
             ["diversity", "--by", "source", "--no-record"],
             ["eval", "outputs", "m1", str(outputs), "--sample-size", "20", "--draws", "2"]]
    for args in quiet:
        assert not [line for line in run("--quiet", *args).stderr.splitlines() if not line.startswith("warning: ")]
