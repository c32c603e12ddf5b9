"""A user filter, loaded in tests by module path like a user's own would be."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lineage.filters import FilterParams, SampleFilter, decisions


class ShoutParams(FilterParams):
    max_upper: float = 0.5


class ShoutingFilter(SampleFilter):
    """Flag texts that are mostly upper case."""

    name = "shouting"
    Params = ShoutParams

    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        letters = pc.utf8_length(pc.replace_substring_regex(batch["text"], r"[^A-Za-z]", ""))
        upper = pc.utf8_length(pc.replace_substring_regex(batch["text"], r"[^A-Z]", ""))
        share = pc.divide(pc.cast(upper, pa.float64()), pc.max_element_wise(letters, 1))
        loud = pc.greater(share, self.params.max_upper).to_pylist()  # type: ignore[attr-defined]
        return decisions(
            batch["sample_id"],
            ["flag" if x else "keep" for x in loud],
            score=share.to_pylist(),
            reason=["shouting" if x else None for x in loud],
        )



class ContextShoutingFilter(ShoutingFilter):
    """A user filter whose context (`context_changed_since`) reads a view the filter states' reader does not make
    for the built-in filters (`builds`): it must get a reader with every view."""

    name = "context-shouting"

    @staticmethod
    def context_changed_since(con: Any, version: int) -> bool:
        return con.execute("SELECT count(*) FROM builds").fetchall()[0][0] >= 0  # always: it read the view

class KillerParams(FilterParams):
    marker: str


class KillerFilter(SampleFilter):
    """Keeps everything, but the worker running it dies (SIGKILL) while the marker file exists.

    A marker reading `once` is removed by the first worker that sees it, so only that worker dies.
    """

    name = "killer"
    Params = KillerParams
    columns = ()

    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        marker = Path(self.params.marker)  # type: ignore[attr-defined]
        if marker.exists():
            if marker.read_text() == "once":
                marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        return decisions(batch["sample_id"], "keep")


class UndecidedFilter(SampleFilter):
    """Returns a decision that is not one: every engine must refuse it with the same one-line error."""

    name = "undecided"
    columns = ()

    def decide(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return decisions(batch["sample_id"], "maybe")
