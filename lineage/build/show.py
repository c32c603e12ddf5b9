"""What `lineage build` and `lineage build show` print: a build's outcome and a committed build's details, as a
document for scripts (JSON) and as lines for people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lineage.errors import flag

if TYPE_CHECKING:
    from lineage.build.record import BuildRecord

JSON_COLUMNS = ("spec", "composition", "allocation", "floors", "checks")  # JSON text in the `builds` row


@dataclass(frozen=True)
class BuildOutcome:
    """What a build made (or a dry run would make): a summary line, notes (filters refreshed first, stale
    filters, missed quotas), the allocation and floors tables, the stale counts, and the figures of the summary."""

    summary: str
    notes: list[str]
    allocation: list[dict[str, Any]]
    floors: list[dict[str, Any]]
    stale: dict[str, int]
    size: int
    pool_size: int
    store_version: int

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "size": self.size, "pool_size": self.pool_size,
                "store_version": self.store_version, "notes": self.notes, "allocation": self.allocation,
                "floors": self.floors, "stale": self.stale}


def shortfalls(allocation: list[dict[str, Any]]) -> list[str]:
    """One line per quota whose target was missed (soft targets: the build went on without it)."""
    return [f"quota {r['name']}: {r['note']}" for r in allocation if r["kind"] == "quota" and r.get("note")]


StaleChoice = Literal["refresh", "allow"] | None  # what a build does about stale filters: --refresh, --allow-stale


def stale_lines(stale: dict[str, int], *, dry_run: bool, then: StaleChoice = None) -> list[str]:
    """For a dry run, what the build it previews will do (`then`): a dry run writes nothing, so it runs no
    filter, and its figures are of the pool as the filters leave it now."""
    if not stale:
        return []
    counts = ", ".join(f"{k} {v:,}" for k, v in stale.items())
    if not dry_run:
        return [f"built with {flag('allow_stale')}: honoured filters had not seen pool samples ({counts})"]
    seen = f"stale: honoured filters have not seen pool samples ({counts})"
    if then == "refresh":
        return [f"{seen}; the build will run them first ({flag('refresh')}), so the samples they drop leave its "
                "pool: its size and allocation may differ from this dry run's"]
    if then == "allow":
        return [f"{seen}; the build will take them undecided ({flag('allow_stale')}) and record the counts"]
    return [f"{seen}; a build needs {flag('refresh')} (run them first) or {flag('allow_stale')}"]


def size_note(checks: dict[str, Any]) -> str:
    """` (size: max)` for a build whose spec asked for the most the pool and quotas allowed."""
    return " (size: max)" if checks.get("size") == "max" else ""


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
            f"{doc['name']}@v{doc['build_version']}: {doc['size']:,} samples{size_note(doc['checks'])}, "
            f"seed {doc['seed']}, "
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
    from lineage.build.checks import describe, leak_count  # the detectors: only when shown

    if not check["protected_sets"]:
        return ["contamination: not checked (no protected set; `lineage set create NAME --protected`)"]
    against = f"{check['protected_samples']:,} protected items in {', '.join(check['protected_sets'])}"
    methods = ", ".join(check.get("methods", {})) or "exact, lineage"
    when = "re-checked now (protected sets changed since the build)" if check.get("rechecked") else "at build time"
    if check.get("filter_matches"):
        when += "; the filter's drops as of now"
    if check.get("clean", leak_count(check) == 0) and check.get("unverified"):
        return [f"contamination: NOT VERIFIED: no leak found against {against} ({methods}; {when}), but "
                f"{check['unverified']}"]
    if check.get("clean", leak_count(check) == 0):
        return [f"contamination: clean against {against} ({methods}; {when})"]
    counts = ", ".join(f"{m} {check.get(f'{m}_matches', 0):,}" for m in ("exact", "near", "contained", "lineage"))
    if check.get("filter_matches"):  # dropped by `lineage filter run contamination`, which sees more ancestors
        counts += f", dropped by the contamination filter {check['filter_matches']:,}"
    lines = [f"contamination: CONTAMINATED, {leak_count(check):,} member(s) leak ({counts}) against {against} ({when})"]
    return lines + [f"  {describe(leak)}" for leak in check.get("leaks", [])]
