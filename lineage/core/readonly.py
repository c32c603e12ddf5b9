"""Read-only SQL: a read-only catalog connection, file access limited to the store's data, one query.

Two independent guards, so that neither alone has to be perfect:
- the statement: exactly one plain query (SELECT, or EXPLAIN of a SELECT; `EXPLAIN ANALYZE` runs its
  statement, so it is unwrapped and checked like any other) — DuckDB's own parser decides what a statement is;
- the connection: external access off, reads allowed only under the store's data location, configuration
  locked, and (for user queries) a memory limit and a time limit.

A user's predicate (`--where`, a spec's `where` or `expr`) is checked to be exactly one expression whose
parentheses balance (DuckDB's tokenizer, so strings and quoted names do not count), so that spliced into
`WHERE (<predicate>) AND <exclusions>` it can only narrow what it filters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from lineage.core.sqlutil import sql_string
from lineage.errors import QueryError, first_line, given, option
from lineage.limits import QUERY_MEMORY_LIMIT, QUERY_TIMEOUT

if TYPE_CHECKING:
    from lineage.core.location import Location

_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+|\(\s*[^)]*\)\s*)?", re.IGNORECASE)

DEFAULT_TIMEOUT = QUERY_TIMEOUT
DEFAULT_MEMORY_LIMIT = QUERY_MEMORY_LIMIT


def lock_down(con: duckdb.DuckDBPyConnection, data: Location, *, memory_limit: str | None = None) -> None:
    """After this, the connection can read the store's segments and nothing else, and write nothing.

    The settings belong to the database instance, which DuckDB shares between a process's connections to
    one file: a connection opened while another is locked down is locked down already.
    """
    if con.sql("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        return
    allowed = ", ".join(sql_string(d) for d in data.allowed_directories())
    if memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
        except duckdb.Error as exc:
            raise QueryError(f"{given('memory_limit', memory_limit)}: {first_line(exc)}") from None
    con.execute(f"SET allowed_directories = [{allowed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but exactly one plain query; EXPLAIN [ANALYZE] is judged by the statement it wraps."""
    statement = _one_statement(con, query)
    while statement.type == duckdb.StatementType.EXPLAIN:
        statement = _one_statement(con, _EXPLAIN.sub("", statement.query, count=1))
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryError(f"`lineage sql` is read-only: {statement.type.name} statements are refused")


def _one_statement(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.Statement:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(first_line(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(statements)}")
    return statements[0]


def check_predicate(predicate: str, *, what: str | None = None) -> str:
    """`predicate` as one parenthesised expression, or a QueryError naming `what` (e.g. "spec pool.where").

    Refused: unbalanced parentheses (`false) OR (…` would escape the parentheses it is put in), comments
    (`--` would swallow the closing one), `;`, and parameters (`$name`, `?` would bind lineage's own).
    """
    prefix = f"{what}: " if what else ""
    try:
        tokens = duckdb.tokenize(predicate)
    except duckdb.Error as exc:
        raise QueryError(f"{prefix}{first_line(exc)}") from None
    if not tokens:
        raise QueryError(f"{prefix}the predicate is empty")
    depth = 0
    ends = [pos for pos, _ in tokens[1:]] + [len(predicate)]
    for (pos, kind), end in zip(tokens, ends, strict=True):
        text = predicate[pos:end]
        if kind == duckdb.token_type.comment:
            raise QueryError(f"{prefix}comments are not allowed in a predicate: `{predicate}`")
        if kind != duckdb.token_type.operator:
            continue
        if ";" in text or "?" in text or "$" in text:
            raise QueryError(f"{prefix}`;`, `?` and `$` parameters are not allowed in a predicate: `{predicate}`")
        for char in text:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise QueryError(f"{prefix}unbalanced `)` in `{predicate}`: give exactly one expression")
    if depth:
        raise QueryError(f"{prefix}unbalanced `(` in `{predicate}`: give exactly one expression")
    wrapped = f"({predicate})"
    try:
        statements = duckdb.extract_statements(f"SELECT 1 WHERE {wrapped}")
    except duckdb.Error as exc:
        raise QueryError(f"{prefix}{first_line(exc)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(f"{prefix}give exactly one expression, got `{predicate}`")
    return wrapped


def predicate(value: str | None) -> str | None:
    """A pydantic validator: `value` unchanged when `check_predicate` accepts it (None: no predicate, as when a
    policy rebuilds a spec's pool that had no `where`)."""
    if value is None:
        return value
    try:
        check_predicate(value)
    except QueryError as exc:
        raise ValueError(str(exc)) from None
    return value


def run(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list[object] | None = None,
    *,
    timeout: float | None = None,
) -> pa.Table:
    check_statement(con, query)
    with _time_limit(con, timeout):
        try:
            return con.sql(query, params=params or None).to_arrow_table()
        except duckdb.InterruptException:
            raise QueryError(
                f"the query ran longer than {timeout:g} s and was stopped; raise {option('timeout', 'SECONDS')}"
            ) from None
        except duckdb.OutOfMemoryException as exc:
            raise QueryError(f"{first_line(exc)}; raise {option('memory_limit', 'SIZE')}") from None
        except duckdb.Error as exc:
            # DuckDB's bare Error, IOException and "Failed to read file" come from reading the files, not from the
            # query's text: a damaged segment said only "Out of buffer", with nothing on where to look.
            damaged = (type(exc) is duckdb.Error or isinstance(exc, duckdb.IOException)
                       or "Failed to read file" in str(exc))
            hint = " (reading the store's files failed: `lineage doctor` checks every segment)" if damaged else ""
            raise QueryError(first_line(exc) + hint) from None


@contextmanager
def _time_limit(con: duckdb.DuckDBPyConnection, timeout: float | None) -> Iterator[None]:
    """Interrupt the connection's running query after `timeout` seconds (None or 0: no limit)."""
    if not timeout:
        yield
        return
    timer = threading.Timer(timeout, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
