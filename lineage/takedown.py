"""Takedowns: a run of the `takedown` filter over the roots and all their descendants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError
from lineage.filters.base import parse_params
from lineage.filters.run import RunResult, execute
from lineage.filters.takedown import TARGETS_SQL, TakedownFilter

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def takedown(store: StoreCore, *, source: str | None = None, where: str | None = None, reason: str) -> RunResult:
    if (source is None) == (where is None):
        raise LineageError("give exactly one of --source or --where")
    given = {"source": source} if source is not None else {"where": where}
    flt = TakedownFilter(parse_params(TakedownFilter, {**given, "reason": reason}))
    roots, values = flt.params.roots()
    targets = store.sql(TARGETS_SQL.format(where=roots), params=values)["sample_id"]
    if len(targets) == 0:
        shown = f"source = {sql_string(source)}" if source is not None else where  # shown to the user, not run
        raise LineageError(f"nothing matches the takedown ({shown}); nothing was recorded")
    return execute(store, flt, ids=targets.combine_chunks(), engine="inline")
