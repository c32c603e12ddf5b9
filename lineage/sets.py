"""Named sample sets; a protected set (held-out evaluation data) never enters a build."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core import readonly
from lineage.core.ids import uuid7
from lineage.errors import LineageError, NotFound, option
from lineage.names import check_name
from lineage.schemas import SET_MEMBERS, SETS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore, Transaction


def set_info(store: StoreCore, name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM sets WHERE name = ?", params=[name]).to_pylist()
    return rows[0] if rows else None


def create_set(
    store: StoreCore,
    name: str,
    *,
    where: str | None = None,
    ids: list[str] | None = None,
    ids_file: str | Path | None = None,
    protected: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """Create set `name` from a SQL predicate, a list of ids (sample ids or your own ids) or a file of them (one a
    line, `#` comments), or empty."""
    check_name("set", name)
    if ids_file is not None:
        if ids is not None:
            raise LineageError(f"give {option('ids')} or {option('ids_file')}, not both")
        ids = read_ids_file(ids_file)
    if where is not None and ids is not None:
        given = option("ids_file" if ids_file is not None else "ids")
        raise LineageError(f"give {option('where')} or {given}, not both")
    with store.transaction("set", uuid7(), {"set": name}) as txn:
        if set_info(store, name):
            raise LineageError(f"set `{name}` already exists")
        members = _select(store, where, ids)
        txn.add_rows("sets", pa.Table.from_pylist([_set_row(name, protected, description, txn.version)], schema=SETS))
        txn.add_rows("set_members", _member_rows(name, members, txn.version))
    return {"name": name, "protected": protected, "members": len(members), "version": txn.version}


def _set_row(name: str, protected: bool, description: str | None, version: int) -> dict[str, Any]:
    return {
        "name": name,
        "protected": protected,
        "description": description,
        "created_at": datetime.now(UTC),
        "version": version,
    }


def _select(store: StoreCore, where: str | None, ids: list[str] | None) -> list[str]:
    if where is not None:
        predicate = readonly.check_predicate(where, what="--where")
        with store.reader(locked=True) as con:
            return readonly.run(con, f"SELECT DISTINCT sample_id FROM samples WHERE {predicate} ORDER BY 1")[
                "sample_id"
            ].to_pylist()
    if ids is None:
        return []
    table = store.query(
        "SELECT w.ref, list(DISTINCT s.sample_id) AS found FROM (SELECT unnest(?) AS ref) w "
        "LEFT JOIN samples s ON s.sample_id = w.ref OR s.external_id = w.ref GROUP BY w.ref",
        params=[ids],
    ).to_pylist()
    missing = [r["ref"] for r in table if not [f for f in r["found"] if f]]
    if missing:
        raise NotFound("sample", missing[0], f"{len(missing):,} ids match no sample, first: `{missing[0]}`")
    return sorted({f for r in table for f in r["found"] if f})


def _member_rows(name: str, sample_ids: list[str], version: int) -> pa.Table:
    n = len(sample_ids)
    return pa.table({"set_name": [name] * n, "sample_id": sample_ids, "version": [version] * n}, schema=SET_MEMBERS)


def read_ids_file(path: str | Path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LineageError(f"cannot read ids from `{path}`: {exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def add_members(store: StoreCore, txn: Transaction, name: str, sample_ids: list[str]) -> int:
    """Inside a write: add ids to set `name` (created unprotected if new); returns how many were new."""
    check_name("set", name)
    if not set_info(store, name):
        txn.add_rows("sets", pa.Table.from_pylist([_set_row(name, False, None, txn.version)], schema=SETS))
    present = set(
        store.query("SELECT sample_id FROM set_members WHERE set_name = ?", params=[name])["sample_id"].to_pylist()
    )
    new = sorted(set(sample_ids) - present)
    txn.add_rows("set_members", _member_rows(name, new, txn.version))
    return len(new)


def list_sets(store: StoreCore) -> pa.Table:
    return store.query(
        "SELECT s.name, s.protected, count(m.sample_id) AS members, s.description, s.version "
        "FROM sets s LEFT JOIN set_members m ON m.set_name = s.name GROUP BY ALL ORDER BY s.name"
    )


def show_set(store: StoreCore, name: str, *, limit: int = 20) -> dict[str, Any]:
    info = set_info(store, name)
    if info is None:
        raise NotFound("set", name)
    by = store.query(
        "SELECT s.origin, s.source, count(*) AS n FROM set_members m JOIN samples s USING (sample_id) "
        "WHERE m.set_name = ? GROUP BY ALL ORDER BY ALL",
        params=[name],
    ).to_pylist()
    preview = store.query(
        "SELECT m.sample_id, left(s.text, 80) AS text FROM set_members m JOIN samples s USING (sample_id) "
        "WHERE m.set_name = ? ORDER BY m.sample_id LIMIT ?",
        params=[name, limit],
    ).to_pylist()
    return {**info, "members": sum(r["n"] for r in by), "composition": by, "preview": preview}


def protected_ids(store: StoreCore, names: list[str] | None = None) -> pa.Table:
    """Members of protected sets (all of them by default), with the set they belong to."""
    query = (
        "SELECT DISTINCT m.sample_id, m.set_name FROM set_members m JOIN sets s ON s.name = m.set_name "
        "WHERE s.protected"
    )
    if names is None:
        return store.query(query)
    return store.query(query + " AND list_contains(?, s.name)", params=[names])
