"""Group registered models into lineages: the chains a training loop makes, generation after generation.

The rule, in order:

1. Models linked by `parent` form trees; every root-to-leaf path is one lineage (a branch shares its
   ancestors with its siblings, so each line starts where the loop started).
2. Models with neither parent nor children are grouped by name prefix: the name without a trailing
   `-g<N>`, `-m<N>`, `-gen<N>`, `-v<N>` or plain digits (`replace-m3` -> `replace`, `run7` -> `run`),
   ordered by that number, then by registration.
3. If that leaves only one-model groups, the prefixes say nothing, so all those models form one lineage
   in registration order.

A lineage is *mitigated* when every build in it keeps at least `MITIGATED_REAL_SHARE` real data: the
usual remedy against collapse (mix or accumulate real data) rather than training on the last model's
outputs alone.
"""

from __future__ import annotations

import re
from typing import Any

MITIGATED_REAL_SHARE = 0.10
_SUFFIX = re.compile(r"^(?P<prefix>.+?)(?:[-_.](?:gen|g|m|v)?)?(?P<n>\d+)$", re.IGNORECASE)
RULE = (
    "Lineages follow parent links (one per root-to-leaf chain); models without links are grouped by their "
    "name without a trailing -g<N>/-m<N>/digits, or form a single lineage when no two share a prefix. "
    f"A lineage is mitigated when every build in it keeps at least {MITIGATED_REAL_SHARE:.0%} real data."
)


def prefix(name: str) -> tuple[str, int | None]:
    """`replace-m3` -> (`replace`, 3); a name without a trailing number is its own prefix."""
    found = _SUFFIX.match(name)
    return (found["prefix"], int(found["n"])) if found else (name, None)


def group_lineages(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`models`: dicts with `name` and `parent`, parents before children. Returns lineages as dicts with
    `name`, `models` (names in generation order) and `rule` (`parent`, `prefix` or `all`)."""
    names = [m["name"] for m in models]
    parent = {m["name"]: m["parent"] for m in models if m["parent"] in names}
    linked = set(parent) | set(parent.values())
    leaves = [n for n in names if n in linked and n not in parent.values()]
    chains = [_chain(leaf, parent) for leaf in leaves]
    chains.sort(key=lambda c: (names.index(c[0]), names.index(c[-1])))
    out = [{"name": "", "models": c, "rule": "parent"} for c in chains]
    out += _loose([n for n in names if n not in linked])
    return _named(out)


def _chain(leaf: str, parent: dict[str, str]) -> list[str]:
    chain = [leaf]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    return chain[::-1]


def _loose(names: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(prefix(name)[0], []).append(name)
    if len(groups) > 1 and all(len(g) == 1 for g in groups.values()):
        return [{"name": "models", "models": names, "rule": "all"}]
    for members in groups.values():
        members.sort(key=lambda n: (prefix(n)[1] is None, prefix(n)[1] or 0, names.index(n)))
    return [{"name": p, "models": m, "rule": "prefix"} for p, m in groups.items()]


def _named(lineages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chains are named by their leaf's prefix when that is unique, else by the leaf itself."""
    taken = {lin["name"] for lin in lineages if lin["rule"] != "parent"}
    stems = [prefix(lin["models"][-1])[0] for lin in lineages if lin["rule"] == "parent"]
    for lin in lineages:
        if lin["rule"] == "parent":
            stem = prefix(lin["models"][-1])[0]
            lin["name"] = stem if stems.count(stem) == 1 and stem not in taken else lin["models"][-1]
    return lineages


def mitigated(real_shares: list[float | None]) -> bool | None:
    """Whether every build of a lineage keeps enough real data (None: no build composition known)."""
    known = [s for s in real_shares if s is not None]
    return min(known) >= MITIGATED_REAL_SHARE if known else None
