"""Exports of a build that a trainer loads and an auditor checks.

- Columns: `text` (the canonical text) and `messages` (chat records, OpenAI shape) by default; `--columns`
  picks others, `_lineage_*` provenance on request; `verbatim` keeps the input records byte for byte (the
  default for JSONL only).
- Files: `data/{split}-{i:05d}-of-{n:05d}.parquet|jsonl` (Hugging Face's and datatrove's layout), or for `hf`
  a `datasets.save_to_disk` folder at OUTPUT itself with a Parquet mirror of each split under `data/` (what
  its Croissant record sets read; see `export/hf.py`); seeded splits that keep families together; shards.
- Beside them: `manifest.json` (files with sha256, splits, licences) and `croissant.json` (Croissant 1.1).
- The whole folder is written beside OUTPUT and renamed into place (`outputs.replace_dir`): a non-empty
  OUTPUT is refused unless `force`, and a crash never leaves a half-written export.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage import licenses
from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, UsageError, flag, option
from lineage.export import columns as cols
from lineage.export.files import ExportOptions, Shards, describe, write_split
from lineage.export.records import register_records
from lineage.export.splits import assign, parse_splits
from lineage.outputs import OUTPUT_JOURNAL, replace_dir

if TYPE_CHECKING:
    from lineage.build.record import BuildRecord
    from lineage.progress import Progress

__all__ = ["FORMATS", "ExportOptions", "ExportResult", "export_build", "iter_batches", "parse_shard_size"]

FORMATS = ("parquet", "jsonl", "hf")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    columns: list[str]
    splits: dict[str, int]
    files: list[dict[str, Any]]
    licenses: list[licenses.LicenseShare]
    warnings: list[str]


def parse_shard_size(value: str | int | None) -> Shards:
    """`100000` (rows per file) or `500MB` / `1GB` / `64KB` (about that many bytes per file)."""
    if value is None:
        return Shards()
    text = str(value).strip().upper()
    m = re.fullmatch(r"(\d+)\s*(KB|MB|GB)?", text)
    if not m or int(m.group(1)) == 0:
        raise UsageError("shard_size", value, ": give rows (like 100000) or a size (like 500MB)")
    if m.group(2) is None:
        return Shards(rows=int(m.group(1)))
    return Shards(bytes=int(m.group(1)) * {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)])


def export_build(
    build: BuildRecord, output: Path, options: ExportOptions, *, progress: Progress | None = None
) -> ExportResult:
    """Write the export of `build` at `output` (already checked by Store.output_path); `progress(done, total)`
    counts the samples written, a split at a time."""
    if options.format not in FORMATS:
        unknown = f"unknown export format `{options.format}`; choose from {', '.join(FORMATS)}"
        raise UsageError("format", options.format, message=unknown)
    verbatim = options.verbatim if options.verbatim is not None else options.format == "jsonl" and not options.columns
    if verbatim and options.columns:
        raise LineageError(
            f"{option('columns')} picks training columns; {flag('verbatim')} writes the records as they were: not both"
        )
    columns = [] if verbatim else cols.choose(options.columns, provenance=options.provenance)
    splits = parse_splits(options.splits)
    seed = options.split_seed if options.split_seed is not None else build.info["seed"]
    checks = _still_clean(build)
    if verbatim:
        _records_clean(build)
    journal = build.store.root / OUTPUT_JOURNAL
    with (
        replace_dir(output, force=options.force, journal=journal, replaceable=not_an_export) as tmp,
        build.store.reader() as con,
    ):
        _quiet(con)
        members = assign(con, build.member_ids(), splits, seed)
        con.register("_export_members", members)
        names = ["train", *splits]
        counts = dict(zip(names, (_count(members, n) for n in names), strict=True))
        _check_splits(counts, members.num_rows, splits)
        written = _written(counts, progress)
        if options.format == "hf":
            from lineage.export.hf import write_hf

            query = _queries(columns, verbatim, options.provenance)
            files = write_hf(con, tmp, names, query, verbatim, options, counts, written)
        else:
            files = _write_files(con, tmp, names, columns, verbatim, options, written)
        mix = licenses.composition(_license_counts(con))
        result = ExportResult(output, options.format, columns, counts, files, mix, licenses.warnings(mix))
        manifest = _manifest(build, result, verbatim, splits, seed, options, checks)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        from lineage.export.croissant import croissant

        doc = croissant(build, manifest, _generators(con), con)
        (tmp / "croissant.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return result


def _written(counts: dict[str, int], progress: Progress | None) -> Callable[[str], None]:
    """What each split's writer calls when the split is written: the samples done so far, of all splits."""
    total, done = sum(counts.values()), 0

    def split_done(split: str) -> None:
        nonlocal done
        done += counts[split]
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    return split_done


