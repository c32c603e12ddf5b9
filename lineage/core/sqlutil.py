"""SQL helpers: identifiers are quoted by one function; values always go in as bind parameters."""


def quote_ident(name: str) -> str:
    """Quote a SQL identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A SQL string literal, for the few places DuckDB takes no parameter (file paths in DDL)."""
    return "'" + value.replace("'", "''") + "'"
