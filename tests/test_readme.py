"""The README's usage examples are true: every ```sh block, then every ```python block, runs in order.

```console blocks (the set-up commands `make demo` / `make test`) are not run here: CI runs `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_both_setup_commands() -> None:
    console = "\n".join(blocks("console"))
    assert "make demo" in console and "make test" in console
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().endswith("make test")


@pytest.mark.slow
def test_readme_examples_run(tmp_path: Path) -> None:
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("LINEAGE_STORE", None)
    shell = blocks("sh")
    assert len(shell) >= 3
    script = "set -euo pipefail\n" + "\n".join(shell)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "refused, nothing written" in done.stdout
    assert "samples_at_version_1" in done.stdout
    assert "exact_duplicate" in done.stdout  # the "why was it dropped" query found its answer
    for code in blocks("python"):
        ran = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stderr
        assert "150 new, 0 already present" in ran.stdout
