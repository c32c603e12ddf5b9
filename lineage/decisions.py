"""Import decisions made outside lineage, and human review (export a sample, import the verdicts)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lineage.core.ids import CANONICAL_TEXT_SQL, CONTENT_HASH_SQL, NORMALIZED_TEXT_SQL
from lineage.core.segments import file_sha256
from lineage.core.sqlutil import sql_string
from lineage.errors import InputError, LineageError
from lineage.filters.base import slug
from lineage.filters.builtin import registry
from lineage.filters.imported import ImportedDecisions, ImportedParams
from lineage.filters.run import RunResult, execute
from lineage.names import check_name
from lineage.outputs import atomic_write, spreadsheet_safe
from lineage.schemas import DECISION_VALUES, DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

REVIEW_COLUMNS = ("sample_id", "origin", "source", "method", "generator", "generation", "text", "verdict", "note")
_READERS = {".csv": "read_csv", ".jsonl": "read_json", ".json": "read_json", ".parquet": "read_parquet"}


def read_table(path: Path) -> pa.Table:
    """A decisions file with a 1-based `line` column (data rows; CSV header excluded)."""
    if not path.is_file():
        raise InputError(f"`{path}`: no such file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"`{path}`: unknown format; use .csv, .jsonl or .parquet")
    # Text as written: CSV cells as strings, JSON values as JSON (DuckDB's detection would read a score
    # "Infinity" as a DATE); each is judged by the field it fills.
    options = {"read_csv": ", all_varchar = true", "read_json": ", maximum_depth = 1"}.get(reader, "")
    con = duckdb.connect()
    try:
        table = con.sql(
            f"SELECT row_number() OVER () AS line, * FROM {reader}({sql_string(str(path))}{options})"
        ).to_arrow_table()
        return _decoded(table) if reader == "read_json" else table
    except duckdb.Error as exc:
        raise InputError(f"`{path}`: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def _decoded(table: pa.Table) -> pa.Table:
    """JSON columns as text: a JSON string is its value, anything else its JSON."""
    columns = [table["line"]]
    for name in table.column_names[1:]:
        values = [None if raw is None else json.loads(raw) for raw in table[name].to_pylist()]
        columns.append(pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values]))
    return pa.table(columns, names=table.column_names)


def _match(store: StoreCore, table: pa.Table, path: Path) -> list[dict[str, Any]]:
    """Resolve each row to sample ids (by id, or by the content hash of its text) and check it."""
    if "decision" not in table.column_names or not ({"sample_id", "text"} & set(table.column_names)):
        raise InputError(f"`{path}`: needs a `decision` column and a `sample_id` or `text` column")
    by_hash = {}
    if "text" in table.column_names:
        norm = NORMALIZED_TEXT_SQL.format(text=CANONICAL_TEXT_SQL.format(text="text"))
        con = duckdb.connect()
        con.register("incoming", table)
        hashes = con.sql(f"SELECT {CONTENT_HASH_SQL.format(norm=norm)} AS h FROM incoming").to_arrow_table()
        con.close()
        by_hash = _ids_by_hash(store, hashes["h"])
        table = table.append_column("_hash", hashes["h"])
    known = set()
    if "sample_id" in table.column_names:
        ids = [i for i in table["sample_id"].to_pylist() if i]
        known = set(
            store.query("SELECT sample_id FROM samples WHERE list_contains(?, sample_id)", params=[ids])[
                "sample_id"
            ].to_pylist()
        )
    return [_row(r, known, by_hash, path) for r in table.to_pylist()]


def _ids_by_hash(store: StoreCore, hashes: pa.Array) -> dict[str, list[str]]:
    rows = store.query(
        "SELECT content_hash, list(sample_id ORDER BY sample_id) AS ids FROM samples "
        "WHERE list_contains(?, content_hash) GROUP BY 1",
        params=[hashes.to_pylist()],
    ).to_pylist()
    return {r["content_hash"]: r["ids"] for r in rows}


def _row(r: dict[str, Any], known: set[str], by_hash: dict[str, list[str]], path: Path) -> dict[str, Any]:
    where = f"{path}:{r['line']}"
    decision = (r.get("decision") or "").strip().lower()
    if decision not in DECISION_VALUES:
        raise InputError(f"{where}: field `decision`: must be keep, drop or flag, got `{r.get('decision')}`")
    ids = [r["sample_id"]] if r.get("sample_id") in known else by_hash.get(r.get("_hash") or "", [])
    if not ids:
        raise InputError(f"{where}: no sample with this {'sample_id' if r.get('sample_id') else 'text'}")
    try:
        score = None if r.get("score") in (None, "") else float(r["score"])
        if score is not None and not math.isfinite(score):
            raise ValueError
    except ValueError:
        raise InputError(f"{where}: field `score`: expected a finite number, got `{r['score']}`") from None
    return {"ids": ids, "decision": decision, "score": score, "reason": slug(r.get("reason")), "line": r["line"]}


def import_decisions(store: StoreCore, path: str | Path, *, filter_name: str, reviewer: str | None = None) -> RunResult:
    """Record a file's decisions as one run of filter `filter_name`."""
    path = Path(path)
    check_name("filter", filter_name)
    if filter_name in registry():
        raise LineageError(f"`{filter_name}` is a built-in filter; name imported decisions differently")
    rows = _match(store, read_table(path), path)
    table = _decisions(rows, path, reviewer)
    params = ImportedParams(source_file=str(path), sha256=file_sha256(path), reviewer=reviewer)
    flt = ImportedDecisions(params, name=filter_name, table=table)
    return execute(store, flt, ids=table["sample_id"], engine="inline")


