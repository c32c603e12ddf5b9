"""lineage: sample-level provenance for mixing real and synthetic training data.

>>> import lineage
>>> store = lineage.open("./store")          # doctest: +SKIP
>>> store.sql("SELECT count(*) FROM samples")  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from lineage._version import __version__
from lineage.errors import IngestError, LineageError, QueryError, Reject, StoreError, StoreLocked

if TYPE_CHECKING:
    from lineage.store import Store, open  # noqa: A004


__all__ = [
    "IngestError",
    "LineageError",
    "QueryError",
    "Reject",
    "Store",
    "StoreError",
    "StoreLocked",
    "__version__",
    "open",
]


def __getattr__(name: str) -> Any:
    # The store pulls in DuckDB, Arrow and Polars; load it on first use so `lineage --help` stays instant.
    if name in ("Store", "open"):
        from lineage import store

        return getattr(store, name)
    raise AttributeError(f"module 'lineage' has no attribute {name!r}")
