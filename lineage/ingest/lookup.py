"""Look up stored samples by the keys an input refers to, reading only the row groups that may hold them.

`existing` (a view over every live samples segment) is filtered with `list_contains($keys, column)`, which DuckDB
pushes into the Parquet scan: a row group is skipped when its min/max statistics or its Bloom filter rule every
key out. Compacted segments (`lineage.compaction`) are sorted by sample_id and carry Bloom filters on sample_id,
content_hash and external_id, so a lookup of ids the store does not hold (the usual case for new data) reads no
row group of them at all, however large the store. Past LOOKUP_MAX keys a list costs more than it saves: the
caller's hash join over `existing` is used instead.
"""

from __future__ import annotations

import duckdb

from lineage.core.sqlutil import quote_ident

LOOKUP_MAX = 20_000


def lookup(
    con: duckdb.DuckDBPyConnection, name: str, *, column: str, keys_sql: str, columns: str
) -> None:
    """Create `name`: the `columns` of the stored samples whose `column` is one of the values `keys_sql` selects
    (or, past LOOKUP_MAX keys, a view of all of them, for a join to narrow)."""
    keys = [r[0] for r in con.execute(f"SELECT DISTINCT k FROM ({keys_sql}) t(k) WHERE k IS NOT NULL").fetchall()]
    lookup_keys(con, name, {column: keys}, columns=columns)


def lookup_keys(con: duckdb.DuckDBPyConnection, name: str, keys: dict[str, list[str]], *, columns: str) -> None:
    """Create `name`: stored samples whose column is one of its keys, for each column of `keys` (a union)."""
    table = quote_ident(name)
    if sum(len(v) for v in keys.values()) > LOOKUP_MAX:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {columns} FROM existing")
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM existing WHERE false")
    for column, values in keys.items():
        if values:
            con.execute(
                f"INSERT INTO {table} SELECT {columns} FROM existing WHERE list_contains($keys, {quote_ident(column)})",
                {"keys": values},
            )