def _quiet(con: duckdb.DuckDBPyConnection) -> None:
    """No DuckDB progress bar: the CLI prints its own one-line summary."""
    with contextlib.suppress(duckdb.Error):  # a locked-down instance keeps its settings
        con.execute("SET enable_progress_bar = false")


def _count(members: pa.Table, split: str) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.equal(members["split"], split)).as_py() or 0)


def _queries(columns: list[str], verbatim: bool, provenance: bool) -> Any:
    """A function of a split name: its query, first column `__sid` (the order, not written); `members` names
    the registered table of (sample_id, split) to draw from (the hf export passes one window at a time)."""
    select = cols.verbatim_jsonl_sql(provenance) if verbatim else cols.select_list(columns)

    def query(split: str, members: str = "_export_members") -> str:
        return (
            f"SELECT s.sample_id AS __sid, {select} FROM samples s JOIN {members} m USING (sample_id) "
            f"WHERE m.split = {sql_string(split)}"
        )

    return query


def _write_files(
    con: duckdb.DuckDBPyConnection, root: Path, names: list[str], columns: list[str], verbatim: bool,
    options: ExportOptions, written: Callable[[str], None],
) -> list[dict[str, Any]]:
    query = _queries(columns, verbatim, options.provenance)
    kind = options.format
    if verbatim and options.format == "jsonl":
        kind = "lines"
    files = []
    for split in names:
        q = query(split)
        if verbatim and options.format == "parquet":
            q = register_records(con, split, options.provenance)
        for path in write_split(con, q, root / "data", split, kind=kind, shards=options.shards):
            files.append(describe(path, root, split))
        written(split)
    return files


def _license_counts(con: duckdb.DuckDBPyConnection) -> dict[str | None, int]:
    rows = con.sql("SELECT s.license, count(*) FROM samples s SEMI JOIN _export_members m USING (sample_id) GROUP BY 1")
    return dict(rows.fetchall())


