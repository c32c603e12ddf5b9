"""`--format hf`: a folder `datasets.load_from_disk(OUTPUT)` opens: a Dataset, or a DatasetDict when splits
are asked for (`datasets.Dataset.save_to_disk` writes OUTPUT itself, not a subfolder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage.errors import LineageError
from lineage.export.files import describe
from lineage.export.records import register_records

if TYPE_CHECKING:
    from lineage.export import ExportOptions


def write_hf(
    con: duckdb.DuckDBPyConnection, root: Path, names: list[str], query: Callable[[str], str], verbatim: bool,
    options: ExportOptions,
) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise LineageError("the hf export needs the `datasets` package: pip install 'lineage[hf]'") from None
    tables = {split: _table(con, split, query, verbatim, options.provenance) for split in names}
    shards: dict[str, Any] = {}
    if options.shards.rows:
        shards["num_shards"] = {s: max(1, -(-t.num_rows // options.shards.rows)) for s, t in tables.items()}
    elif options.shards.bytes:
        shards["max_shard_size"] = options.shards.bytes
    if len(names) == 1:
        shards["num_shards"] = shards.get("num_shards", {}).get("train")
        dataset: Any = datasets.Dataset(tables["train"])
    else:
        dataset = datasets.DatasetDict({s: datasets.Dataset(t) for s, t in tables.items()})
    quiet = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the CLI prints one line; datasets' bars would be noise on stderr
    try:
        dataset.save_to_disk(str(root), **{k: v for k, v in shards.items() if v is not None})
    finally:
        if quiet:
            datasets.enable_progress_bars()
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        split = path.parent.name if path.parent != root else "train"
        files.append(describe(path, root, split if split in names else "train"))
    return files


def _table(
    con: duckdb.DuckDBPyConnection, split: str, query: Callable[[str], str], verbatim: bool, provenance: bool
) -> pa.Table:
    sql = register_records(con, split, provenance) if verbatim else query(split)
    return con.sql(f"SELECT * EXCLUDE (__sid) FROM ({sql}) ORDER BY __sid").to_arrow_table()
