"""An index of one events segment's decisions by sample id and by cluster id, so an incremental run reads the
decisions of the few old samples it touches without reading every decision ever made.

Looking up k random sample ids in a Parquet segment of N decisions reads and decompresses every row group of every
column (k random ids hit every row group), and that read, not the new data, was most of an incremental run's cost.
`data/features/decisions/<segment>.arrow` holds the segment's rows sorted by sample id, with the ids as fixed-width
keys; `<segment>.clusters.arrow` the cluster ids (the sample's own id when it has none), sorted, with their rows.
Both are uncompressed Arrow IPC files, memory-mapped on local disk: a lookup binary-searches the keys (numpy on the
mapped buffer) and takes the rows it found, so it touches only the pages it needs.

Like the band-key index beside the MinHash cache (`lineage.features.bandindex`), it needs no catalog entry: it is a
pure function of an immutable segment, written to a draft, fsynced and published. A filter run writes it beside the
segment it commits; a segment without one (from before the index existed, a compaction, a crash between the two
writes) is indexed on first use, or, on a remote data location, read with SQL instead (`Prior`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lineage.core.edgeindex import keys as id_keys
from lineage.core.faults import crash_point
from lineage.core.location import fsync_path

if TYPE_CHECKING:
    from lineage.core.location import Location

FOLDER = "data/features/decisions"
COLUMNS = ("sample_id", "decision", "score", "reason", "related_id", "cluster_id", "run_id", "version")


def _fixed(keys: np.ndarray) -> pa.Array:
    """Fixed-width keys as a fixed-size binary Arrow array (what the index file stores)."""
    width = keys.dtype.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(keys), [None, pa.py_buffer(keys.tobytes())])


def _mapped_keys(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    width = arr.type.byte_width
    return np.frombuffer(arr.buffers()[1], f"S{width}")[arr.offset : arr.offset + len(arr)]


class DecisionIndex:
    """The index of one events segment (`rel`: its path relative to the data location)."""

    def __init__(self, data: Location, rel: str) -> None:
        self.data, self.rel = data, rel
        stem = rel.rsplit("/", 1)[-1].removesuffix(".parquet")
        self.rows_rel, self.clusters_rel = f"{FOLDER}/{stem}.arrow", f"{FOLDER}/{stem}.clusters.arrow"
        self._rows: pa.Table | None = None
        self._clusters: pa.Table | None = None

    @classmethod
    def write(cls, data: Location, rel: str, events: pa.Table) -> DecisionIndex:
        """Index `events` (the segment's rows, COLUMNS) for the segment at `rel`."""
        index = cls(data, rel)
        table = events.select(list(COLUMNS)).combine_chunks()
        # Every column nullable, whoever wrote the events: a full run's had `version` NOT NULL and an incremental
        # run's not, and the two indexes could not be read together (`--new` failed on the second run).
        table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))
        keys = id_keys(table["sample_id"])
        if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():  # a run's decisions usually come sorted already
            order = np.argsort(keys, kind="stable")
            table, keys = table.take(pa.array(order)), keys[order]
        # Repeated values dictionary-encoded: the file is read through a memory map, uncompressed.
        for name in ("decision", "reason", "run_id"):
            table = table.set_column(table.schema.get_field_index(name), name, pc.dictionary_encode(table[name]))
        own = table["cluster_id"].null_count == table.num_rows  # no clusters (per-sample filters): no second file
        rows = table.append_column("key", _fixed(keys)).replace_schema_metadata({"clusters": "own" if own else "file"})
        files = [(index.rows_rel, rows)]
        if not own:
            clusters = id_keys(pc.coalesce(table["cluster_id"], table["sample_id"]))
            order = np.argsort(clusters, kind="stable")
            files.insert(0, (index.clusters_rel, pa.table({"key": _fixed(clusters[order]),
                                                           "row": pa.array(order.astype(np.uint32))})))
        data.mkdirs(FOLDER)
        for target, content in files:  # the rows file last: it says whether the clusters file is needed
            draft = data.draft(target)
            with pa.OSFile(str(draft), "wb") as sink, pa.ipc.new_file(sink, content.schema) as writer:
                writer.write_table(content)
            fsync_path(draft)
            data.publish(draft, target)
            crash_point("decision_index_published")
        return index

    @classmethod
    def open(cls, data: Location, rel: str) -> DecisionIndex | None:
        """The index of the segment at `rel`, built now when it has none; None on a remote data location (no
        memory map: a query reads the segment instead)."""
        if not data.posix:
            return None
        index = cls(data, rel)
        try:
            index._load()
        except (OSError, pa.ArrowInvalid):  # none yet, or a draft a crash left half written: build it again
            with data.open_input(rel) as f:
                events = pq.ParquetFile(f).read(columns=list(COLUMNS))  # not read_table: see bandindex
            index = cls.write(data, rel, events)
            index._load()
        return index

    def _load(self) -> None:
        def mapped(rel: str) -> pa.Table:
            return pa.ipc.open_file(pa.memory_map(self.data.path(rel))).read_all()

        self._rows = mapped(self.rows_rel)
        own = (self._rows.schema.metadata or {}).get(b"clusters") == b"own"
        self._clusters = None if own else mapped(self.clusters_rel)

    def by_sample(self, ids: np.ndarray) -> pa.Table:
        """The rows (COLUMNS) of the samples `ids` (keys from `keys_of`) this segment holds."""
        assert self._rows is not None
        at = _positions(_mapped_keys(self._rows["key"]), ids)
        return self._rows.select(list(COLUMNS)).take(pa.array(at))

    def by_cluster(self, clusters: np.ndarray) -> pa.Table:
        """The rows (COLUMNS) whose cluster (their own id when none) is one of `clusters` (keys from `keys_of`)."""
        assert self._rows is not None
        if self._clusters is None:  # every sample is its own cluster
            return self.by_sample(clusters)
        at = _positions(_mapped_keys(self._clusters["key"]), clusters)
        rows = self._clusters["row"].combine_chunks().take(pa.array(at))
        return self._rows.select(list(COLUMNS)).take(rows)


def _comparable(wanted: np.ndarray, width: int) -> np.ndarray:
    """`wanted` as keys of `width` bytes; longer ones cannot match and are dropped."""
    if wanted.dtype.itemsize > width:
        wanted = wanted[np.char.str_len(wanted) <= width]
    return wanted.astype(f"S{width}")


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Every position in sorted `keys` holding one of `wanted` (binary search: only the pages it needs)."""
    wanted = np.unique(_comparable(wanted, keys.dtype.itemsize))
    if len(keys) == 0 or len(wanted) == 0:
        return np.zeros(0, np.int64)
    lo, hi = np.searchsorted(keys, wanted, "left"), np.searchsorted(keys, wanted, "right")
    count = hi - lo
    return (np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)).astype(np.int64)


def keys_of(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Ids as lookup keys for `DecisionIndex.by_sample` and `by_cluster`."""
    return id_keys(ids)
