"""doctor (is every registered segment intact? what is lying around unregistered?) and gc."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from lineage import catalog
from lineage.segments import TMP_PREFIX, file_sha256

if TYPE_CHECKING:
    from lineage.store import Store

MISSING_PARENTS_SQL = """
SELECT e.child_id, e.parent_id FROM lineage_edges e ANTI JOIN samples s ON s.sample_id = e.parent_id
ORDER BY 1, 2
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

    @property
    def ok(self) -> bool:
        """Consistent: every registered segment is present and intact. Orphans are harmless leftovers."""
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "ok": self.ok}


def doctor(store: Store) -> DoctorReport:
    with store._connect(read_only=True) as con:
        segs = con.execute(
            f"SELECT path, row_count, sha256 FROM {catalog.SCHEMA}.segments ORDER BY version, path"
        ).fetchall()
        report = DoctorReport(
            catalog.current_version(con), catalog.format_version(con), len(segs), sum(s[1] for s in segs)
        )
    for path, rows, checksum in segs:
        report.problems.extend(_check_segment(store.root, path, rows, checksum))
    report.orphans = [str(p.relative_to(store.root)) for p in _orphans(store.root, {s[0] for s in segs})]
    if report.ok:
        with store.reader() as con:
            report.missing_parents = [(c, p) for c, p in con.execute(MISSING_PARENTS_SQL).fetchall()]
    return report


def _check_segment(root: Path, rel: str, rows: int, checksum: str) -> list[str]:
    path = root / rel
    if not path.is_file():
        return [f"segment `{rel}` is registered but missing"]
    found = pq.ParquetFile(path).metadata.num_rows
    if found != rows:
        return [f"segment `{rel}` has {found:,} rows, the catalog says {rows:,}"]
    if file_sha256(path) != checksum:
        return [f"segment `{rel}` does not match its recorded sha256"]
    return []


def _orphans(root: Path, registered: set[str]) -> list[Path]:
    """Files under data/ the catalog does not know, unregistered build folders, scratch dirs, an unfinished init."""
    found = [
        p
        for p in sorted((root / "data").rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in registered and "features" not in p.parts
    ]
    builds = root / "builds"
    unregistered = [p for p in sorted(builds.glob("*/v*/members.parquet")) if p.relative_to(root).as_posix()
                    not in registered]
    found += [p.parent for p in unregistered]
    found += [p for p in sorted(builds.rglob(f"{TMP_PREFIX}*")) if p.parent not in found]
    scratch = root / "tmp"
    found += sorted(scratch.iterdir()) if scratch.is_dir() else []
    found += [p for p in root.glob(".*.init")]
    return found


def gc(store: Store, *, dry_run: bool = True) -> list[str]:
    """Remove orphans (only while holding the writer lock, so no write in progress is touched)."""
    from lineage.lock import WriterLock
    from lineage.store import LOCK_FILE

    with WriterLock(store.root / LOCK_FILE, wait=store.wait):
        report = doctor(store)
        if not dry_run:
            for rel in report.orphans:
                path = store.root / rel
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return report.orphans
