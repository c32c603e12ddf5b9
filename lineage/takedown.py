"""Takedowns: a run of the `takedown` filter over the roots and all their descendants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError
from lineage.filters.base import parse_params
from lineage.filters.run import RunResult, execute
from lineage.filters.takedown import TakedownFilter, targets_where

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def takedown(store: StoreCore, *, source: str | None = None, where: str | None = None, reason: str) -> RunResult:
    if (source is None) == (where is None):
        raise LineageError("give exactly one of --source or --where")
    if source is not None:
        where = f"source = {sql_string(source)}"  # a filter param is stored as text: the run row shows it
    assert where is not None
    flt = TakedownFilter(parse_params(TakedownFilter, {"where": where, "reason": reason}))
    if store.sql(f"SELECT count(*) AS n FROM samples WHERE ({where})")["n"][0].as_py() == 0:
        raise LineageError(f"nothing matches the takedown ({where}); nothing was recorded")
    return execute(store, flt, where=targets_where(where), engine="inline")
