"""Look up stored samples by the keys an input refers to, at any input size, reading only what may hold them.

`existing` is a view over every live samples segment. A local store's committed segments each have a row index
(`lineage.core.edgeindex.RowIndex`: sample ids, content hashes and external ids, each sorted): up to LIST_MAX keys,
they are found there by binary search, and only the rows found are read (`file_row_number = ANY`), and of them
only what the index does not hold (`stored_hashes`, `COVERED`), so a lookup costs the same over 1,000 samples as
over 2,000,000 (`benchmarks/ingest_growth.py`; by list, 100 ids over a store grown by 2,550 ingests cost ~38 ms of
CPU against ~5 ms in a new one, and each ingest looked up twice). Without an index (a remote data location, a
read-only copy that cannot write one, the segments this command wrote and has not committed), two plans, chosen by
the number of keys:

- up to LIST_MAX keys, a constant list: `list_contains($keys, column)`, which DuckDB pushes into the Parquet scan,
  so a row group is skipped when its min/max statistics rule every key out. Compacted segments
  (`lineage.compaction`) are sorted by sample_id, so a few ids fall in the ranges of few row groups; DuckDB probes
  a row group's Bloom filter only for a single key (an equality), not for a list. Ids are hashes: a hundred of
  them fall in the range of nearly every row group, and then of the pages of its page index whose min/max may hold
  one (measured on 1,000,000 samples in 16 row groups, medians of 12 key sets: 1 id 2.0 ms of CPU, 10 ids 3.2 ms,
  100 ids 14.2 ms, 9.1 ms with the page index, 1,000 ids 165 ms). That part grows with the store.
- past it, a semi join whose hash table is built from the keys (a temporary table of them), never from the store:
  one pass over the key column of the live segments, the other columns read only for the rows that match, and
  memory that follows the input. A list would cost a comparison per key and row, and with that many keys nearly
  every row group holds one or fails its Bloom filter (1% false positives per key), so pruning no longer pays.

Either way the result is a table of the matching rows only: what the callers join is the size of the input's
matches, not of the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from lineage.core.edgeindex import HASHED, RowIndex, hash_prefixes, ids_array, unique_keys
from lineage.core.location import Location
from lineage.core.sqlutil import quote_ident, sql_string

# Measured on 2,000,000 stored samples in two sorted segments (2 cores): 100 new ids by list 31 ms of CPU, by
# semi join 388 ms (a pass over the key column); at 1,000 ids 310 / 379 ms; at 5,000 464 / 385; at 20,000 610 / 393.
LIST_MAX = 2_000


INDEXED = {"sample_id", *HASHED}  # the columns a RowIndex finds


@dataclass(frozen=True)
class Segments:
    """The samples segments `existing` reads: `committed` ones (indexed when `data` is local) and those this command
    `written` before the current input, not committed yet (no index: read by SQL)."""

    data: Location
    committed: list[str]
    written: list[str]


def lookup(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    column: str,
    keys_sql: str,
    columns: str,
    segments: Segments | None = None,
) -> None:
    """Create table `name`: the `columns` of the stored samples whose `column` is one of the values `keys_sql`
    selects (`segments`: what `existing` reads, so that their indexes can serve)."""
    distinct = f"SELECT DISTINCT k FROM ({keys_sql}) t(k) WHERE k IS NOT NULL"
    keys = [r[0] for r in con.execute(f"{distinct} LIMIT {LIST_MAX + 1}").fetchall()]  # one statement, not two
    if len(keys) <= LIST_MAX:
        lookup_keys(con, name, {column: keys}, columns=columns, segments=segments)
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lookup_keys AS {distinct}")
    _semi_join(con, name, {column: "SELECT k FROM _lookup_keys"}, columns)


def lookup_keys(
    con: duckdb.DuckDBPyConnection,
    name: str,
    keys: dict[str, list[str]],
    *,
    columns: str,
    segments: Segments | None = None,
) -> None:
    """Create table `name`: stored samples whose column is one of its keys, for each column of `keys` (a union);
    `segments`: what `existing` reads, so that their indexes can serve."""
    small = sum(len(v) for v in keys.values()) <= LIST_MAX
    if (small and segments is not None and segments.data.posix and set(keys) <= INDEXED
            and _by_index(con, name, segments, keys, columns)):
        return
    if not small:
        con.execute("CREATE OR REPLACE TEMP TABLE _lookup_keys (col VARCHAR, k VARCHAR)")
        for column, values in keys.items():
            con.register("_lookup_values", pa.table({"k": pa.array(values, pa.string())}))
            con.execute("INSERT INTO _lookup_keys SELECT ?, k FROM _lookup_values", [column])
            con.unregister("_lookup_values")
        queries = {column: f"SELECT k FROM _lookup_keys WHERE col = {sql_string(column)}" for column in keys}
        _semi_join(con, name, queries, columns)
        return
    table = quote_ident(name)
    given = {column: values for column, values in keys.items() if values}
    if len(given) == 1:  # one statement where one will do
        [(column, values)] = given.items()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM existing "
            f"WHERE list_contains($keys, {quote_ident(column)})",
            {"keys": values},
        )
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM existing WHERE false")
    for column, values in given.items():
        con.execute(
            f"INSERT INTO {table} SELECT {columns} FROM existing WHERE list_contains($keys, {quote_ident(column)})",
            {"keys": values},
        )


# What a parent lookup reads (`lineage.ingest.resolve`): of a row found by external id, the index gives the sample
# id and the external id is the one looked up, so only the cheap columns are read (150 rows scattered over a
# 1,000,000-row segment: 3.4 ms of CPU for `source, generation`, 66 ms with the two id columns).
FROM_INDEX = {"sample_id", "external_id"}
COVERED = FROM_INDEX | {"source", "generation"}


def _by_index(
    con: duckdb.DuckDBPyConnection, name: str, segments: Segments, keys: dict[str, list[str]], columns: str
) -> bool:
    """`lookup_keys` through the committed segments' row indexes: only the rows found are read, each segment's by
    row number (DuckDB prunes to the row groups and pages holding them), and compared whole (the index of a
    content hash or external id holds a hash of it), except the rows an external id found for a parent lookup
    (COVERED columns), whose ids come from the index (a 64-bit sha256 prefix of the external id: a false match
    once in 2^64 pairs). False when an index cannot be opened or written (a read-only copy of the store): the
    caller uses SQL."""
    given = {column: values for column, values in keys.items() if values}
    selected = [c.strip() for c in columns.split(",")]
    external = given.pop("external_id", None) if set(selected) <= COVERED else None
    found: list[tuple[str, np.ndarray, pa.Table | None]] = []
    try:
        for rel in segments.committed:
            index = RowIndex.open(segments.data, rel)
            rows = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
                index.rows(unique_keys(values))[0] if column == "sample_id" else index.candidates(column, values)
                for column, values in given.items()]))
            by_external = None
            if external:
                which, at, samples = index.external_ids(external)
                if len(at):
                    by_external = pa.table({"_row": pa.array(at), "sample_id": ids_array(samples),
                                            "external_id": pa.array(external, pa.string()).take(pa.array(which))})
            if len(rows) or by_external is not None:
                found.append((rel, rows, by_external))
    except OSError:
        return False
    # A row matching by two columns is one row: the whole comparison is one disjunction over the rows read.
    match = " OR ".join(f"list_contains(${i}, {quote_ident(c)})" for i, c in enumerate(given, 1)) or "false"
    params = list(given.values())
    table = quote_ident(name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM existing WHERE false")
    from_index = ", ".join(f"i.{quote_ident(c)}" if c in FROM_INDEX else f"s.{quote_ident(c)}" for c in selected)
    for rel, rows, by_external in found:
        segment = f"read_parquet({sql_string(segments.data.sql_path(rel))}, file_row_number = true)"
        if len(rows):
            con.execute(f"INSERT INTO {table} SELECT {columns} FROM {segment} "
                        f"WHERE file_row_number = ANY(${len(params) + 1}) AND ({match})", [*params, rows.tolist()])
        if by_external is not None:
            con.register("_by_external", by_external)
            con.execute(f"INSERT INTO {table} SELECT {from_index} FROM {segment} s JOIN _by_external i "
                        "ON s.file_row_number = i._row WHERE s.file_row_number = ANY($rows)",
                        {"rows": by_external["_row"].to_pylist()})
            con.unregister("_by_external")
    if external:
        given["external_id"] = external  # this command's own segments: by SQL, every column read
        match = " OR ".join(f"list_contains(${i}, {quote_ident(c)})" for i, c in enumerate(given, 1))
        params = list(given.values())
    if segments.written and given:
        files = ", ".join(sql_string(segments.data.sql_path(rel)) for rel in segments.written)
        con.execute(f"INSERT INTO {table} SELECT {columns} FROM read_parquet([{files}]) WHERE {match}", params)
    return True


def stored_hashes(con: duckdb.DuckDBPyConnection, name: str, *, keys_sql: str, segments: Segments) -> None:
    """Create table `name` (content_hash): those of the content hashes `keys_sql` selects that a stored sample has.

    Through the row indexes no row is read: a hash whose first 16 hex digits (64 bits of a sha256) a segment holds
    counts as held. Two texts share them by chance once in 2^64 pairs, and this table only counts the duplicates an
    ingest reports (exact-dedup decides on the whole hash); reading the rows found, to compare, cost ~35 ms for ten
    of them in a store of 2,000,000 samples."""
    distinct = f"SELECT DISTINCT k FROM ({keys_sql}) t(k) WHERE k IS NOT NULL"
    keys = [r[0] for r in con.execute(f"{distinct} LIMIT {LIST_MAX + 1}").fetchall()]
    held = _held(keys, segments) if len(keys) <= LIST_MAX and segments.data.posix else None
    if held is None:
        lookup(con, name, column="content_hash", keys_sql=keys_sql, columns="content_hash")
        return
    table = quote_ident(name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT unnest($found::VARCHAR[]) AS content_hash",
                {"found": [k for k, h in zip(keys, held.tolist(), strict=True) if h]})
    if segments.written:
        files = ", ".join(sql_string(segments.data.sql_path(rel)) for rel in segments.written)
        con.execute(f"INSERT INTO {table} SELECT content_hash FROM read_parquet([{files}]) "
                    "WHERE list_contains($keys, content_hash)", {"keys": keys})


def _held(keys: list[str], segments: Segments) -> np.ndarray | None:
    """Which of the content hashes `keys` a committed segment's row index holds; None when an index cannot be
    opened or written (as in `_by_index`)."""
    hashed = hash_prefixes(pa.array(keys, pa.string()))
    held = np.zeros(len(keys), bool)
    try:
        for rel in segments.committed:
            held |= RowIndex.open(segments.data, rel).holds("content_hash", hashed)
    except OSError:
        return None
    return held


def _semi_join(con: duckdb.DuckDBPyConnection, name: str, queries: dict[str, str], columns: str) -> None:
    """`name`: the rows of `existing` whose column is among its query's keys, for each column (a union)."""
    table = quote_ident(name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM existing WHERE false")
    for column, keys_sql in queries.items():
        con.execute(f"INSERT INTO {table} SELECT {columns} FROM existing WHERE {quote_ident(column)} IN ({keys_sql})")
    con.execute("DROP TABLE IF EXISTS _lookup_keys")
