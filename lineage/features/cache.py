"""A feature cache: Parquet parts keyed by sample_id, under data/features/<kind>/<config-hash>/.

Features are pure functions of a sample's text and the config, so the cache needs no catalog entry:
a part is written to a temporary name, fsynced and renamed, and a crash at worst loses work. The
config (including the hashing scheme and library versions that make values reproducible) is stored
beside the parts as config.json, so a reader can check what it is reusing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage.ids import uuid7
from lineage.segments import TMP_PREFIX, fsync_path, write_parquet
from lineage.sqlutil import sql_string

if TYPE_CHECKING:
    from lineage.store import Store


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FeatureCache:
    """Cached features of one kind and config. `schema` must start with a `sample_id` string column."""

    def __init__(self, store: Store, kind: str, config: dict[str, Any], schema: pa.Schema) -> None:
        self.config, self.schema = config, schema
        self.folder = store.root / "data" / "features" / kind / config_hash(config)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "config.json"
        if not meta.exists():
            _atomic_write(meta, json.dumps(config, sort_keys=True, indent=2).encode())

    def _parts(self) -> list[str]:
        return [str(p) for p in sorted(self.folder.glob("part-*.parquet"))]

    def lookup(self, sample_ids: pa.Array) -> pa.Table:
        """Cached rows for these ids (each id once), in no particular order."""
        parts = self._parts()
        if not parts:
            return self.schema.empty_table()
        con = duckdb.connect()
        try:
            con.register("wanted", pa.table({"sample_id": sample_ids}))
            files = ", ".join(sql_string(p) for p in parts)
            return (
                con.sql(
                    f"SELECT f.* FROM read_parquet([{files}]) f SEMI JOIN wanted w USING (sample_id) "
                    "QUALIFY row_number() OVER (PARTITION BY f.sample_id) = 1"
                )
                .to_arrow_table()
                .cast(self.schema)
            )
        finally:
            con.close()

    def add(self, table: pa.Table) -> None:
        """Append newly computed rows as one part."""
        if table.num_rows == 0:
            return
        final = self.folder / f"part-{uuid7()}.parquet"
        tmp = self.folder / f"{TMP_PREFIX}{final.name}"
        write_parquet(tmp, self.schema, table.cast(self.schema).to_batches(max_chunksize=65_536))
        fsync_path(tmp)
        os.rename(tmp, final)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    tmp.write_bytes(data)
    fsync_path(tmp)
    os.rename(tmp, path)
