"""Command-line text into typed values: the repeatable `KEY=VALUE` options. Parsing only; the Store does the work."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lineage.errors import LineageError


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`--param key=value` options as a mapping (the filter's params model converts and checks the values)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LineageError(f"--param must look like key=value, got `{pair}`")
        out[key.strip()] = value
    return out


def parse_assignments(items: Sequence[str], flag: str) -> dict[str, float]:
    """`NAME=VALUE` strings as a mapping; a bad one is a one-line error naming the flag."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(raw)
        except ValueError:
            raise LineageError(f"{flag} `{item}` must look like NAME=NUMBER, e.g. {flag} acc=0.61") from None
        if not math.isfinite(out[name.strip()]):
            raise LineageError(f"{flag} `{item}`: the value must be a finite number, not NaN or infinity")
    return out
