"""Takedowns: a run of the `takedown` filter over the roots and all their descendants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError, option
from lineage.filters.base import parse_params
from lineage.filters.run import RunResult, execute
from lineage.filters.takedown import TakedownFilter

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def takedown(store: StoreCore, *, source: str | None = None, where: str | None = None, reason: str) -> RunResult:
    if (source is None) == (where is None):
        raise LineageError(f"give exactly one of {option('source')} or {option('where')}")
    given = {"source": source} if source is not None else {"where": where}
    flt = TakedownFilter(parse_params(TakedownFilter, {**given, "reason": reason}))
    roots, values = flt.params.roots()  # type: ignore[attr-defined]
    if store.sql(f"SELECT count(*) AS n FROM samples WHERE ({roots})", params=values)["n"][0].as_py() == 0:
        shown = f"source = {sql_string(source)}" if source is not None else where  # shown to the user, not run
        raise LineageError(f"nothing matches the takedown ({shown}); nothing was recorded")
    # The targets are found under the writer lock by point lookups over the edges, once (`TakedownFilter.targets`).
    return execute(store, flt, engine="inline", select=flt.targets)
