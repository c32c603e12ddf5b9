"""Files lineage writes for the user (query results, reports, review sheets, ablation specs): never inside the
store's own files, and never half-written.

Every `--output` goes through `check_output_path`; files are written through `atomic_write`, which writes
beside the target under a temporary name, fsyncs, and renames it into place, so a crash leaves either the
old file or the new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lineage.core.faults import crash_point
from lineage.errors import OutputExistsError, OutputPathError

# What the store itself owns under its root: its catalog (and DuckDB's WAL beside it), the writer lock, the
# segments and features, workers' staging, and the builds' members and manifests.
_STORE_FILES = ("lineage.duckdb", "lineage.duckdb.wal", "lineage.lock")
_STORE_DIRS = ("data", "tmp", "builds")
# Where a store notes the outputs being written (folder exports), so `gc` finds what a killed one left.
OUTPUT_JOURNAL = "tmp/outputs"


def check_output_path(store_root: Path, path: str | Path, *, option: str = "--output", data: str | None = None) -> Path:
    """`path` resolved (symlinks included), or OutputPathError if writing it could change the store.

    `data`: the store's data location when it is another local folder (`lineage init --data PATH`).
    """
    target = Path(path).expanduser().resolve()
    root = Path(store_root).expanduser().resolve()
    owned = [root / name for name in _STORE_FILES] + [root / name for name in _STORE_DIRS]
    if data is not None:
        owned += [Path(data).resolve() / "data", Path(data).resolve() / "tmp"]
    if target == root or target in root.parents:  # replacing it (export --force) would remove the store
        raise OutputPathError(target, option, root)
    for place in owned:
        if target == place or place in target.parents:
            raise OutputPathError(target, option, place)
    return target


@contextmanager
def atomic_write(path: Path, mode: str = "w", **kwargs: object) -> Iterator[object]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`, else remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as stream:  # type: ignore[call-overload]
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for writers that take a file name (pyarrow); renamed over `path` on
    success, removed on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replace_dir(
    path: Path, *, force: bool, option: str = "--output", journal: Path | None = None,
    replaceable: Callable[[Path], str | None] | None = None,
) -> Iterator[Path]:
    """A new empty folder beside `path` to write a whole output into; on success it takes `path`'s place.

    A non-empty `path` is refused unless `force`, and even then unless `replaceable(path)` returns None (else the
    reason it is not an output of this kind: `force` replaces an earlier output, never a folder of other files,
    which it once deleted whole, a lineage store included). The new folder and the old one trade places in one atomic
    rename (Linux renameat2 RENAME_EXCHANGE), then the old one is removed, so a crash leaves the old output or
    the new one whole, never a mix or nothing; on failure the new folder is removed and `path` is untouched.
    Where the filesystem cannot exchange, the old folder is moved aside first (two renames, no copying).

    A killed writer leaves its `.NAME.*.tmp` (or `.old`) folder beside `path`: the next replace_dir of `path`
    removes it, and so does `lineage gc` when `journal` (a folder of the store's) names it (`journal_entries`).
    """
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not force:
            raise OutputExistsError(path, option)
        reason = replaceable(path) if replaceable is not None else None
        if reason is not None:
            raise OutputExistsError(path, option, foreign=reason)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    held = [_hold(tmp)]
    entry = _journal(journal, path, tmp)
    try:
        try:
            yield tmp
            _fsync_tree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _swap(tmp, path, held)
    finally:
        for fd in held:
            os.close(fd)
        if entry is not None:
            entry.unlink(missing_ok=True)


def _swap(tmp: Path, path: Path, held: list[int]) -> None:
    crash_point("output_written")
    if not (path.exists() or path.is_symlink()):
        os.replace(tmp, path)
        return
    if _exchange(tmp, path):
        crash_point("output_exchanged")
        shutil.rmtree(tmp, ignore_errors=True)  # the old output, under the temporary name
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    held.append(_hold(old))
    os.replace(path, old / "old")
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


# Leftovers of a killed replace_dir. Its writer holds an flock on the folder while it works, and the kernel drops
# it when the process dies (kill -9 included), so a folder whose lock can be taken is abandoned, and one whose
# lock cannot is another export still running: it is left alone. The only window is between mkdtemp and the
# flock (microseconds): a cleaner there removes the folder, and that export fails with one line, writing nothing.
def _hold(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _abandoned(folder: Path) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def leftovers(path: Path) -> list[Path]:
    """The abandoned `.NAME.*.tmp` and `.NAME.*.old` folders a killed replace_dir of `path` left beside it."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]+\.(tmp|old)")
    found = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(p for p in found if _abandoned(p))


def remove_leftovers(path: Path) -> list[Path]:
    found = leftovers(path)
    for folder in found:
        shutil.rmtree(folder, ignore_errors=True)
    return found


def _journal(journal: Path | None, path: Path, tmp: Path) -> Path | None:
    """A note in the store naming the output being written, so `lineage gc` can find what a kill leaves. An
    export only reads the store: where it cannot write the note, the next export to `path` still cleans up."""
    if journal is None:
        return None
    entry = journal / f"{tmp.name.lstrip('.')}.json"
    try:
        with atomic_write(entry) as f:
            json.dump({"output": str(path), "tmp": str(tmp)}, f)  # type: ignore[arg-type]
    except OSError:
        return None
    return entry


def journal_entries(journal: Path) -> list[tuple[Path, Path, Path]]:
    """(entry, output, its temporary folder) per note in `journal`; unreadable notes are skipped."""
    out = []
    for entry in sorted(journal.glob("*.json")) if journal.is_dir() else []:
        try:
            doc = json.loads(entry.read_text(encoding="utf-8"))
            out.append((entry, Path(doc["output"]), Path(doc["tmp"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not available."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_tree(root: Path) -> None:
    for file in root.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A cell for a file people open in spreadsheets: text that starts like a formula (= + - @ tab CR) gets
    a leading `'`, as OWASP recommends, so `=HYPERLINK(...)` in a sample shows as text instead of running.
    Numbers written as text (-5, +1.5) are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA) and not _number(value):
        return f"'{value}"
    return value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
