"""doctor (is every registered segment intact? what is lying around unregistered?) and gc."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from lineage.core import catalog
from lineage.core.edgeindex import EDGES_FOLDER, ROWS_FOLDER
from lineage.core.location import TMP_PREFIX, Location
from lineage.errors import first_line
from lineage.features.decisionindex import FOLDER as DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

MISSING_PARENTS_SQL = """
SELECT e.child_id, e.parent_id FROM lineage_edges e ANTI JOIN samples s ON s.sample_id = e.parent_id
ORDER BY 1, 2
"""
# Links in the samples' parent_ids and not in the edges segments (`lineage.core.edges`), or the other way round, or
# stored from one end only: none, unless a segment was damaged or a writer went wrong.
EDGES_CHECK_SQL = """
WITH links AS (SELECT sample_id AS child_id, unnest(parent_ids) AS parent_id FROM samples),
ups AS (SELECT sample_id AS child_id, related_id AS parent_id FROM _edges WHERE relation = 'parent'),
downs AS (SELECT related_id AS child_id, sample_id AS parent_id FROM _edges WHERE relation = 'child')
SELECT (SELECT count(*) FROM (FROM links EXCEPT ALL FROM ups)) + (SELECT count(*) FROM (FROM ups EXCEPT ALL FROM links))
     + (SELECT count(*) FROM (FROM ups EXCEPT ALL FROM downs)) + (SELECT count(*) FROM (FROM downs EXCEPT ALL FROM ups))
"""


@dataclass
class DoctorReport:
    version: int
    format_version: int
    segments: int
    rows: int
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing_parents: list[tuple[str, str]] = field(default_factory=list)
    data: str | None = None  # the data location, when not the store directory
    # Filters that have not seen some samples (`lineage status`): not damage, but a build honouring them refuses.
    stale_filters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Consistent: every registered segment is present and intact. Orphans are harmless leftovers."""
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "ok": self.ok}


def doctor(store: StoreCore) -> DoctorReport:
    with store.catalog() as con:
        # Every registered file is checked, retired ones too (earlier versions read them); the counts are the
        # latest version's.
        segs = con.execute(
            f"SELECT path, row_count, sha256, retired_version IS NULL, kind FROM {catalog.SCHEMA}.segments "
            "ORDER BY version, path"
        ).fetchall()
        # Edges are an index of the samples' parent_ids (checked below), not rows of their own.
        live = [s for s in segs if s[3] and s[4] != "edges"]
        report = DoctorReport(
            catalog.current_version(con), catalog.format_version(con), len(live), sum(s[1] for s in live),
            data=store.data.uri,
        )
    for path, rows, checksum, _, _ in segs:
        report.problems.extend(_check_segment(store.location_of(path), path, rows, checksum))
    report.orphans = [_label(store, where, rel) for where, rel in _orphans(store, {s[0] for s in segs})]
    report.orphans += [str(p) for _, _, found in _output_leftovers(store) for p in found]
    if report.ok:
        from lineage.filters.incremental import filter_states

        # The views the two checks read, not all of them (a reader making every view costs ~80 ms more).
        with store.reader(views={"lineage_edges", "samples", "_edges"}) as con:
            report.missing_parents = [(c, p) for c, p in con.execute(MISSING_PARENTS_SQL).fetchall()]
            differ = con.execute(EDGES_CHECK_SQL).fetchall()[0][0]
        if differ:
            report.problems.append(f"the edges segments differ from the samples' parent_ids in {differ:,} links")
        report.stale_filters = [s.describe() for s in filter_states(store) if s.unseen]
    return report


def _check_segment(where: Location, rel: str, rows: int, checksum: str) -> list[str]:
    if not where.exists(rel):
        return [f"segment `{rel}` is registered but missing"]
    try:
        with where.open_input(rel) as f:
            found = pq.ParquetFile(f).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        return [f"segment `{rel}` is damaged ({first_line(exc)}): restore it from a backup"]
    if found != rows:
        return [f"segment `{rel}` has {found:,} rows, the catalog says {rows:,}"]
    if where.sha256(rel) != checksum:
        return [f"segment `{rel}` does not match its recorded sha256"]
    return []


