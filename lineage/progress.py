"""Progress callbacks: what a long step tells its caller (the CLI draws a bar or prints lines from them)."""

from __future__ import annotations

from collections.abc import Callable

# (done, total) in the step's unit (samples, groups, steps...); total None when not known yet.
Progress = Callable[[int, int | None], None]


def stepper(progress: Progress | None, total: int) -> Callable[[], None]:
    """For a task of `total` named steps: reports 0 of `total` now, and one step more at each call."""
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    return step
