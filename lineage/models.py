"""Models trained on builds: registration, lineage order, and the generation their outputs get.

A model names the build it was trained on (and optionally the model it was fine-tuned from). Samples
ingested with `--generator MODEL` then get generation 1 + the deepest generation in that build, so the
generation depth of a closed training loop is counted without anyone passing `--generation`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.errors import LineageError, NotFound
from lineage.names import check_name
from lineage.schemas import MODELS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

MODEL_BUILDS_SQL = """
SELECT m.name, m.build_name, m.build_version, b.members_path
FROM models m JOIN builds b ON b.name = m.build_name AND b.build_version = m.build_version
"""


def model_info(store: StoreCore, name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM models WHERE name = ?", params=[name]).to_pylist()
    return rows[0] if rows else None


def require_model(store: StoreCore, name: str) -> dict[str, Any]:
    info = model_info(store, name)
    if info is None:
        raise NotFound("model", name, f"no model `{name}`; `lineage models` lists them")
    return info


def register_model(
    store: StoreCore, name: str, *, trained_on: str, parent: str | None = None, notes: str | None = None
) -> dict[str, Any]:
    """Register model `name`, trained on build `trained_on` (NAME or NAME@vN), fine-tuned from `parent`."""
    from lineage.build.record import BuildRecord

    check_name("model", name)
    with store.transaction("model", name, {"model": name, "trained_on": trained_on}) as txn:
        if model_info(store, name) is not None:
            raise LineageError(f"model `{name}` is already registered; pick another name")
        if parent is not None and model_info(store, parent) is None:
            raise NotFound("model", parent, f"parent model `{parent}` is not registered; `lineage models` lists them")
        build = BuildRecord.parse(store, trained_on)  # the latest version when none is given, pinned here
        row = {
            "name": name,
            "build_name": build.name,
            "build_version": build.version,
            "parent": parent,
            "notes": notes,
            "registered_at": datetime.now(UTC),
            "version": txn.version,
        }
        txn.add_rows("models", pa.Table.from_pylist([row], schema=MODELS))
    return row


def list_models(store: StoreCore) -> pa.Table:
    """Registered models in lineage order, with their build, output generation and eval count."""
    table = store.query(
        "SELECT m.name, m.build_name || '@v' || m.build_version AS trained_on, m.parent, m.notes, "
        "(SELECT count(*) FROM evals e WHERE e.model = m.name) AS evals, m.version FROM models m"
    )
    order = {name: i for i, name in enumerate(lineage_order(store))}
    rows = sorted(table.to_pylist(), key=lambda r: order[r["name"]])
    gens = output_generations(store, [r["name"] for r in rows])
    return pa.Table.from_pylist([{**r, "output_generation": gens.get(r["name"])} for r in rows])


def lineage_order(store: StoreCore, names: list[str] | None = None) -> list[str]:
    """Model names with parents before children, otherwise in registration order."""
    rows = store.query("SELECT name, parent FROM models ORDER BY version, name").to_pylist()
    parent = {r["name"]: r["parent"] for r in rows}
    done: list[str] = []

    def visit(name: str) -> None:
        # A parent is registered before its child, so this walk has no cycles.
        if name in done:
            return
        if parent.get(name):
            visit(parent[name])
        done.append(name)

    for r in rows:
        visit(r["name"])
    if names is None:
        return done
    missing = [n for n in names if n not in parent]
    if missing:
        raise NotFound("model", missing[0], f"no model `{missing[0]}`; `lineage models` lists them")
    return [n for n in done if n in names]


def output_generations(store: StoreCore, names: list[str] | None = None) -> dict[str, int]:
    """Generation of each model's outputs: 1 + the deepest generation among its training build's members."""
    out: dict[str, int] = {}
    for row in store.query(MODEL_BUILDS_SQL).to_pylist():
        if names is not None and row["name"] not in names:
            continue
        with store.reader(views={"samples"}) as con:
            path = str(store.root / row["members_path"])
            found = con.execute(
                "SELECT max(s.generation) FROM read_parquet(?) m JOIN samples s USING (sample_id)", [path]
            ).fetchall()[0][0]
        out[row["name"]] = 1 + (found or 0)
    return out


def registered_names(store: StoreCore) -> list[str]:
    return store.query("SELECT name FROM models ORDER BY name")["name"].to_pylist()
