"""The test install (`make .venv/.installed`: core, torch, Ray, Hugging Face, test tools) by uv, against pip
running the same installs, each into a new virtual environment of a fresh clone, in the same run.

    python3 benchmarks/install.py [--no-cache] [--runs 1]

Prints both times, their ratio, and whether both environments hold the same packages at the same versions
(they must: uv takes pip's configuration, `scripts/uv_install.py`). Not the same work: pip compiles every
package's bytecode at install; the Makefile has uv compile the core's only, and `make test` caches the rest as
the tests import it (see the Makefile), which is what the suite's own time measures. Caveats printed with the
numbers: both read this machine's configured indexes and local wheel folders, and each tool's own cache unless
--no-cache (then pip and uv download or copy every wheel); the 1-minute load average is printed, as other work
stretches both.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXTRAS = ".[dev,embed,hf,ray]"
# What `make .venv/.installed` ran with pip, before uv (the baseline).
PIP_STEPS = [["-m", "pip", "install", "--quiet", "--upgrade", "pip"], ["-m", "pip", "install", "--quiet", "-e", "."],
             ["-m", "pip", "install", "--quiet", "torch==2.13.0"], ["-m", "pip", "install", "--quiet", "-e", EXTRAS]]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(into)], check=True)
    return into


def packages(python: Path, cwd: Path) -> dict[str, str]:
    """name -> version of what the environment holds (names normalised: pip and uv spell some differently)."""
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--exclude-editable"], cwd=cwd,
                            capture_output=True, text=True, check=True).stdout
    out = {}
    for line in listed.splitlines():
        name, _, version = line.partition("==")
        out[re.sub(r"[-_.]+", "-", name).lower()] = version
    for tool in ("pip", "uv", "setuptools", "wheel"):  # the installers' own, not what the project needs
        out.pop(tool, None)
    return out


def with_uv(tmp: Path, env: dict[str, str]) -> tuple[float, dict[str, str]]:
    here = clone(tmp / "uv")
    started = time.perf_counter()
    run(["make", f"PYTHON={sys.executable}", ".venv/.installed"], here, env)
    return time.perf_counter() - started, packages(here / ".venv/bin/python", here)


def with_pip(tmp: Path, env: dict[str, str]) -> tuple[float, dict[str, str]]:
    here = clone(tmp / "pip")
    python = here / ".venv/bin/python"
    started = time.perf_counter()
    run([sys.executable, "-m", "venv", ".venv"], here, env)
    for step in PIP_STEPS:
        run([str(python), *step], here, env)
    return time.perf_counter() - started, packages(python, here)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="Turn pip's and uv's caches off.")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, **({"PIP_NO_CACHE_DIR": "1", "UV_NO_CACHE": "1"} if args.no_cache else {})}
    env.pop("VIRTUAL_ENV", None)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"caches {'off' if args.no_cache else 'as configured'}")
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="install-bench-") as tmp:
            pip_s, pip_pkgs = with_pip(Path(tmp), env)
            uv_s, uv_pkgs = with_uv(Path(tmp), env)
        differ = sorted(k for k in pip_pkgs.keys() | uv_pkgs.keys() if pip_pkgs.get(k) != uv_pkgs.get(k))
        same = "same packages and versions" if not differ else "DIFFER: " + ", ".join(
            f"{k} pip {pip_pkgs.get(k)} uv {uv_pkgs.get(k)}" for k in differ)
        print(f"run {i}: pip {pip_s:.1f} s, uv {uv_s:.1f} s: {pip_s / uv_s:.1f}x faster; "
              f"{len(uv_pkgs)} packages, {same}; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