def _orphans(store: StoreCore, registered: set[str]) -> list[tuple[Location, str]]:
    """Files under data/ the catalog does not know, unregistered build folders, scratch and staging folders,
    an unfinished init. Feature caches are not registered: they are not orphans."""
    data, files = store.data, store.files
    found = [(data, r) for r in data.files("data") if r not in registered and not r.startswith("data/features/")]
    # The decision index of a segment no version registers (a run killed before its commit, a segment gc removed).
    found += [(data, r) for r in data.files(DECISIONS) if _indexed_segment(r) not in registered]
    # The provenance indexes (`lineage.core.edgeindex`) of an edges or samples segment no version registers, and
    # their drafts (a reader that indexes a segment on first use writes one of its own, and publishes it at once).
    found += [(data, r) for folder, kind in INDEXED.items() for r in data.files(folder)
              if _indexed_segment(r, kind) not in registered or r.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]
    builds = files.files("builds")
    members = [rel for rel in builds if rel.endswith("/members.parquet") and rel not in registered]
    folders = {rel.rsplit("/", 1)[0] for rel in members}
    found += [(files, folder) for folder in sorted(folders)]
    found += [(files, rel) for rel in builds if Path(rel).name.startswith(TMP_PREFIX) and not _under(rel, folders)]
    found += [(files, rel) for rel in files.children("tmp")]
    if data.uri is not None:
        found += [(data, rel) for rel in data.children("tmp")]
    found += [(files, p.name) for p in sorted(store.root.glob(".*.init"))]
    return [(where, rel) for where, rel in found if _owned(rel)]


# What lineage itself names (segments, drafts, build folders, run and batch scratch, an unfinished init): `gc`
# removes nothing else, so a file a user drops inside the store survives.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_OWNED = re.compile(
    rf"data/(samples|events|edges)/({_UUID}(-\d+)?\.parquet|{re.escape(TMP_PREFIX)}[^/]*)"
    rf"|{DECISIONS}/({_UUID}(-\d+)?(\.clusters)?\.arrow|{re.escape(TMP_PREFIX)}[^/]*)"
    rf"|({EDGES_FOLDER}|{ROWS_FOLDER})/({_UUID}(-\d+)?\.arrow|{re.escape(TMP_PREFIX)}[^/]*)"
    r"|builds/[^/]+/v\d+"
    rf"|builds/[^/]+/v\d+/{re.escape(TMP_PREFIX)}[^/]*"
    rf"|tmp/({_UUID}|{re.escape(TMP_PREFIX)}.*)"
    r"|\.lineage\.duckdb\.init"
)


INDEXED = {EDGES_FOLDER: "edges", ROWS_FOLDER: "samples"}  # index folder -> the kind of segment it indexes


def _indexed_segment(rel: str, kind: str = "events") -> str:
    """The segment of `kind` an index file (or its draft) belongs to (see `lineage.features.decisionindex`,
    `lineage.core.edgeindex`)."""
    name = rel.rsplit("/", 1)[-1].removeprefix(TMP_PREFIX).removesuffix(".arrow").removesuffix(".clusters")
    return f"data/{kind}/{name}.parquet"


def _owned(rel: str) -> bool:
    return _OWNED.fullmatch(rel) is not None


def _under(rel: str, folders: set[str]) -> bool:
    return any(rel.startswith(f"{folder}/") for folder in folders)


def _label(store: StoreCore, where: Location, rel: str) -> str:
    """Paths in the store directory as they were always shown; elsewhere with the data location in front."""
    return rel if where == store.files else where.label(rel)


def gc(
    store: StoreCore, *, dry_run: bool = True, retain_versions: int | None = None, older_than: float | None = None
) -> list[str]:
    """Remove orphans and, with a retention, the segments compaction replaced that no retained version reads;
    only while holding the writer lock, so no write in progress is touched.

    The catalog forgets the expired segments first, in one transaction that also records the oldest version
    still readable; the files go after. A crash in between leaves orphans, which the next `gc` removes.
    """
    from lineage.core.handle import LOCK_FILE
    from lineage.core.lock import WriterLock

    with WriterLock(store.root / LOCK_FILE, wait=store.wait):
        report = doctor(store)
        cutoff = retention_cutoff(store, retain_versions=retain_versions, older_than=older_than)
        expired = _expired(store, cutoff) if cutoff is not None else []
        if not dry_run:
            if expired and cutoff is not None:
                _forget(store, [seg_id for seg_id, _ in expired], cutoff)
            for where, rel in _orphans(store, _registered(store)):
                where.delete(rel)
            _remove_output_leftovers(store)
    return report.orphans + [_label(store, store.location_of(rel), rel) for _, rel in expired]


def retention_cutoff(store: StoreCore, *, retain_versions: int | None, older_than: float | None) -> int | None:
    """The oldest version a retention keeps readable (None: keep every version). `retain_versions` N keeps the
    last N; `older_than` (seconds) keeps every version that was the latest at some moment since then. With both,
    the more generous wins."""
    from lineage.errors import LineageError, option

    if retain_versions is not None and retain_versions < 1:
        raise LineageError(
            f"{option('retain_versions')} must be at least 1 (the latest version); got {retain_versions}"
        )
    if older_than is not None and older_than < 0:
        raise LineageError(f"{option('older_than')} must not be negative; got {older_than:g} s")
    cutoffs = []
    with store.catalog() as con:
        latest = catalog.current_version(con)
        if retain_versions is not None:
            cutoffs.append(max(latest - retain_versions + 1, 0))
        if older_than is not None:
            # The version that was the latest when the window opened is still one a reader may have begun with.
            since = datetime.now(UTC) - timedelta(seconds=older_than)
            row = con.execute(
                f"SELECT max(version) FROM {catalog.SCHEMA}.commits WHERE committed_at <= ?", [since]
            ).fetchall()
            cutoffs.append(row[0][0] or 0)
    return min(cutoffs) if cutoffs else None


