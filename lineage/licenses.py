"""Licences of samples: SPDX identifiers, the licence composition of a set of samples, and what to warn about.

Samples carry whatever `--license` said (`cc-by-4.0`, `MIT`, `WordNet-3.0`, nothing). An export and a build
say which licences they carry: count and share per licence (unknown included), each mapped to its SPDX id
where there is one, and flags for what a trainer must look at before use: non-commercial terms, no-derivatives
terms, share-alike (copyleft) terms, and samples of unknown licence.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LicenseShare", "composition", "spdx_id", "warnings"]

# Common dataset licences by their SPDX id; looked up case-insensitively, also without the version's ".0".
_SPDX = (
    "CC0-1.0", "CC-BY-1.0", "CC-BY-2.0", "CC-BY-2.5", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0",
    "CC-BY-NC-2.0", "CC-BY-NC-3.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "MPL-2.0", "GPL-2.0-only",
    "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-2.1-only", "LGPL-3.0-only", "AGPL-3.0-only", "Unlicense",
    "ODC-By-1.0", "ODbL-1.0", "PDDL-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "OpenRAIL", "WTFPL",
)
_ALIASES = {
    "cc0": "CC0-1.0", "public-domain": "PDDL-1.0", "apache": "Apache-2.0", "apache2": "Apache-2.0",
    "gpl-3.0": "GPL-3.0-only", "gpl-2.0": "GPL-2.0-only", "lgpl-3.0": "LGPL-3.0-only", "agpl-3.0": "AGPL-3.0-only",
    "odc-by": "ODC-By-1.0", "odbl": "ODbL-1.0", "pddl": "PDDL-1.0", "bsd": "BSD-3-Clause",
}
_LOOKUP = {s.lower(): s for s in _SPDX} | _ALIASES
UNKNOWN = "unknown"


def spdx_id(name: str | None) -> str | None:
    """The SPDX id of a licence name as users write it (`cc-by-4.0` -> `CC-BY-4.0`), or None if it has none."""
    if name is None:
        return None
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    return _LOOKUP.get(key) or _LOOKUP.get(re.sub(r"\.0$", "", key) + ".0") or _LOOKUP.get(re.sub(r"\.0$", "", key))


@dataclass(frozen=True)
class LicenseShare:
    """One licence in a mix: the name the samples carry (`unknown` for none), its SPDX id, count and share."""

    license: str
    spdx: str | None
    count: int
    share: float
    non_commercial: bool
    no_derivatives: bool
    share_alike: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def url(self) -> str | None:
        return f"https://spdx.org/licenses/{self.spdx}.html" if self.spdx else None


def composition(counts: dict[str | None, int]) -> list[LicenseShare]:
    """Count and share per licence, largest first; a missing licence (None or empty) counts as `unknown`."""
    merged: dict[str, int] = {}
    for name, n in counts.items():
        key = name.strip() if name and name.strip() else UNKNOWN
        merged[key] = merged.get(key, 0) + n
    total = sum(merged.values()) or 1
    rows = []
    for name, n in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])):
        spdx = None if name == UNKNOWN else spdx_id(name)
        terms = (spdx or name).upper()
        rows.append(
            LicenseShare(
                license=name,
                spdx=spdx,
                count=n,
                share=round(n / total, 6),
                non_commercial="-NC" in terms or "NONCOMMERCIAL" in terms,
                no_derivatives="-ND" in terms,
                share_alike="-SA" in terms or terms.startswith(("GPL", "LGPL", "AGPL")) or "SHARING" in terms,
            )
        )
    return rows


def warnings(mix: list[LicenseShare]) -> list[str]:
    """What a trainer must check before using a mix, one line each (empty when nothing needs a look)."""
    out = []
    total = sum(r.count for r in mix)
    for what, rows in (
        ("non-commercial", [r for r in mix if r.non_commercial]),
        ("no-derivatives", [r for r in mix if r.no_derivatives]),
        ("share-alike", [r for r in mix if r.share_alike]),
        ("unknown", [r for r in mix if r.license == UNKNOWN]),
        ("not an SPDX licence", [r for r in mix if r.license != UNKNOWN and r.spdx is None]),
    ):
        if rows:
            n = sum(r.count for r in rows)
            names = ", ".join(r.license for r in rows)
            out.append(f"{n:,} of {total:,} samples ({n / max(total, 1):.1%}) are {what}: {names}")
    return out
