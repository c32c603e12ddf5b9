"""What `lineage build` and `lineage build show` print: a build's outcome and a committed build's details, as a
document for scripts (JSON) and as lines for people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage.errors import flag

if TYPE_CHECKING:
    from lineage.build.record import BuildRecord

JSON_COLUMNS = ("spec", "composition", "allocation", "floors", "checks")  # JSON text in the `builds` row


@dataclass(frozen=True)
class BuildOutcome:
    """What a build made (or a dry run would make): a summary line, notes (filters refreshed first, stale
    filters, missed quotas), the allocation and floors tables, and the stale counts."""

    summary: str
    notes: list[str]
    allocation: list[dict[str, Any]]
    floors: list[dict[str, Any]]
    stale: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "notes": self.notes, "allocation": self.allocation, "floors": self.floors,
                "stale": self.stale}


def shortfalls(allocation: list[dict[str, Any]]) -> list[str]:
    """One line per quota whose target was missed (soft targets: the build went on without it)."""
    return [f"quota {r['name']}: {r['note']}" for r in allocation if r["kind"] == "quota" and r.get("note")]


def stale_lines(stale: dict[str, int], *, dry_run: bool) -> list[str]:
    if not stale:
        return []
    counts = ", ".join(f"{k} {v:,}" for k, v in stale.items())
    if dry_run:
        return [f"stale: honoured filters have not seen pool samples ({counts}); a build needs {flag('refresh')}"]
    return [f"built with {flag('allow_stale')}: honoured filters had not seen pool samples ({counts})"]


@dataclass(frozen=True)
class BuildDetails:
    """A committed build version: its row (JSON columns as objects), licences and the contamination check as it
    stands now (`doc`, for scripts), and the same for people (`lines`)."""

    doc: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.doc

    def lines(self) -> list[str]:
        """The first line names the build; the others are indented under it."""
        doc = self.doc
        lines = [
            f"{doc['name']}@v{doc['build_version']}: {doc['size']:,} samples, seed {doc['seed']}, "
            f"store version {doc['store_version']}, spec {doc['spec_hash'][:12]}"
        ]
        body = [f"{dim}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                for dim, counts in doc["composition"].items()]
        body.append("licenses: " + ", ".join(
            f"{r['license']} {r['count']:,} ({r['share']:.1%})" for r in doc["licenses"]
        ))
        body += [f"warning: {line}" for line in doc["license_warnings"]]
        body += contamination_lines(doc["checks"])
        stale = doc["checks"].get("stale_filters", {})
        if stale:
            body.append(f"stale (built with {flag('allow_stale')}): " + ", ".join(
                f"{k} {v:,}" for k, v in stale.items()
            ))
        body += shortfalls(doc["allocation"])
        return lines + [f"  {line}" for line in body]


def build_details(build: BuildRecord) -> BuildDetails:
    from lineage.licenses import warnings

    mix = build.licenses()
    doc = {k: (json.loads(v) if k in JSON_COLUMNS else v) for k, v in build.info.items()}
    doc["licenses"] = [r.as_dict() for r in mix]
    doc["license_warnings"] = warnings(mix)
    doc["checks"] = build.contamination()
    return BuildDetails(doc)


def contamination_lines(check: dict[str, Any]) -> list[str]:
    """`Clean` only when the members were checked against every protected item there is now."""
    from lineage.build.checks import describe, leak_count  # the contamination detectors: only when shown

    if not check["protected_sets"]:
        return ["contamination: not checked (no protected set; `lineage set create NAME --protected`)"]
    against = f"{check['protected_samples']:,} protected items in {', '.join(check['protected_sets'])}"
    methods = ", ".join(check.get("methods", {})) or "exact, lineage"
    when = "re-checked now (protected sets changed since the build)" if check.get("rechecked") else "at build time"
    if check.get("clean", leak_count(check) == 0):
        return [f"contamination: clean against {against} ({methods}; {when})"]
    counts = ", ".join(f"{m} {check.get(f'{m}_matches', 0):,}" for m in ("exact", "near", "contained", "lineage"))
    lines = [f"contamination: CONTAMINATED, {leak_count(check):,} member(s) leak ({counts}) against {against} ({when})"]
    return lines + [f"  {describe(leak)}" for leak in check.get("leaks", [])]
