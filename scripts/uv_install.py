"""`pip install ARGS` into this Python's environment, done by uv: 5.3x faster than pip for the test set (torch,
Ray, Hugging Face: 97 s -> 18 s here, `benchmarks/install.py`), under this machine's pip configuration.

uv does not read pip's configuration files, so the settings that choose what gets installed are carried over from
`pip config list` (files and PIP_* variables alike): index and extra indexes, find-links, constraints and the CA
bundle. Where pip merges its indexes and takes the best version of any, uv would stop at the first index holding a
package; `unsafe-best-match` keeps pip's choice, so both install the same versions.

    python scripts/uv_install.py -e '.[dev]'     (uv itself: `python -m pip install uv`)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

# pip's setting -> uv's option, for settings holding a space-separated list.
LISTS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links", "constraint": "--constraint"}


def pip_settings() -> dict[str, str]:
    """`pip config list`: `global.find-links='/opt/wheels'`, `:env:.cert='...'`; a variable wins over a file."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True).stdout
    settings: dict[str, str] = {}
    for scope, key, value in re.findall(r"^([^.\n]*)\.([\w-]+)='(.*)'$", listed, flags=re.M):
        if scope == ":env:" or key not in settings:
            settings[key] = value
    return settings


def uv_command(settings: dict[str, str], args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "uv", "pip", "install", "--python", sys.executable,
               "--index-strategy", "unsafe-best-match"]
    if "index-url" in settings:
        command += ["--index-url", settings["index-url"]]
    for key, option in LISTS.items():
        for value in settings.get(key, "").split():
            command += [option, value]
    return command + args


def main() -> int:
    settings = pip_settings()
    env = dict(os.environ)
    if "cert" in settings:  # a registry behind a proxy with its own CA: uv takes the bundle pip is given
        env.setdefault("SSL_CERT_FILE", settings["cert"])
    return subprocess.run(uv_command(settings, sys.argv[1:]), env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
