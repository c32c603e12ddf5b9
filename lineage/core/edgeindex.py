"""Memory-mapped indexes for provenance walks: each edges segment's links, and each samples segment's row numbers,
sorted by sample id, so a walk step is a vectorised binary search instead of a DuckDB query.

At 10,000,000 samples a walk over the edges segments (`lineage.core.edges`) cost 0.3-0.8 s in five DuckDB lookups,
and fetching the 58 rows it found 0.6-2.1 s more: DuckDB prunes row groups for `sample_id = ANY(list)` by the
list's min and max only, and random hex ids span every row group. Here:

- `data/features/edges/<segment>.arrow`: the links of one edges segment, children first then parents, each part
  sorted by (sample_id, related_id): `key` and `related` as fixed-width byte strings (the widest id of the segment,
  NUL-padded: they sort and compare as the ids do, ids hold no NUL). A step looks up every frontier id at once
  (`numpy.searchsorted` on the mapped keys) and touches only the pages it needs.
- `data/features/rows/<segment>.arrow`: one samples segment's ids, sorted, with each one's row in the segment, so
  the provenance of the samples found is read with `file_row_number = ANY(rows)`, which DuckDB prunes to the row
  groups and pages holding them (`Graph.rows`); and its content hashes and external ids, each as a 64-bit number,
  sorted, with their rows: ingest's lookups of the ids, texts and parents an input names (`lineage.ingest.lookup`).

Like the decision index (`lineage.features.decisionindex`), an index needs no catalog entry: it is a pure function
of an immutable segment, written to a draft, fsynced and published. Ingest and compaction index the segments they
wrote once these are committed (`index_segments`: a failed commit leaves nothing behind); a segment without an
index (migrated, from before the indexes, a writer killed after its commit) is indexed on first use. A remote data
location has no memory map: walks there use SQL (`lineage.core.edges.Graph`). `gc` removes the indexes of the
segments no version registers (`lineage.maintenance`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lineage.core.location import Location, fsync_path
from lineage.core.segments import Segment

EDGES_FOLDER = "data/features/edges"
ROWS_FOLDER = "data/features/rows"
PARENT, CHILD = "parent", "child"


def keys(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Ids as a numpy array of fixed-width byte strings (`S<widest>`), which sort and compare as the ids do."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
    if len(arr) == 0:
        return np.zeros(0, "S1")
    lengths = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    width = max(int(lengths.max()), 1)
    if (lengths == width).all() and arr.null_count == 0:  # the usual case (hex ids): the data buffer as it is
        offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        return data.view(f"S{width}").copy()
    return np.array(arr.cast(pa.large_binary()).to_pylist(), dtype=f"S{width}")  # bytes: UTF-8 ids too


def ids_array(found: np.ndarray) -> pa.Array:
    """Keys back to ids, as an Arrow string array: when none is padded (ids of one width, as hex ids are), the
    buffer is decoded at once (a million ids in 0.1 s, where one by one took 1 s); else each without its padding."""
    width = found.dtype.itemsize
    if len(found) and (found.view(np.uint8).reshape(len(found), width)[:, -1] != 0).all():
        return _fixed(found).cast(pa.binary()).cast(pa.string())
    return pa.array([k.decode() for k in found.tolist()], pa.string())


def ids_of(found: np.ndarray) -> list[str]:
    return ids_array(found).to_pylist()


def _fixed(values: np.ndarray) -> pa.Array:
    width = values.dtype.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values.tobytes())])


def _mapped(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-width binary column of a mapped file as numpy keys, without a copy (the file is one batch)."""
    arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    width = arr.type.byte_width
    return np.frombuffer(arr.buffers()[1], f"S{width}")[arr.offset : arr.offset + len(arr)]


def _comparable(wanted: np.ndarray, width: int) -> np.ndarray:
    """`wanted` as keys of `width` bytes; longer ones cannot match and are dropped."""
    if wanted.dtype.itemsize > width:
        wanted = wanted[np.char.str_len(wanted) <= width]
    return wanted.astype(f"S{width}")