def _decisions(rows: list[dict[str, Any]], path: Path, reviewer: str | None) -> pa.Table:
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        for sample_id in r["ids"]:
            if sample_id in seen:
                raise InputError(
                    f"{path}:{r['line']}: sample `{sample_id}` already has a decision on line {seen[sample_id]}"
                )
            seen[sample_id] = r["line"]
            reason = r["reason"] or (f"human_review:{slug(reviewer)}" if reviewer else None)
            if r["decision"] == "keep" and not r["reason"]:
                reason = None
            out.append(
                {
                    "sample_id": sample_id,
                    "decision": r["decision"],
                    "score": r["score"],
                    "reason": reason,
                    "related_id": None,
                    "cluster_id": None,
                }
            )
    if not out:
        raise InputError(f"`{path}`: no decisions to import")
    return pa.Table.from_pylist(out, schema=DECISIONS)


def export_review(store: StoreCore, output: str | Path, *, where: str | None, n: int, seed: int) -> int:
    """Write a seeded random sample to a CSV with an empty verdict column for reviewers."""
    from lineage.core import readonly

    target = store.output_path(output)
    cols = ", ".join(c for c in REVIEW_COLUMNS if c not in ("verdict", "note"))
    predicate = readonly.check_predicate(where, what="--where") if where else "true"
    query = (
        f"SELECT {cols}, '' AS verdict, '' AS note FROM samples WHERE {predicate} "
        "ORDER BY md5(sample_id || ?), sample_id LIMIT ?"
    )
    with store.reader(locked=True) as con:
        table = readonly.run(con, query, [str(seed), n])
    with atomic_write(target, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table.column_names)
        writer.writerows([[spreadsheet_safe(v) for v in r.values()] for r in table.to_pylist()])
    return table.num_rows



def import_review(store: StoreCore, path: str | Path, *, reviewer: str) -> RunResult:
    """Verdicts (keep/drop/flag; blank rows skipped) become decisions of filter `human-review`."""
    path = Path(path)
    table = read_table(path)
    if "verdict" not in table.column_names:
        raise InputError(f"`{path}`: needs a `verdict` column (keep, drop or flag)")
    verdicts = pc.utf8_trim_whitespace(pc.fill_null(table["verdict"].cast(pa.string()), ""))
    table = table.filter(pc.not_equal(verdicts, ""))
    table = table.rename_columns(
        ["decision" if c == "verdict" else ("reason" if c == "note" else c) for c in table.column_names]
    )
    rows = _match(store, table.drop_columns([c for c in ("text",) if c in table.column_names]), path)
    result = _decisions(rows, path, reviewer)
    params = ImportedParams(source_file=str(path), sha256=file_sha256(path), reviewer=reviewer)
    return execute(
        store, ImportedDecisions(params, name="human-review", table=result), ids=result["sample_id"], engine="inline"
    )
