"""Fault injection for crash tests: `LINEAGE_CRASH_AT=<step>` makes the process SIGKILL itself at that step;
`LINEAGE_FAIL_AT=<step>` makes that step fail as a full disk does (OSError ENOSPC).

The commit protocol calls `crash_point` at each of its steps; outside tests the variable is unset
and this costs one dictionary lookup.
"""

import errno
import os
import signal


def crash_point(step: str) -> None:
    if os.environ.get("LINEAGE_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def fail_point(step: str) -> None:
    if os.environ.get("LINEAGE_FAIL_AT") == step:
        raise OSError(errno.ENOSPC, f"No space left on device (LINEAGE_FAIL_AT={step})")
