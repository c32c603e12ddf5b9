"""Derive DuckDB types and DDL from the Arrow schemas."""

import pyarrow as pa

from lineage.core.sqlutil import quote_ident

_SCALARS = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type that round-trips an Arrow type through Parquet."""
    if t in _SCALARS:
        return _SCALARS[t]
    if pa.types.is_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        inner = ", ".join(f"{quote_ident(f.name)} {duckdb_type(f.type)}" for f in t)
        return f"STRUCT({inner})"
    raise TypeError(f"no DuckDB type for Arrow type `{t}`")


def create_table_sql(name: str, schema: pa.Schema) -> str:
    cols = ", ".join(f"{quote_ident(f.name)} {duckdb_type(f.type)}{'' if f.nullable else ' NOT NULL'}" for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {quote_ident(name)} ({cols})"


def select_cast_sql(schema: pa.Schema) -> str:
    """A select list casting same-named columns to the schema, in schema order."""
    return ", ".join(f"CAST({quote_ident(f.name)} AS {duckdb_type(f.type)}) AS {quote_ident(f.name)}" for f in schema)
