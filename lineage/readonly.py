"""Read-only SQL: a read-only catalog connection, file access limited to the store's data, one SELECT."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from lineage.errors import QueryError, first_line
from lineage.sqlutil import sql_string

if TYPE_CHECKING:
    from lineage.location import Location

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def lock_down(con: duckdb.DuckDBPyConnection, data: Location) -> None:
    """After this, the connection can read the store's segments and nothing else, and write nothing.

    The settings belong to the database instance, which DuckDB shares between a process's connections to
    one file: a connection opened while another is locked down is locked down already.
    """
    if con.sql("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        return
    allowed = ", ".join(sql_string(d) for d in data.allowed_directories())
    con.execute(f"SET allowed_directories = [{allowed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind not in _ALLOWED:
        raise QueryError(f"`lineage sql` is read-only: {kind.name} statements are refused")


def run(con: duckdb.DuckDBPyConnection, query: str, params: list[object] | None = None) -> pa.Table:
    check_statement(con, query)
    try:
        return con.sql(query, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from None
