"""Store: the facade over a store handle (`lineage.core.handle`), one method per user verb.

This is the only module that imports the capabilities (ingest, filters, builds, ...); they take the handle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.handle import StoreCore, Transaction
from lineage.errors import LineageError

if TYPE_CHECKING:
    from lineage.diversity import DiversityResult
    from lineage.export import ExportResult
    from lineage.filters.run import RunResult
    from lineage.ingest import IngestResult
    from lineage.maintenance import DoctorReport
    from lineage.status import StoreStatus


class Store(StoreCore):
    """A lineage store directory (see `StoreCore` for connections, reads and transactions)."""

    def _auto_compact(self) -> None:
        """The automatic policy (see `lineage.compaction`): merge small segments when too many have piled up, as a
        commit of its own after the one just made."""
        from lineage.compaction import auto_compact

        auto_compact(self)

    def ingest(self, data: Any, /, **options: Any) -> IngestResult:
        """Ingest a file path, Arrow table, Polars frame, Hugging Face dataset or iterable of dicts; see
        `lineage.ingest`."""
        from lineage.ingest import ingest

        return ingest(self, data, **options)

    def ingest_many(self, inputs: list[Any], /, **options: Any) -> list[IngestResult]:
        """Ingest several inputs in one commit, one batch each (`lineage ingest PATH...`)."""
        from lineage.ingest import ingest_many

        return ingest_many(self, inputs, **options)

    def run_filter(self, name: str, /, **options: Any) -> RunResult:
        """Run filter `name` (params=, where=, force=, module=, engine=); see `lineage.filters.run`."""
        from lineage.filters.run import run_filter

        return run_filter(self, name, **options)

    def runs(self, filter_name: str | None = None) -> pa.Table:
        """Filter runs, oldest first, with drops by source and a warning per source a run dropped >90% of."""
        from lineage.filters.run import history

        return history(self, filter_name)

    def build(
        self,
        spec: Any,
        /,
        *,
        dry_run: bool = False,
        as_of: int | None = None,
        refresh: bool = False,
        allow_stale: bool = False,
    ) -> Any:
        """Plan and commit a build from a spec (path, dict or BuildSpec); returns a Build (or a BuildPlan).
        `refresh`: run stale honoured filters over their unseen samples first; `allow_stale`: build anyway."""
        from lineage.build import build

        return build(self, spec, dry_run=dry_run, as_of=as_of, refresh=refresh, allow_stale=allow_stale)

    def status(self) -> StoreStatus:
        """Per filter, the samples it has not seen (by source); per build, whether the store changed since."""
        from lineage.status import status

        return status(self)

    def export(self, build: str, output: str | Path, /, **options: Any) -> ExportResult:
        """Export build NAME[@vN] at `output` (see Build.export for the options)."""
        from lineage.build import Build

        return Build.parse(self, build).export(output, **options)

    def builds(self) -> pa.Table:
        return self.sql(
            "SELECT name, build_version, size, pool_size, seed, store_version, spec_hash, created_at FROM builds "
            "ORDER BY name, build_version"
        )

    def sample(self, sample_id: str) -> dict[str, Any]:
        from lineage.inspect import sample

        return sample(self, sample_id)

    def ancestors(self, sample_id: str) -> pa.Table:
        from lineage.inspect import relatives

        return relatives(self, sample_id, "ancestors")

    def descendants(self, sample_id: str) -> pa.Table:
        from lineage.inspect import relatives

        return relatives(self, sample_id, "descendants")

    def stats(self, *, by: list[str] | tuple[str, ...] = ("origin",)) -> pa.Table:
        from lineage.inspect import stats

        return stats(self, by=list(by))

    def diversity(self, **options: Any) -> DiversityResult:
        """Diversity per group (by=, where=, sample_ids=, build=, metrics=, reference=, sample_size=, draws=,
        seed=, record=, embed=, engine="local"|"ray", workers=, ray_address=); `.table` is a pyarrow.Table, one
        row per group. See `lineage.diversity`."""
        from lineage.diversity import diversity

        return diversity(self, **options)

    def register_model(self, name: str, /, **options: Any) -> dict[str, Any]:
        """Register model `name` (trained_on=BUILD[@vN], parent=, notes=); see `lineage.models`."""
        from lineage.models import register_model

        return register_model(self, name, **options)

    def record_eval(self, model: str, /, **options: Any) -> Any:
        """Record eval metrics of `model` (metrics={name: value}, benchmark=, eval_set=, stderr=)."""
        from lineage.evals import record_eval

        return record_eval(self, model, **options)

    def check(self, model: str, /, *, baseline: str | None = None, thresholds: Any = None) -> Any:
        """The symptoms of degradation of `model` against `baseline` (default: its parent) and its training
        build's health, each against a threshold (a `lineage.check.Thresholds`); returns a CheckResult."""
        from lineage.check import check_model

        return check_model(self, model, baseline=baseline, thresholds=thresholds)

    def rollback(self, model: str, /, *, to: str | None = None) -> Any:
        """Record that builds whose policy is `after: model` draw from the store as it was when the training build
        of `to` (an ancestor whose check passes; default the last one) was made; returns a policy.Rollback."""
        from lineage.build.policy import rollback

        return rollback(self, model, to=to)

    def attribute(self, metric: str, /, **options: Any) -> Any:
        """Attribute an eval metric to groups of the models' training data (by=, models=, benchmark=, seed=)."""
        from lineage.attribution import attribute

        return attribute(self, metric, **options)

    def report(self, kind: str, ref: str | None = None, /, **options: Any) -> Path:
        """Write a report: `build` (ref NAME[@vN]) or `models` (metric=, benchmark=, by=) to output= as HTML,
        Markdown or JSON (format=, default from the extension); see `lineage.report`."""
        from lineage.report import report

        return report(self, kind, ref, **options)

    def doctor(self) -> DoctorReport:
        from lineage.maintenance import doctor

        return doctor(self)

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy of this store at `dest` (a new directory outside it), taken while readers run."""
        from lineage.maintenance import backup

        return backup(self, self.output_path(dest, option="backup DIR"))

    def gc(
        self, *, dry_run: bool = True, retain_versions: int | None = None, older_than: float | None = None
    ) -> list[str]:
        """Remove orphans; with a retention, also the segments compaction replaced that no retained version reads:
        `retain_versions` keeps the last N versions readable, `older_than` (seconds) those committed since then."""
        from lineage.maintenance import gc

        return gc(self, dry_run=dry_run, retain_versions=retain_versions, older_than=older_than)

    def compact(self, *, kinds: tuple[str, ...] = ("samples", "events"), target_rows: int | None = None) -> Any:
        """Rewrite the small sample and events segments into large ones sorted by sample_id, as one commit; the
        replaced segments stay for earlier versions until `gc` with a retention. Returns a CompactResult."""
        from lineage.compaction import DEFAULT_TARGET_ROWS, compact

        return compact(self, kinds=kinds, target_rows=target_rows or DEFAULT_TARGET_ROWS)

    def set_auto_compact(self, segments: int | None) -> None:
        """Compact automatically once more than `segments` small segments of a kind pile up; None turns it off."""
        from lineage.compaction import set_auto_compact

        set_auto_compact(self, segments)


def open(path: str | os.PathLike[str] = "lineage-store", *, as_of: int | None = None, wait: float = 0.0) -> Store:  # noqa: A001
    """Open an existing store (see `Store.init` to create one)."""
    return Store(path, as_of=as_of, wait=wait)


__all__ = ["LineageError", "Store", "Transaction", "open"]
