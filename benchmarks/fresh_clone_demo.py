"""From a fresh clone to the demo's last line: `make demo` timed in a new clone of this repository, against the
old setup (the full install `make test` uses: torch, Ray, datasets, test tools) measured in the same run.

    python3 benchmarks/fresh_clone_demo.py [--demo-args "--generations 2 --train-size 1000"] [--baseline]
                                           [--runs 2] [--no-cache]

Target: under 2 minutes from `git clone` to the demo's last line on a 2-core machine. What it prints:
the setup (`make .venv/.core`: venv, pip, the core install) and the demo (`make demo`) separately, the size
of `.venv`, and with --baseline the full install's time and size beside the core's and their ratio.

Caveats, printed with the numbers: the clone is of the committed HEAD (uncommitted changes are not in it);
pip uses whatever indexes, caches and local wheel folders this machine is configured with (--no-cache turns
pip's own cache off), so a machine that downloads every wheel from the internet sets up slower; and the 1-minute
load average is printed, because other work on the machine stretches every number. On a loaded machine pass
smaller --demo-args rather than run the full demo (the setup does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 120.0


def run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{shlex.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def clone(into: Path) -> Path:
    target = into / "lineage"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    return target


def measure(demo_args: str, env: dict[str, str], *, baseline: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fresh-demo-") as tmp:
        started = time.perf_counter()
        here = clone(Path(tmp))
        cloned = time.perf_counter() - started
        make = ["make", f"PYTHON={sys.executable}"]
        setup = run([*make, ".venv/.core"], here, env)
        demo = run([*make, "demo", f"DEMO_ARGS={demo_args}"], here, env)
        out = {"clone": cloned, "setup": setup, "demo": demo, "total": cloned + setup + demo,
               "venv_mb": size_mb(here / ".venv")}
        if baseline:  # the old `make demo` installed everything `make test` needs before running the demo
            out["full_setup"] = run([*make, ".venv/.installed"], here, env) + setup
            out["full_venv_mb"] = size_mb(here / ".venv")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-args", default="", help="Extra `lineage demo` options (default: the full demo).")
    parser.add_argument("--baseline", action="store_true", help="Also time the full install (torch, Ray, ...).")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-cache", action="store_true", help="Turn pip's cache off (PIP_NO_CACHE_DIR=1).")
    args = parser.parse_args()
    env = {**os.environ, **({"PIP_NO_CACHE_DIR": "1"} if args.no_cache else {})}
    env.pop("VIRTUAL_ENV", None)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"demo args: {args.demo_args or '(full demo)'}; pip cache {'off' if args.no_cache else 'as configured'}")
    for i in range(1, args.runs + 1):
        m = measure(args.demo_args, env, baseline=args.baseline)
        verdict = "met" if m["total"] <= TARGET_SECONDS else "MISSED"
        print(f"run {i}: clone {m['clone']:.1f} s + setup {m['setup']:.1f} s + demo {m['demo']:.1f} s = "
              f"{m['total']:.1f} s to the demo's last line (target {TARGET_SECONDS:.0f} s: {verdict}); "
              f".venv {m['venv_mb']:,.0f} MB")
        if "full_setup" in m:
            print(f"  baseline, the full install: setup {m['full_setup']:.1f} s, .venv {m['full_venv_mb']:,.0f} MB; "
                  f"core setup {m['full_setup'] / m['setup']:.1f}x faster, {m['full_venv_mb'] / m['venv_mb']:.1f}x "
                  "smaller")
        print(f"  load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
