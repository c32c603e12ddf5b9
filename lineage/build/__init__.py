"""Builds: immutable, versioned training sets drawn from the store by a spec.

spec -> pool (filters, protected sets) -> allocation (MILP) -> seeded sampling -> checks -> commit
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pyarrow as pa

from lineage.build.allocate import allocate, resolve_size
from lineage.build.pool import check_protected, create_pool, excluded_now, pool_views
from lineage.build.record import BuildRecord
from lineage.build.sample import select_members
from lineage.build.show import BuildOutcome, StaleChoice, shortfalls, size_note, stale_lines
from lineage.build.spec import BuildSpec, load_spec
from lineage.build.stale import describe as describe_stale
from lineage.build.stale import refresh as refresh_filters
from lineage.build.stale import stale_filters
from lineage.core.segments import atomic_write_bytes, write_parquet
from lineage.dimensions import PROVENANCE_DIMENSIONS
from lineage.errors import InfeasibleSpec, LineageError, SpecError, StaleFilters
from lineage.progress import Progress, stepper
from lineage.schemas import BUILD_MEMBERS, BUILDS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.export import ExportResult

__all__ = ["Build", "BuildPlan", "InfeasibleSpec", "SpecError", "StaleFilters", "build", "load_spec"]

COMPOSITION_DIMS = PROVENANCE_DIMENSIONS


@dataclass(frozen=True)
class BuildPlan:
    """What a build would contain: the allocation table and floors (a dry run stops here)."""

    spec: BuildSpec
    store_version: int
    pool_size: int
    allocation: list[dict[str, Any]]
    floors: list[dict[str, Any]]
    stale: dict[str, int] = field(default_factory=dict)  # honoured filter -> pool samples it has not seen
    refreshed: list[str] = field(default_factory=list)  # summaries of the runs `refresh` made first
    size_max: bool = False  # the spec asked for `size: max` (spec.size is the number it resolved to)
    on_stale: StaleChoice = None  # what the build this dry run previews would do about stale filters

    def shortfalls(self) -> list[str]:
        return shortfalls(self.allocation)

    def outcome(self) -> BuildOutcome:
        """What the dry run found, for people and scripts."""
        assert isinstance(self.spec.size, int)  # resolved by the plan
        summary = (f"dry run {self.spec.name}: {self.spec.size:,} samples{' (size: max)' * self.size_max} from a "
                   f"pool of {self.pool_size:,} (store version {self.store_version})")
        notes = [*stale_lines(self.stale, dry_run=True, then=self.on_stale), *self.shortfalls()]
        return BuildOutcome(summary, notes, self.allocation, self.floors, self.stale, size=self.spec.size,
                            pool_size=self.pool_size, store_version=self.store_version)


def build(
    store: StoreCore,
    spec: BuildSpec | str | Path | dict[str, Any],
    *,
    dry_run: bool = False,
    as_of: int | None = None,
    refresh: bool = False,
    allow_stale: bool = False,
    progress: Progress | None = None,
) -> Build | BuildPlan:
    """Plan and (unless dry_run) commit a build; reads the store as of `as_of` (default: now).

    A filter the pool honours that has not seen samples of the pool makes the build fail (`StaleFilters`),
    unless `refresh` (run those filters over their new samples first) or `allow_stale` (build anyway and
    record the counts in the build's checks). `progress(done, total)` is told each of the BUILD_STEPS done."""
    from lineage.build.policy import apply_policy

    step = stepper(progress, PLAN_STEPS if dry_run else BUILD_STEPS)

    spec = spec if isinstance(spec, BuildSpec) else load_spec(spec)
    check_protected(store, spec.protected)
    refreshed = []
    if refresh and as_of is None and not dry_run:
        refreshed = [r.summary() for r in refresh_filters(store, spec)]
    source = store.at(as_of) if as_of is not None else store
    spec, decision = apply_policy(source, spec)
    if decision is not None and decision.get("as_of") is not None:  # a rollback: draw from the snapshot
        source = store.at(decision["as_of"])
    if dry_run:
        plan = _plan(source, spec, step, _excluded(store, source, spec)[1])[0]
        on_stale: StaleChoice = "refresh" if refresh and as_of is None else "allow" if allow_stale else None
        return replace(plan, stale={s.filter: s.unseen for s in stale_filters(source, spec)}, on_stale=on_stale)
    with store.transaction("build", spec.name, {"build": spec.name}) as txn:
        current, excluded = _excluded(store, source, spec)  # under the writer lock: nothing changes it until commit
        stale = stale_filters(source, spec)
        if stale and not allow_stale:
            raise StaleFilters(spec.name, stale, describe_stale(stale))
        plan, members = _plan(source, spec, step, excluded)
        plan = replace(plan, stale={s.filter: s.unseen for s in stale}, refreshed=refreshed)
        version = _next_version(store, spec.name)
        folder = f"builds/{spec.name}/v{version}"
        seg = txn.write_segment(
            "build",
            f"{spec.name}@v{version}",
            lambda tmp: write_parquet(tmp, BUILD_MEMBERS, members.to_batches(65_536)),
            folder=folder,
            filename="members.parquet",
        )
        step()
        row = _build_row(source, plan, members, version, seg.path, seg.sha256, txn.version, checked_at=current)
        step()
        if decision is not None:  # which rule fired and why, beside the contamination checks
            row["checks"] = json.dumps({**json.loads(row["checks"]), "policy": decision})
        atomic_write_bytes(store.root / folder / "manifest.json", _manifest(row).encode())
        txn.add_rows("builds", pa.Table.from_pylist([row], schema=BUILDS))
    result = Build(store, spec.name, version)
    result.refreshed = refreshed
    return result


def _excluded(store: StoreCore, source: StoreCore, spec: BuildSpec) -> tuple[StoreCore, pa.Table | None]:
    """The store as of its latest version, and what it excludes (`excluded_now`) when the build draws from an
    earlier one (`source`: `--as-of`, a policy's rollback): sets protected, samples taken down or found
    contaminated since then stay out too, and the members are checked against the protected sets of now. Before,
    such a build took them, and its checks (run on the old version) said clean."""
    if source.as_of is None:
        return source, None
    current = store.at(store.version)
    return current, excluded_now(current, spec)


# What a build's progress counts: the pool, its allocation, the members drawn, the floors checked (a plan's
# steps), then the members file written and the build's checks (contamination, composition) done.
PLAN_STEPS, BUILD_STEPS = 4, 6


def _plan(
    store: StoreCore, spec: BuildSpec, step: Callable[[], None] = lambda: None, excluded: pa.Table | None = None
) -> tuple[BuildPlan, pa.Table]:
    with store.reader(views=pool_views(spec), locked=True) as con:
        pool = create_pool(con, spec, excluded)
        step()
        size_max, spec = spec.size == "max", resolve_size(spec, pool)
        allocation = allocate(spec, pool)
        step()
        members = select_members(con, pool, allocation, seed=spec.seed, spread=bool(spec.floors))
        step()
    floors = _floors(store, spec, members)
    step()
    plan = BuildPlan(spec, store.version, pool.size, allocation.rows(pool, allocation.size), floors,
                     size_max=size_max)
    return plan, members


def _floors(store: StoreCore, spec: BuildSpec, members: pa.Table) -> list[dict[str, Any]]:
    if not spec.floors:
        return []
    from lineage.build.floors import check_floors

    return check_floors(store, spec, members)


def _next_version(store: StoreCore, name: str) -> int:
    found = store.query("SELECT max(build_version) AS v FROM builds WHERE name = ?", params=[name])["v"][0].as_py()
    return (found or 0) + 1


def _composition(store: StoreCore, members: pa.Table) -> dict[str, Any]:
    with store.reader(views={"samples"}) as con:
        con.register("_members", members)
        out = {}
        for dim in COMPOSITION_DIMS:
            rows = con.execute(
                f"SELECT CAST(s.{dim} AS VARCHAR), count(*) FROM _members m JOIN samples s USING (sample_id) "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
            counts: dict[str, int] = {}
            for k, v in rows:  # none given: `unknown`, as for licences (added to a value of that name, if any)
                key = "unknown" if k is None else str(k)
                counts[key] = counts.get(key, 0) + v
            out[dim] = counts
    return out


def _checks(store: StoreCore, spec: BuildSpec, members: pa.Table) -> dict[str, Any]:
    """Re-check the members against protected sets: exact text and lineage (ancestor in a protected set)."""
    from lineage.build.checks import contamination_check

    return contamination_check(store, spec.protected, members["sample_id"])


def _build_row(
    store: StoreCore, plan: BuildPlan, members: pa.Table, version: int, path: str, sha: str, commit_version: int,
    *, checked_at: StoreCore,
) -> dict[str, Any]:
    checks = _checks(checked_at, plan.spec, members)
    if not checks["clean"]:
        from lineage.build.checks import describe, leak_count

        raise LineageError(
            f"build {plan.spec.name} would contain protected data: {describe(checks['leaks'][0])}; "
            f"{leak_count(checks):,} member(s) leak in all; `lineage filter run contamination` drops them; "
            "nothing was written"
        )
    if plan.stale:  # built with --allow-stale: pool samples these filters never saw
        checks["stale_filters"] = plan.stale
    if plan.size_max:  # the spec recorded holds the number; that it was the most the pool allowed is said here
        checks["size"] = "max"
    return {
        "name": plan.spec.name,
        "build_version": version,
        "spec": plan.spec.canonical(),
        "spec_hash": hashlib.sha256(plan.spec.canonical().encode()).hexdigest(),
        "seed": plan.spec.seed,
        "store_version": plan.store_version,
        "size": members.num_rows,
        "pool_size": plan.pool_size,
        "composition": json.dumps(_composition(store, members)),
        "allocation": json.dumps(plan.allocation),
        "floors": json.dumps(plan.floors),
        "checks": json.dumps(checks),
        "members_path": path,
        "members_sha256": sha,
        "created_at": datetime.now(UTC),
        "version": commit_version,
    }


def _manifest(row: dict[str, Any]) -> str:
    doc = {
        k: (json.loads(v) if k in ("spec", "composition", "allocation", "floors", "checks") else v)
        for k, v in row.items()
    }
    return json.dumps(doc, indent=2, default=str, sort_keys=True) + "\n"


class ExportFields(TypedDict, total=False):
    """The keyword options of `Build.export` (and `Store.export`); their defaults and meaning are there."""

    format: str
    columns: list[str] | tuple[str, ...] | None
    verbatim: bool | None
    with_provenance: bool
    split: dict[str, float] | list[str] | None
    split_seed: int | None
    shard_size: str | int | None
    force: bool
    batch_rows: int
    progress: Progress | None


class Build(BuildRecord):
    """A committed build version: its catalog row, its members (see `BuildRecord`), and exports."""

    def outcome(self) -> BuildOutcome:
        """What the build made, for people and scripts (`lineage build`)."""
        info = self.info
        checks = json.loads(info["checks"])
        stale = checks.get("stale_filters", {})
        allocation = json.loads(info["allocation"])
        summary = (f"built {self.name}@v{self.version}: {info['size']:,} samples{size_note(checks)} from a pool of "
                   f"{info['pool_size']:,} (store version {info['store_version']})")
        notes = [*self.refreshed, *stale_lines(stale, dry_run=False), *shortfalls(allocation)]
        return BuildOutcome(summary, notes, allocation, json.loads(info["floors"]), stale, size=info["size"],
                            pool_size=info["pool_size"], store_version=info["store_version"])

    def export(
        self,
        output: str | Path,
        *,
        format: str = "parquet",  # noqa: A002 - the CLI's name
        columns: list[str] | tuple[str, ...] | None = None,
        verbatim: bool | None = None,
        with_provenance: bool = False,
        split: dict[str, float] | list[str] | None = None,
        split_seed: int | None = None,
        shard_size: str | int | None = None,
        force: bool = False,
        batch_rows: int = 65_536,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Write an export at `output` (see lineage.export): text and messages by default, `verbatim` for the
        records as they were (the default for jsonl); `split={"validation": 0.01}`; `shard_size` rows or "500MB";
        a non-empty `output` needs `force`, which replaces it whole; the hf format streams `batch_rows` at a time.
        `progress(done, total)` counts the samples written."""
        from lineage.export import ExportOptions, export_build, parse_shard_size
        from lineage.export.splits import parse_splits

        options = ExportOptions(
            format=format,
            columns=tuple(columns) if columns else None,
            verbatim=verbatim,
            provenance=with_provenance,
            splits=parse_splits(split),
            split_seed=split_seed,
            shards=parse_shard_size(shard_size),
            force=force,
            batch_rows=batch_rows,
        )
        return export_build(self, self.store.output_path(output), options, progress=progress)

    def iter_batches(
        self, *, batch_size: int = 65_536, columns: list[str] | tuple[str, ...] | None = None,
        with_provenance: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The members as Arrow record batches (`text` and `messages` by default, any export column by name), in
        sample_id order, streamed from the store: for a training loader, without an export."""
        from lineage.export import iter_batches

        return iter_batches(self, batch_size=batch_size, columns=columns, provenance=with_provenance)

    def to_hf(self, *, columns: list[str] | tuple[str, ...] | None = None, with_provenance: bool = False) -> Any:
        """The members as a `datasets.Dataset` (needs the `hf` extra)."""
        try:
            import datasets
        except ImportError:
            raise LineageError("to_hf needs the `datasets` package: pip install 'lineage[hf]'") from None
        batches = list(self.iter_batches(columns=columns, with_provenance=with_provenance))
        from lineage.export import columns as cols

        schema = batches[0].schema if batches else None
        table = pa.Table.from_batches(batches, schema=schema) if batches else pa.table(
            {c: pa.array([], pa.string()) for c in cols.choose(columns, provenance=with_provenance)}
        )
        return datasets.Dataset(table)
