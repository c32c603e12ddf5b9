"""An index of the LSH band keys of cached MinHash signatures, so new samples find their candidates among
millions of old ones without reading the old signatures.

For each signature part `part-<id>.parquet` of a minhash cache (`lineage.features.cache`) and each banding
(b bands of r values), `bands-<b>x<r>/part-<id>.arrow` holds one row per band of every non-empty signature
in that part: `key` (the band key, uint32, ascending) and `sample_id`, dictionary-encoded (the dictionary is
the part's ids, each once). It is an uncompressed Arrow IPC file, memory-mapped on local disk: a lookup
binary-searches the sorted keys and decodes the ids of the hits only, so it touches only the pages it needs.
(A Parquet join in DuckDB reads and decompresses every key: 1.5-4 s for 21 million keys on this machine, the
whole cost budget of an incremental run.)

Like the cache, the index needs no catalog entry: it is a pure function of a signature part. A part without
its index (a cache from before the index existed, a crash between the two writes) is indexed on first use.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lineage.core.location import fsync_path
from lineage.features.cache import FeatureCache
from lineage.features.minhash import EMPTY, band_keys

INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint32(), nullable=False),
        pa.field("sample_id", pa.dictionary(pa.uint32(), pa.string()), nullable=False),
    ]
)


class BandIndex:
    """The band-key index of one minhash cache for one banding (`bands` x `rows`)."""

    def __init__(self, cache: FeatureCache, bands: int, rows: int, num_perm: int) -> None:
        self.cache, self.bands, self.rows, self.num_perm = cache, bands, rows, num_perm
        self.folder = f"{cache.folder}/bands-{bands}x{rows}"

    def _index_of(self, part: str) -> str:
        return f"{self.folder}/{part.rsplit('/', 1)[-1].removesuffix('.parquet')}.arrow"

    def add(self, part: str, ids: pa.Array | pa.ChunkedArray, sigs: np.ndarray) -> None:
        """Index the signatures `sigs` of the samples `ids` (in the order of cache part `part`)."""
        rows = np.flatnonzero((sigs != EMPTY).any(axis=1)).astype(np.uint32)
        keys = band_keys(sigs[rows], self.bands, self.rows).ravel()
        order = np.argsort(keys, kind="stable")
        dictionary = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        sample_ids = pa.DictionaryArray.from_arrays(pa.array(np.repeat(rows, self.bands)[order]), dictionary)
        table = pa.table({"key": keys[order], "sample_id": sample_ids}, schema=INDEX_SCHEMA)
        rel = self._index_of(part)
        data = self.cache.data
        data.mkdirs(self.folder)
        draft = data.draft(rel)
        with pa.OSFile(str(draft), "wb") as sink, pa.ipc.new_file(sink, INDEX_SCHEMA) as writer:
            writer.write_table(table)
        fsync_path(draft)
        data.publish(draft, rel)

    def ensure(self) -> None:
        """Index the cache parts that have no index yet."""
        indexed = set(self.cache.data.files(self.folder))
        for part in self.cache.part_names():
            if self._index_of(part) not in indexed:
                with self.cache.data.open_input(part) as f:
                    # One file: ParquetFile, not read_table, which imports pyarrow.dataset (~0.3 CPU-s).
                    table = pq.ParquetFile(f).read()
                column = table["minhash"].combine_chunks()
                raw = np.frombuffer(column.buffers()[1], "<u4")[column.offset * self.num_perm :]
                sigs = raw[: len(column) * self.num_perm].reshape(len(column), self.num_perm)
                self.add(part, table["sample_id"], sigs)

    def _keys(self, part: str) -> pa.Table:
        data = self.cache.data
        rel = self._index_of(part)
        source = pa.memory_map(data.path(rel)) if data.posix else pa.BufferReader(data.open_input(rel).read())
        return pa.ipc.open_file(source).read_all()

    def lookup(self, sigs: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """(row of `sigs`, sample_id) of every indexed sample sharing a band key with a row of `sigs`.

        Pairs repeat when they share several bands; empty signatures match nothing.
        """
        self.ensure()
        mine = np.flatnonzero((sigs != EMPTY).any(axis=1))
        query = band_keys(sigs[mine], self.bands, self.rows).ravel()
        order = np.argsort(query, kind="stable")
        query, owner = query[order], mine[order // self.bands]
        found_rows, found_ids = [np.zeros(0, np.int64)], [pa.array([], pa.string())]
        for part in self.cache.part_names():
            index = self._keys(part)
            keys = index["key"].combine_chunks().to_numpy(zero_copy_only=False)
            lo, hi = np.searchsorted(keys, query, "left"), np.searchsorted(keys, query, "right")
            count = hi - lo
            if not count.any():
                continue
            step = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
            at = np.repeat(lo, count) + step
            found_rows.append(np.repeat(owner, count))
            found_ids.append(index["sample_id"].take(pa.array(at)).combine_chunks().dictionary_decode())
        return np.concatenate(found_rows), pa.concat_arrays(found_ids)
