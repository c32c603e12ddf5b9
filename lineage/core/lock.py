"""The single-writer lock: an flock on STORE/lineage.lock, released by the kernel if the writer dies."""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from lineage.errors import StoreLocked


class WriterLock:
    """Held by the one process that may write; readers never take it."""

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path, self.wait = path, wait
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd)
        except BaseException:
            os.close(fd)
            raise
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def _acquire(self, fd: int) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid, since = _holder(fd)
                    if pid is None:  # the holder is between flock and writing its stamp: look again
                        time.sleep(0.05)
                        pid, since = _holder(fd)
                    raise StoreLocked(str(self.path), pid, since) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> tuple[int | None, str | None]:
    parts = os.pread(fd, 200, 0).decode(errors="replace").split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None, None
    return int(parts[0]), parts[1]