def _generators(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.sql(
        "SELECT DISTINCT s.generator FROM samples s SEMI JOIN _export_members m USING (sample_id) "
        "WHERE s.generator IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _still_clean(build: BuildRecord) -> dict[str, Any]:
    """The build's contamination check against the protected sets of now (`BuildRecord.contamination`), for the
    manifest; refused when a member leaks or was taken down since the build. An export once wrote the build-time
    "clean" beside members that leaked a set protected later, or that a GDPR takedown had dropped."""
    from lineage.build.checks import describe, leak_count

    ref = f"{build.name}@v{build.version}"
    checks = build.contamination()
    if not checks["clean"]:
        raise LineageError(
            f"build {ref} holds protected data now (the protected sets changed since it was made): "
            f"{describe(checks['leaks'][0])}; {leak_count(checks):,} member(s) leak in all; make a new build "
            "(`lineage build SPEC`: it leaves them out) and export that; nothing was written"
        )
    taken = build.taken_down()
    if taken:
        why = ", ".join(f"{n:,} ({reason})" for reason, n in taken.items())
        raise LineageError(
            f"build {ref} holds {sum(taken.values()):,} member(s) taken down since it was made: {why}; make a new "
            "build (`lineage build SPEC`: it leaves them out) and export that; nothing was written"
        )
    return checks


def _records_clean(build: BuildRecord) -> None:
    """A verbatim export writes each member's record as it came: refused when a field the text was not made of
    holds a protected item (the members' check reads their text; `record_leaks`)."""
    import json

    from lineage.build.checks import describe, record_leaks

    names = json.loads(build.info["spec"]).get("protected")
    leaks = record_leaks(build.store, names, build.member_ids()["sample_id"])
    if leaks:
        raise LineageError(
            f"build {build.name}@v{build.version}: a verbatim export would write protected data in fields of the "
            f"records that lineage's checks do not read: {describe(leaks[0])}; {len(leaks):,} member(s) in all; "
            "an export without verbatim (--no-verbatim; verbatim=False) writes the text and chat that were checked; "
            "nothing was written"
        )


def _check_splits(counts: dict[str, int], members: int, splits: dict[str, float]) -> None:
    """Every split holds a sample. An empty one was written as an empty file (or none, in the hf format) that
    `datasets` refuses to load ("corresponds to no data", IndexError), after an export that said it succeeded."""
    empty = [name for name, n in counts.items() if n == 0]
    if splits and empty:
        shares = ", ".join(f"{name}={share:g}" for name, share in splits.items())
        raise UsageError("split", shares, message=(
            f"split {shares}: the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would hold no sample (a "
            f"family of samples linked by lineage stays on one side; this build has {members:,} members): change "
            "the shares, or leave a split out; nothing was written"))


def not_an_export(folder: Path) -> str | None:
    """None when `folder` holds an earlier export (its manifest.json, as `_manifest` writes it, and no store); else
    what it holds instead. `--force` replaces only an export: it once deleted a whole store given as OUTPUT."""
    if not folder.is_dir():
        return "is a file"
    if (folder / "lineage.duckdb").exists():
        return "is a lineage store"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "holds files but no export's manifest.json"
    if not isinstance(manifest, dict) or not {"build", "build_version", "format", "splits"} <= manifest.keys():
        return "has a manifest.json that is not a lineage export's"
    return None


def _manifest(
    build: BuildRecord, result: ExportResult, verbatim: bool, splits: dict[str, float], seed: int,
    options: ExportOptions, checks: dict[str, Any],
) -> dict[str, Any]:
    info = build.info
    return {
        "build": build.name,
        "build_version": build.version,
        "format": result.format,
        "verbatim": verbatim,
        "columns": result.columns,
        "store_version": info["store_version"],
        "size": info["size"],
        "seed": info["seed"],
        "spec": json.loads(info["spec"]),
        "spec_hash": info["spec_hash"],
        "composition": json.loads(info["composition"]),
        "checks": checks,  # as of the export: the protected sets of now (see `_still_clean`)
        "splits": {
            "seed": seed,
            "shares": {"train": round(1 - sum(splits.values()), 6), **splits},
            "rows": result.splits,
            "unit": "family: a sample and every sample linked to it by lineage fall on the same side",
        },
        "shards": {"rows": options.shards.rows, "bytes": options.shards.bytes},
        "licenses": [r.as_dict() for r in result.licenses],
        "license_warnings": result.warnings,
        "files": result.files,
    }


def iter_batches(
    build: BuildRecord, *, batch_size: int = 65_536, columns: list[str] | tuple[str, ...] | None = None,
    provenance: bool = False,
) -> Iterator[pa.RecordBatch]:
    """The members as Arrow record batches (text and messages by default), in sample_id order, streamed."""
    chosen = cols.choose(columns, provenance=provenance)
    with build.store.reader() as con:
        _quiet(con)
        con.register("_export_ids", build.member_ids())
        reader = con.sql(
            f"SELECT {cols.select_list(chosen)} FROM samples s SEMI JOIN _export_ids m USING (sample_id) "
            "ORDER BY s.sample_id"
        ).to_arrow_reader(batch_size)
        yield from reader
