"""A feature cache: Parquet parts keyed by sample_id, under data/features/<kind>/<config-hash>/.

Features are pure functions of a sample's text and the config, so the cache needs no catalog entry:
a part is written to a temporary name, fsynced and published (renamed or uploaded), and a crash at worst
loses work. The
config (including the hashing scheme and library versions that make values reproducible) is stored
beside the parts as config.json, so a reader can check what it is reusing.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from lineage.core.ids import uuid7
from lineage.core.location import fsync_path
from lineage.core.segments import write_parquet
from lineage.core.sqlutil import sql_string

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FeatureCache:
    """Cached features of one kind and config. `schema` must start with a `sample_id` string column."""

    def __init__(self, store: StoreCore, kind: str, config: dict[str, Any], schema: pa.Schema) -> None:
        self.config, self.schema, self.data = config, schema, store.data
        self.folder = f"data/features/{kind}/{config_hash(config)}"
        if not self.data.exists(f"{self.folder}/config.json"):
            self.data.mkdirs(self.folder)
            self.data.write_bytes(f"{self.folder}/config.json", json.dumps(config, sort_keys=True, indent=2).encode())

    def part_names(self) -> list[str]:
        """The parts, relative to the data location (not the indexes in sub-folders, see `bandindex`)."""
        return [p for p in self.data.files(self.folder) if p.startswith(f"{self.folder}/part-")]

    def sql_parts(self) -> list[str]:
        return [self.data.sql_path(p) for p in self.part_names()]

    def lookup(self, sample_ids: pa.Array) -> pa.Table:
        """Cached rows for these ids (each id once), in no particular order."""
        parts = self.sql_parts()
        if not parts:
            return self.schema.empty_table()
        con = duckdb.connect()
        try:
            self.data.register(con)
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

    def add(self, table: pa.Table) -> str | None:
        """Append newly computed rows as one part; its name (None: nothing to add)."""
        if table.num_rows == 0:
            return None
        rel = f"{self.folder}/part-{uuid7()}.parquet"
        draft = self.data.draft(rel)
        write_parquet(draft, self.schema, table.cast(self.schema).to_batches(max_chunksize=65_536))
        fsync_path(draft)
        self.data.publish(draft, rel)
        return rel