def _ranges(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For unique `wanted` keys: the index into `wanted` and the position in `sorted_keys` of every match."""
    if len(sorted_keys) == 0 or len(wanted) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return _expand(np.searchsorted(sorted_keys, wanted, "left"), np.searchsorted(sorted_keys, wanted, "right"))


def _publish(data: Location, folder: str, rel: str, table: pa.Table) -> None:
    """Write `table` as an uncompressed Arrow IPC file at `rel`: a draft of its own (two readers indexing the same
    segment at once each publish the same content), fsynced, renamed."""
    data.mkdirs(folder)
    draft = data.draft(rel)
    draft = draft.with_name(f"{draft.name}.{uuid.uuid4().hex[:12]}")
    try:
        with pa.OSFile(str(draft), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        fsync_path(draft)
        data.publish(draft, rel)
    finally:
        draft.unlink(missing_ok=True)


def _map(data: Location, rel: str) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(data.path(rel))).read_all()


def index_rel(folder: str, segment_rel: str) -> str:
    return f"{folder}/{segment_rel.rsplit('/', 1)[-1].removesuffix('.parquet')}.arrow"


class EdgeIndex:
    """The links of one edges segment (`rel`), by relation: `pairs` of a set of ids."""

    def __init__(self, table: pa.Table) -> None:
        children = int((table.schema.metadata or {})[b"children"])
        key, related, prefix = _mapped(table["key"]), _mapped(table["related"]), _column(table["prefix"])
        self._parts = {CHILD: (key[:children], related[:children], prefix[:children]),
                       PARENT: (key[children:], related[children:], prefix[children:])}

    @classmethod
    def build(cls, data: Location, rel: str) -> None:
        """Index the edges segment at `rel` (schema `lineage.schemas.EDGES`)."""
        with data.open_input(rel) as f:
            edges = pq.ParquetFile(f).read(columns=["sample_id", "relation", "related_id"])
        parts = []
        for relation in (CHILD, PARENT):
            part = edges.filter(pc.equal(edges["relation"], relation))
            key, related = keys(part["sample_id"]), keys(part["related_id"])
            if len(key) > 1 and not (key[1:] >= key[:-1]).all():  # segments come sorted by sample_id; else sort
                order = np.lexsort((related, key))
                key, related = key[order], related[order]
            parts.append((key, related))
        width = max(1, *(k.dtype.itemsize for k, _ in parts))
        rwidth = max(1, *(r.dtype.itemsize for _, r in parts))
        key = np.concatenate([k.astype(f"S{width}") for k, _ in parts])
        related = np.concatenate([r.astype(f"S{rwidth}") for _, r in parts])
        table = pa.table({"key": _fixed(key), "related": _fixed(related), "prefix": prefixes(key)})
        table = table.replace_schema_metadata({"children": str(len(parts[0][0]))})
        _publish(data, EDGES_FOLDER, index_rel(EDGES_FOLDER, rel), table)

    @classmethod
    def open(cls, data: Location, rel: str) -> EdgeIndex:
        """The index of the edges segment at `rel`, built now when it has none (or a crash left it unreadable)."""
        target = index_rel(EDGES_FOLDER, rel)
        try:
            return cls(_map(data, target))
        except (OSError, pa.ArrowInvalid, KeyError):
            cls.build(data, rel)
            return cls(_map(data, target))

    def pairs(self, wanted: np.ndarray, relation: str) -> tuple[np.ndarray, np.ndarray]:
        """For unique `wanted` keys: (index into `wanted`, related key) of each link of `relation`.

        The search runs on each key's first 8 bytes as an integer (stored in the index: a million ids among 4.5
        million keys in ~0.1 s, where searching the byte strings took 1.6 s); keys that share those bytes with
        another are told apart by comparing the whole key."""
        key, related, prefix = self._parts[relation]
        width = key.dtype.itemsize
        kept = np.flatnonzero(np.char.str_len(wanted) <= width) if wanted.dtype.itemsize > width else None
        looked = _comparable(wanted, width)
        lo = np.searchsorted(prefix, prefixes(looked), "left")
        hi = np.searchsorted(prefix, prefixes(looked), "right")
        which, at = _expand(lo, hi)
        same = key[at] == looked[which]
        which, at = which[same], at[same]
        return (which if kept is None else kept[which]), related[at]


def prefixes(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each key as an unsigned integer (big-endian, NUL-padded): it orders as the keys do."""
    if len(keys) == 0:
        return np.zeros(0, np.uint64)
    padded = keys.astype(f"S{max(keys.dtype.itemsize, 8)}", copy=False)
    first = np.ascontiguousarray(padded.view(np.uint8).reshape(len(keys), -1)[:, :8])
    return first.view(">u8").ravel().astype(np.uint64)


