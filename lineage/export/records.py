"""The original records of a build as one Arrow table (verbatim Parquet and hf exports)."""

from __future__ import annotations

import io

import duckdb
import pyarrow as pa
import pyarrow.json as pajson

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError
from lineage.export.columns import PROVENANCE


def records_table(rows: pa.Table, provenance: bool) -> pa.Table:
    """`rows` (__sid, record, provenance...) -> __sid, the records' own columns, then `_lineage_*` on request.
    Arrow infers one schema across the records; records that cannot share one are refused."""
    data = "\n".join(rows["record"].to_pylist()).encode()
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=max(len(data), 1 << 20)))
    except pa.ArrowInvalid as exc:
        raise LineageError(f"records of this build do not share one schema ({exc}); export as jsonl") from None
    table = table.add_column(0, "__sid", rows["__sid"])
    if provenance:
        for name in PROVENANCE:
            table = table.append_column(f"_lineage_{name}", rows[name])
    return table


def register_records(con: duckdb.DuckDBPyConnection, split: str, provenance: bool) -> str:
    """The split's original records as a table (Arrow infers one schema across them), registered for COPY."""
    select = ", ".join(f"s.{p}" for p in PROVENANCE)
    rows = con.sql(
        f"SELECT s.sample_id AS __sid, s.record, {select} FROM samples s JOIN _export_members m USING (sample_id) "
        f"WHERE m.split = {sql_string(split)} ORDER BY s.sample_id"
    ).to_arrow_table()
    table = records_table(rows, provenance)
    con.register(f"_export_verbatim_{split}", table)
    return f"SELECT * FROM _export_verbatim_{split}"
