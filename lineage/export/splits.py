"""Seeded train/validation splits that keep families together.

A sample and its relatives in the store (parents, children, siblings: any two members linked through the
lineage graph) fall on the same side, so a paraphrase of a validation item never sits in train. Families are
the connected components of the graph linking each member to itself and its ancestors; each family is placed
by the md5 of `seed:<its smallest member id>`, a hash that does not depend on the DuckDB or Python version.
"""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pyarrow as pa

from lineage.errors import LineageError, UsageError, option

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_ANCESTRY = """
WITH RECURSIVE up(sample_id, anc) AS (
    SELECT sample_id, sample_id FROM _export_ids
    UNION
    SELECT up.sample_id, e.parent_id FROM up JOIN lineage_edges e ON e.child_id = up.anc
)
SELECT sample_id, anc FROM up
"""


def parse_splits(items: list[str] | tuple[str, ...] | dict[str, float] | None) -> dict[str, float]:
    """`validation=0.01` (repeatable, or comma-separated) -> {"validation": 0.01}; the rest is `train`."""
    if not items:
        return {}
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in ",".join(items).split(","):
            name, sep, value = item.strip().partition("=")
            try:
                pairs.append((name.strip(), float(value)) if sep else (name, -1.0))
            except ValueError:
                pairs.append((name.strip(), -1.0))
    splits: dict[str, float] = {}
    for name, share in pairs:
        if not _NAME.match(name) or name == "train" or name in splits:
            raise UsageError("split", name, ": give NAME=SHARE with a new lowercase name other than train")
        if not 0 < share < 1:
            raise LineageError(f"{option('split', name)}: the share must be between 0 and 1 (like validation=0.01)")
        splits[name] = share
    if sum(splits.values()) >= 1:
        raise LineageError(f"{option('split')} shares add up to {sum(splits.values()):g}: leave some for train")
    return splits


def assign(con: duckdb.DuckDBPyConnection, ids: pa.Table, splits: dict[str, float], seed: int) -> pa.Table:
    """(sample_id, split) for every member: `train` unless its family's hash falls in a named split's range."""
    if not splits:
        return ids.select(["sample_id"]).append_column("split", pa.array(["train"] * ids.num_rows, pa.string()))
    con.register("_export_ids", ids.select(["sample_id"]))
    pairs = con.sql(_ANCESTRY).to_arrow_table()
    family = _components(pairs)
    con.register("_export_family", family)
    bounds, low = [], 0.0
    for name, share in splits.items():
        bounds.append(f"WHEN u >= {low!r} AND u < {low + share!r} THEN '{name}'")
        low += share
    return con.sql(
        f"""SELECT sample_id, CASE {' '.join(bounds)} ELSE 'train' END AS split FROM (
            SELECT sample_id, CAST(('0x' || substr(md5(? || ':' || key), 1, 8)) AS UBIGINT) / 4294967296.0 AS u
            FROM (SELECT sample_id, min(sample_id) OVER (PARTITION BY component) AS key FROM _export_family))
        ORDER BY sample_id""",
        params=[str(seed)],
    ).to_arrow_table()


def _components(pairs: pa.Table) -> pa.Table:
    """(sample_id, component) for each member: connected components of the member-ancestor graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    both = pa.chunked_array(pairs["sample_id"].chunks + pairs["anc"].chunks).combine_chunks().dictionary_encode()
    codes = both.indices.to_numpy(zero_copy_only=False)
    n, half = len(both.dictionary), pairs.num_rows
    graph = coo_matrix((np.ones(half, dtype=np.int8), (codes[:half], codes[half:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members = pa.array(np.unique(codes[:half]))
    return pa.table({
        "sample_id": both.dictionary.take(members),
        "component": pa.array(labels[members.to_numpy()]),
    })