def _column(column: pa.ChunkedArray) -> np.ndarray:
    return (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()).to_numpy()


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, p) for every p in range(lo[i], hi[i])."""
    count = hi - lo
    which = np.repeat(np.arange(len(lo)), count)
    at = np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return which, at.astype(np.int64)


class RowIndex:
    """The rows of one samples segment (`rel`) by sample id (`rows`: provenance walks, ingest's id lookup), and the
    rows that may hold a content hash or an external id (`holds`, `external_ids`, `candidates`: ingest's duplicate
    count and parent lookup).

    Ids are kept whole (fixed-width keys). A content hash (64 hex digits) is kept as its first 16 digits decoded to
    an unsigned integer, an external id (any text) as the first 8 bytes of its sha256 (`external_hashes`; a sample
    without one as 0), with the sample id of its row (`external_ids`: a parent named by external id needs no read
    of the id columns, which cost ~95% of reading its row): 12 bytes a sample instead of the whole text. Two values
    share a hash once in 2^64 pairs: `lineage.ingest.lookup` compares the whole value where it reads the row, and
    trusts the hash where it does not (an ingest's duplicate count, a parent's sample id)."""

    def __init__(self, table: pa.Table) -> None:
        # Every column read here: an index written before one was added fails with KeyError and is built again.
        self._key = _mapped(table["key"])
        self._row = _column(table["row"])
        self._hashed = {name: (_column(table[name]), _column(table[f"{name}_row"])) for name in HASHED}
        self._external_sample = _mapped(table["external_id_sample"])

    @classmethod
    def build(cls, data: Location, rel: str) -> None:
        with data.open_input(rel) as f:
            segment = pq.ParquetFile(f)
            key = keys(segment.read(columns=["sample_id"])["sample_id"])
            # The hashed columns a batch at a time: their text is scratch, so memory is the ids' and the output's.
            hashed = {
                name: np.concatenate([np.zeros(0, np.uint64)] + [
                    hashing(batch.column(0)) for batch in segment.iter_batches(EXTERNAL_CHUNK, columns=[name])])
                for name, hashing in HASHED.items()
            }
        order = np.argsort(key, kind="stable")
        columns: dict[str, pa.Array] = {"key": _fixed(key[order]), "row": pa.array(order.astype(np.uint32))}
        for name, values in hashed.items():
            by_value = np.argsort(values, kind="stable")
            columns[name], columns[f"{name}_row"] = pa.array(values[by_value]), pa.array(by_value.astype(np.uint32))
            if name == "external_id":
                columns["external_id_sample"] = _fixed(key[by_value])
        _publish(data, ROWS_FOLDER, index_rel(ROWS_FOLDER, rel), pa.table(columns))

    @classmethod
    def open(cls, data: Location, rel: str) -> RowIndex:
        target = index_rel(ROWS_FOLDER, rel)
        try:
            return cls(_map(data, target))
        except (OSError, pa.ArrowInvalid, KeyError):
            cls.build(data, rel)
            return cls(_map(data, target))

    def rows(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows (ascending) of the `wanted` keys this segment holds, and their keys."""
        _, at = _ranges(self._key, _comparable(np.unique(wanted), self._key.dtype.itemsize))
        rows = self._row[at].astype(np.int64)
        order = np.argsort(rows)
        return rows[order], self._key[at][order]

    def holds(self, column: str, hashed: np.ndarray) -> np.ndarray:
        """For each of `hashed` (values of `column` as HASHED hashes them), whether a row of this segment has it."""
        values = self._hashed[column][0]
        at = np.searchsorted(values, hashed)
        return values[np.minimum(at, len(values) - 1)] == hashed if len(values) else np.zeros(len(hashed), bool)

    def external_ids(self, values: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For distinct external ids `values`: (index into `values`, row, sample id key) of each row of this segment
        whose external id's hash is that value's."""
        hashed, rows = self._hashed["external_id"]
        which, at = _ranges(hashed, external_hashes(pa.array(list(values), pa.string())))
        return which, rows[at].astype(np.int64), self._external_sample[at]

    def candidates(self, column: str, values: Sequence[str]) -> np.ndarray:
        """The rows (ascending) whose `column` (a key of HASHED) may be one of `values`."""
        hashed, rows = self._hashed[column]
        _, at = _ranges(hashed, np.unique(HASHED[column](pa.array(list(values), pa.string()))))
        return np.sort(rows[at].astype(np.int64))


def hash_prefixes(hashes: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Content hashes (hex, as DuckDB's sha256 writes them) as their first 16 digits decoded: uint64. 8 bytes of
    output and ~24 of scratch a hash (a million in ~0.1 s)."""
    digits = keys(pc.utf8_slice_codeunits(hashes, 0, 16))
    if len(digits) == 0:
        return np.zeros(0, np.uint64)
    return np.frombuffer(bytes.fromhex(digits.astype("S16").tobytes().decode("ascii")), ">u8").astype(np.uint64)


EXTERNAL_CHUNK = 65_536  # values hashed at a time: their text (external ids: as Python strings) is scratch memory


def external_hashes(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The first 8 bytes of the sha256 of each text's UTF-8 bytes, as an unsigned integer; 0 for a null. A hash fixed
    by its definition (an index on disk outlives any library version), and one nobody can aim at another id's value:
    finding a text with a given 64-bit prefix takes 2^64 tries. ~0.6 s a million ids."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    out = np.zeros(len(arr), np.uint64)
    for start in range(0, len(arr), EXTERNAL_CHUNK):
        part = arr.slice(start, EXTERNAL_CHUNK).to_pylist()
        digests = b"".join(b"\0" * 8 if t is None else hashlib.sha256(t.encode()).digest()[:8] for t in part)
        out[start : start + len(part)] = np.frombuffer(digests, ">u8")
    return out


HASHED = {"content_hash": hash_prefixes, "external_id": external_hashes}  # column -> its hash in a RowIndex


def index_segments(data: Location, segments: Sequence[Segment]) -> None:
    """Index the samples and edges segments a commit registered (an ingest's: their first walk then finds them)."""
    if not data.posix:
        return
    for segment in segments:
        if segment.kind == "samples":
            RowIndex.build(data, segment.path)
        elif segment.kind == "edges":
            EdgeIndex.build(data, segment.path)


def unique_keys(ids: Sequence[str]) -> np.ndarray:
    return np.unique(keys(pa.array(list(ids), pa.string())))
