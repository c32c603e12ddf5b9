"""Store: the facade over a store handle (`lineage.core.handle`), one method per user verb.

This is the only module that imports the capabilities (ingest, filters, builds, ...); they take the handle."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack

import pyarrow as pa

from lineage.core.handle import StoreCore, Transaction
from lineage.errors import LineageError

if TYPE_CHECKING:
    from lineage.attribution import Attribution
    from lineage.build import Build, BuildPlan, ExportFields
    from lineage.build.policy import Rollback
    from lineage.build.show import BuildDetails
    from lineage.build.spec import BuildSpec
    from lineage.check import CheckResult, Thresholds
    from lineage.compaction import CompactResult
    from lineage.diversity import DiversityFields, DiversityResult
    from lineage.evals import EvalResult
    from lineage.export import ExportResult
    from lineage.filters.run import RunFields, RunResult
    from lineage.ingest import IngestResult
    from lineage.ingest.options import IngestFields
    from lineage.maintenance import DoctorReport
    from lineage.progress import Progress
    from lineage.status import StoreStatus


class Store(StoreCore):
    """A lineage store directory (see `StoreCore` for connections, reads and transactions)."""

    def _auto_compact(self) -> None:
        """The automatic policy (see `lineage.compaction`): merge small segments when too many have piled up, as a
        commit of its own after the one just made."""
        from lineage.compaction import auto_compact

        auto_compact(self)

    # -- ingest ------------------------------------------------------------------------------

    def ingest(
        self, data: Any, /, *, progress: Progress | None = None, **options: Unpack[IngestFields]
    ) -> IngestResult:
        """Ingest a file path, Arrow table, Polars frame, Hugging Face dataset or iterable of dicts with provenance
        `options` (origin=, source=, method=, generator=, ...: `lineage.ingest.options.IngestFields`)."""
        from lineage.ingest import ingest_many

        return ingest_many(self, [data], progress=progress, **options)[0]

    def ingest_many(
        self, inputs: list[Any], /, *, progress: Progress | None = None, **options: Unpack[IngestFields]
    ) -> list[IngestResult]:
        """Ingest several inputs in one commit, one batch each (`lineage ingest PATH...`)."""
        from lineage.ingest import ingest_many

        return ingest_many(self, inputs, progress=progress, **options)

    def ingest_paths(
        self,
        paths: Sequence[str],
        /,
        *,
        progress: Progress | None = None,
        stdin: BinaryIO | None = None,
        **options: Unpack[IngestFields],
    ) -> list[IngestResult]:
        """Ingest what `lineage ingest PATH...` names, in one commit: files, globs, directories of shards,
        Hugging Face folders, and `-` (read from `stdin`, default this process's standard input)."""
        from lineage.ingest.inputs import ingest_paths

        return ingest_paths(self, paths, progress=progress, stdin=stdin, **options)

    @staticmethod
    def ingest_unit(paths: Sequence[str], /, *, input_format: str | None = None) -> str:
        """What ingesting `paths` counts its progress in: `bytes` (JSON, JSON Lines) or `records` (the others)."""
        from lineage.ingest.inputs import progress_unit

        return progress_unit(paths, input_format)

    # -- filters and decisions ---------------------------------------------------------------

    def run_filter(self, name: str, /, **options: Unpack[RunFields]) -> RunResult:
        """Run filter `name` (a built-in one, or `module="package.module:Class"`) with `options` (params=, where=,
        force=, engine=, new_only=, dry_run=, ...: `lineage.filters.run.run_filter`)."""
        from lineage.filters.run import run_filter

        return run_filter(self, name, **options)

    @staticmethod
    def filters() -> list[dict[str, Any]]:
        """The filters lineage can run (no store needed): name, version, what each does, and its parameters as
        (name, required, default)."""
        from lineage.filters.builtin import describe_filters

        return describe_filters()

    def runs(self, filter_name: str | None = None) -> pa.Table:
        """Filter runs, oldest first, with drops by source and a warning per source a run dropped >90% of."""
        from lineage.filters.run import history

        return history(self, filter_name)

    def takedown(self, *, source: str | None = None, where: str | None = None, reason: str) -> RunResult:
        """Drop every sample of `source` (or matching `where`) and its descendants, as a `takedown` run."""
        from lineage.takedown import takedown

        return takedown(self, source=source, where=where, reason=reason)

    def import_decisions(self, path: str | Path, /, *, filter_name: str, reviewer: str | None = None) -> RunResult:
        """Record a file's decisions (by sample id or text) as one run of filter `filter_name`."""
        from lineage.decisions import import_decisions

        return import_decisions(self, path, filter_name=filter_name, reviewer=reviewer)

    def export_review(self, output: str | Path, /, *, where: str | None = None, n: int, seed: int = 0) -> int:
        """Write a review sheet of `n` samples (seeded) at `output`; returns how many rows it holds."""
        from lineage.decisions import export_review

        return export_review(self, output, where=where, n=n, seed=seed)

    def import_review(self, path: str | Path, /, *, reviewer: str) -> RunResult:
        """Record a filled-in review sheet as a `human-review` run."""
        from lineage.decisions import import_review

        return import_review(self, path, reviewer=reviewer)

    # -- sets --------------------------------------------------------------------------------

    def create_set(
        self,
        name: str,
        /,
        *,
        where: str | None = None,
        ids: list[str] | None = None,
        ids_file: str | Path | None = None,
        protected: bool = False,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create set `name` from a SQL predicate, a list of ids (sample ids or your own ids) or a file of them
        (`ids_file`, one a line), or empty."""
        from lineage.sets import create_set

        return create_set(
            self, name, where=where, ids=ids, ids_file=ids_file, protected=protected, description=description
        )

    def sets(self) -> pa.Table:
        """Named sets with their member counts, one row each."""
        from lineage.sets import list_sets

        return list_sets(self)

    def show_set(self, name: str, /, *, limit: int = 20) -> dict[str, Any]:
        """Set `name`: protection, member count, composition by origin and source, and `limit` members."""
        from lineage.sets import show_set

        return show_set(self, name, limit=limit)

    # -- builds ------------------------------------------------------------------------------

    def build(
        self,
        spec: BuildSpec | str | Path | dict[str, Any],
        /,
        *,
        dry_run: bool = False,
        as_of: int | None = None,
        refresh: bool = False,
        allow_stale: bool = False,
        progress: Progress | None = None,
    ) -> Build | BuildPlan:
        """Plan and commit a build from a spec (path, dict or BuildSpec); returns a Build (or a BuildPlan).
        It draws from the store as of `as_of`, or of the version this store was opened at (`lineage --as-of N
        build`), and commits at the head. `refresh`: run stale honoured filters over their unseen samples first;
        `allow_stale`: build anyway; `progress(done, total)`: told each step done."""
        from lineage.build import build

        writer: Store = self
        if self.as_of is not None:  # opened as of a version: draw from it, commit at the head
            as_of = self.as_of if as_of is None else as_of
            writer = Store(self.root, wait=self.wait)
        return build(
            writer, spec, dry_run=dry_run, as_of=as_of, refresh=refresh, allow_stale=allow_stale, progress=progress
        )

    def effective_spec(self, spec: BuildSpec | str | Path | dict[str, Any], /) -> BuildSpec:
        """The spec as a build would draw it now: its `policy` (if any) applied to its quotas and pool."""
        from lineage.build.policy import apply_policy
        from lineage.build.spec import BuildSpec, load_spec

        return apply_policy(self, spec if isinstance(spec, BuildSpec) else load_spec(spec))[0]

    def builds(self) -> pa.Table:
        """Builds and their versions, one row each."""
        from lineage.build.record import list_builds

        return list_builds(self)

    def build_version(self, ref: str, /) -> Build:
        """Build NAME or NAME@vN (its latest version when none is given)."""
        from lineage.build import Build

        return Build.parse(self, ref)

    def show_build(self, ref: str, /) -> BuildDetails:
        """Build NAME[@vN]: its spec, composition, allocation, floors, licences and contamination check as of now."""
        from lineage.build.show import build_details

        return build_details(self.build_version(ref))

    def diff(self, a: str, b: str, /) -> dict[str, Any]:
        """Two builds compared: composition and membership changes."""
        from lineage.build import Build
        from lineage.build.diff import diff

        return diff(Build.parse(self, a), Build.parse(self, b))

    def export(self, build: str, output: str | Path, /, **options: Unpack[ExportFields]) -> ExportResult:
        """Export build NAME[@vN] at `output` with `options` (format=, columns=, split=, shard_size=, force=, ...:
        `Build.export`)."""
        return self.build_version(build).export(output, **options)

    def status(self) -> StoreStatus:
        """Per filter, the samples it has not seen (by source); per build, whether the store changed since."""
        from lineage.status import status

        return status(self)

    # -- inspection --------------------------------------------------------------------------

    def sample(self, sample_id: str) -> dict[str, Any]:
        """A sample (by id, unique id prefix, your own id or SOURCE:ID) with its batch, sets, filter decisions,
        ancestors and descendants."""
        from lineage.inspect import sample

        return sample(self, sample_id)

    def ancestors(self, sample_id: str) -> pa.Table:
        """The sample's parents, their parents, ... with their depth."""
        from lineage.inspect import relatives

        return relatives(self, sample_id, "ancestors")

    def descendants(self, sample_id: str) -> pa.Table:
        """The sample's children, their children, ... with their depth."""
        from lineage.inspect import relatives

        return relatives(self, sample_id, "descendants")

    def stats(self, *, by: list[str] | tuple[str, ...] = ("origin",)) -> pa.Table:
        """Counts, shares and text lengths per group of the `by` dimensions."""
        from lineage.inspect import stats

        return stats(self, by=list(by))

    def diversity(self, **options: Unpack[DiversityFields]) -> DiversityResult:
        """Diversity per group of `by`; `.table` is a pyarrow.Table, one row per group. `options` (by=, where=,
        build=, metrics=, sample_size=, draws=, seed=, engine=, ...): `lineage.diversity.diversity`."""
        from lineage.diversity import diversity

        return diversity(self, **options)

    # -- models and evaluations --------------------------------------------------------------

    def register_model(
        self, name: str, /, *, trained_on: str, parent: str | None = None, notes: str | None = None
    ) -> dict[str, Any]:
        """Register model `name`, trained on build NAME[@vN]; see `lineage.models`."""
        from lineage.models import register_model

        return register_model(self, name, trained_on=trained_on, parent=parent, notes=notes)

    def models(self) -> pa.Table:
        """Models in lineage order (parents first), with the generation their outputs get."""
        from lineage.models import list_models

        return list_models(self)

    def record_eval(
        self,
        model: str,
        /,
        *,
        metrics: dict[str, float],
        stderr: dict[str, float] | None = None,
        benchmark: str | None = None,
        eval_set: str | None = None,
    ) -> EvalResult:
        """Record eval metrics of `model` ({name: value}, with their standard errors when known)."""
        from lineage.evals import record_eval

        return record_eval(self, model, metrics, stderr=stderr, benchmark=benchmark, eval_set=eval_set)

    def import_evals(self, model: str, path: str | Path, /, *, eval_set: str | None = None) -> EvalResult:
        """Record the metrics of an lm-evaluation-harness results file for `model`."""
        from lineage.evals import import_lm_eval

        return import_lm_eval(self, model, path, eval_set=eval_set)

    def eval_outputs(
        self,
        model: str,
        path: str | Path,
        /,
        *,
        metrics: str = "text",
        sample_size: int = 1000,
        draws: int = 5,
        seed: int = 0,
        reference: str = "origin = 'real'",
        progress: Progress | None = None,
    ) -> EvalResult:
        """Record the diversity of `model`'s outputs (a file of texts) as evals: `metrics` as `lineage diversity
        --metrics` takes them, against the `reference` samples."""
        from lineage.evals import eval_outputs

        return eval_outputs(
            self, model, path, metrics=metrics, sample_size=sample_size, draws=draws, seed=seed, reference=reference,
            progress=progress,
        )

    def evals(self, model: str | None = None) -> pa.Table:
        """Recorded evals (of `model`, or all)."""
        from lineage.evals import list_evals

        return list_evals(self, model)

    def check(
        self, model: str, /, *, baseline: str | None = None, thresholds: Thresholds | str | Path | None = None
    ) -> CheckResult:
        """The symptoms of degradation of `model` against `baseline` (default: its parent) and its training
        build's health, each against a threshold (a `lineage.check.Thresholds`, or a YAML file of them)."""
        from lineage.check import check_model, load_thresholds

        if isinstance(thresholds, str | Path):
            thresholds = load_thresholds(thresholds)
        return check_model(self, model, baseline=baseline, thresholds=thresholds)

    def rollback(self, model: str, /, *, to: str | None = None) -> Rollback:
        """Record that builds whose policy is `after: model` draw from the store as it was when the training build
        of `to` (an ancestor whose check passes; default the last one) was made."""
        from lineage.build.policy import rollback

        return rollback(self, model, to=to)

    def attribute(
        self,
        metric: str,
        /,
        *,
        by: str = "source",
        models: list[str] | None = None,
        benchmark: str | None = None,
        higher_is_better: bool | None = None,
        seed: int = 0,
    ) -> Attribution:
        """Attribute an eval metric to groups of the models' training data; see `lineage.attribution`."""
        from lineage.attribution import attribute

        return attribute(
            self, metric, by=by, models=models, benchmark=benchmark, higher_is_better=higher_is_better, seed=seed
        )

    def ablate(self, build: str, /, *, by: str = "source", output: str | Path) -> list[Path]:
        """Write one ablation spec per group of build NAME[@vN] (the build without that group) under `output`."""
        from lineage.attribution.ablate import ablate

        return ablate(self, build, by=by, output=output)

    def report(
        self,
        kind: str,
        ref: str | None = None,
        /,
        *,
        output: str | Path,
        format: str | None = None,  # noqa: A002 - the CLI's name
        metric: str | None = None,
        benchmark: str | None = None,
        by: str = "source",
    ) -> Path:
        """Write a report: `build` (ref NAME[@vN]) or `models` (metric=, benchmark=, by=) at `output` as HTML,
        Markdown or JSON (`format`, default from the extension); see `lineage.report`."""
        from lineage.report import report

        return report(self, kind, ref, output=output, format=format, metric=metric, benchmark=benchmark, by=by)

    # -- maintenance -------------------------------------------------------------------------

    def doctor(self) -> DoctorReport:
        """Every registered segment checked (present, row count, sha256), orphans and stale filters listed."""
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

    def compact(
        self, *, kinds: tuple[str, ...] = ("samples", "events", "edges"), target_rows: int | None = None
    ) -> CompactResult:
        """Rewrite the small sample and events segments into large ones sorted by sample_id, as one commit; the
        replaced segments stay for earlier versions until `gc` with a retention."""
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