def _expired(store: StoreCore, cutoff: int) -> list[tuple[str, str]]:
    """Retired segments that no version from `cutoff` on reads: (segment_id, path)."""
    with store.catalog() as con:
        return [
            (r[0], r[1])
            for r in con.execute(
                f"SELECT segment_id, path FROM {catalog.SCHEMA}.segments WHERE retired_version <= ? "
                "ORDER BY version, path",
                [cutoff],
            ).fetchall()
        ]


def _forget(store: StoreCore, segment_ids: list[str], cutoff: int) -> None:
    with store.catalog(write=True) as con, catalog.transaction(con):
        con.execute(f"DELETE FROM {catalog.SCHEMA}.segments WHERE list_contains(?, segment_id)", [segment_ids])
        oldest = max(catalog.oldest_version(con), cutoff)
        con.execute(f"DELETE FROM {catalog.SCHEMA}.meta WHERE key = 'oldest_version'")
        con.execute(f"INSERT INTO {catalog.SCHEMA}.meta VALUES ('oldest_version', ?)", [str(oldest)])


def _output_leftovers(store: StoreCore) -> list[tuple[Path, Path, list[Path]]]:
    """Per note of an export this store made (`outputs.OUTPUT_JOURNAL`): the note, its output, and the abandoned
    temporary folders a killed export left beside that output (outside the store: only those names, unlocked)."""
    from lineage.outputs import OUTPUT_JOURNAL, journal_entries, leftovers

    return [(entry, output, leftovers(output)) for entry, output, _ in journal_entries(store.root / OUTPUT_JOURNAL)]


def _remove_output_leftovers(store: StoreCore) -> None:
    """Remove them; a note goes once its own folder is gone (a running export's is locked, and stays)."""
    import shutil

    from lineage.outputs import OUTPUT_JOURNAL, journal_entries

    tmps = {entry: tmp for entry, _, tmp in journal_entries(store.root / OUTPUT_JOURNAL)}
    for entry, _, found in _output_leftovers(store):
        for folder in found:
            shutil.rmtree(folder, ignore_errors=True)
        if entry in tmps and not tmps[entry].exists():
            entry.unlink(missing_ok=True)


def _registered(store: StoreCore) -> set[str]:
    with store.catalog() as con:
        return {r[0] for r in con.execute(f"SELECT path FROM {catalog.SCHEMA}.segments").fetchall()}


def backup(store: StoreCore, dest: Path) -> Path:
    """A consistent copy of a local store at `dest` (new): catalog, registered segments, feature caches, builds.

    It holds the writer lock while it copies, so no commit lands halfway; readers go on (they never take it).
    The copy is made under a temporary name beside `dest` and renamed into place, so `dest` is whole or absent.
    """
    import shutil

    from lineage.core.handle import CATALOG_FILE, LOCK_FILE
    from lineage.core.location import fsync_path
    from lineage.core.lock import WriterLock
    from lineage.errors import StoreError

    if store.data.uri is not None:
        raise StoreError(f"the data lives at `{store.data}`: copy it with your storage's own tools (segments "
                         "never change once written), then the catalog with `lineage backup` of a local store")
    if dest.exists():
        raise StoreError(f"backup destination `{dest}` already exists: give a new path")
    draft = dest.with_name(f"{TMP_PREFIX}{dest.name}")
    shutil.rmtree(draft, ignore_errors=True)
    with WriterLock(store.root / LOCK_FILE, wait=store.wait):
        registered = sorted(_registered(store))
        features = store.data.files("data/features")
        try:
            for sub in ("data/samples", "data/events", "data/edges", "data/features", "builds", "tmp"):
                (draft / sub).mkdir(parents=True, exist_ok=True)
            for rel in [*registered, *features]:
                (draft / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(store.root / rel, draft / rel)
            for manifest in store.root.glob("builds/*/v*/manifest.json"):
                shutil.copy2(manifest, draft / manifest.relative_to(store.root))
            shutil.copy2(store.catalog_path, draft / CATALOG_FILE)  # no writer: the file is at rest
            for path in draft.rglob("*"):
                if path.is_file():
                    fsync_path(path)
            os.rename(draft, dest)
        except BaseException:
            shutil.rmtree(draft, ignore_errors=True)
            raise
    return dest
