"""`--format hf`: a folder `datasets.load_from_disk(OUTPUT)` opens: a Dataset, or a DatasetDict when splits
are asked for (`datasets.Dataset.save_to_disk` writes OUTPUT itself, not a subfolder).

Streamed, never a whole split in memory: DuckDB hands the split over in record batches of `batch_rows`, each
written at once to an Arrow stream file (the format `datasets` memory-maps) and to a Parquet mirror; `datasets`
then opens the stream files memory-mapped and `save_to_disk` shards them into OUTPUT.

The Parquet mirror (`data/{split}-00000-of-00001.parquet`, the Parquet export's layout) is what the Croissant
record sets describe: Croissant readers (mlcroissant) read Parquet, CSV and JSON but not Arrow files, so
without it the hf export's metadata could list files but no record set a validator can load. It is
zstd-compressed, so it costs a fraction of the Arrow files' size, and it doubles as a copy any engine reads.
"""

from __future__ import annotations

import io
import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lineage.core.sqlutil import sql_string
from lineage.errors import LineageError
from lineage.export.columns import PROVENANCE
from lineage.export.files import describe

if TYPE_CHECKING:
    from lineage.export.files import ExportOptions

MIRROR = "data"  # the Parquet mirror's folder under OUTPUT
# Rows DuckDB joins and sorts at a time, in batches: each window scans the store's segments once, so windows
# are larger than batches (fewer scans), and bounded (memory does not grow with the split).
WINDOW_BATCHES = 4


def write_hf(
    con: duckdb.DuckDBPyConnection, root: Path, names: list[str], query: Callable[..., str], verbatim: bool,
    options: ExportOptions, counts: dict[str, int], written: Callable[[str], None],
) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise LineageError("the hf export needs the `datasets` package: pip install 'lineage[hf]'") from None
    scratch = root / ".arrow-scratch"
    scratch.mkdir()
    (root / MIRROR).mkdir()
    parts = {}
    for split in names:
        batches = _batches(con, split, query, verbatim, options.provenance, options.batch_rows)
        arrow = _write_stream(batches, scratch / f"{split}.arrow", root / MIRROR / f"{split}-00000-of-00001.parquet")
        parts[split] = datasets.Dataset.from_file(str(arrow))  # memory-mapped, not read into memory
        written(split)
    shards: dict[str, Any] = {}
    if options.shards.rows:
        shards["num_shards"] = {s: max(1, -(-counts[s] // options.shards.rows)) for s in names}
    elif options.shards.bytes:
        shards["max_shard_size"] = options.shards.bytes
    if len(names) == 1:
        shards["num_shards"] = shards.get("num_shards", {}).get("train")
        dataset: Any = parts["train"]
    else:
        dataset = datasets.DatasetDict(parts)
    quiet = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the CLI prints one line; datasets' bars would be noise on stderr
    try:
        dataset.save_to_disk(str(root), **{k: v for k, v in shards.items() if v is not None})
    finally:
        if quiet:
            datasets.enable_progress_bars()
    del dataset, parts  # close the memory maps before their files go
    shutil.rmtree(scratch)
    return [describe(p, root, _split_of(p, root, names)) for p in sorted(p for p in root.rglob("*") if p.is_file())]


def _split_of(path: Path, root: Path, names: list[str]) -> str:
    """`train/data-00000-of-00001.arrow` -> train; `data/validation-00000-of-00001.parquet` -> validation."""
    if path.parent == root / MIRROR:
        return path.name.rsplit("-", 4)[0]
    return path.parent.name if path.parent != root and path.parent.name in names else "train"


def _write_stream(batches: Iterator[pa.RecordBatch], arrow: Path, parquet: Path) -> Path:
    """Each batch to the Arrow stream file and the Parquet mirror as it comes."""
    first = next(batches)
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, first.schema) as stream, \
            pq.ParquetWriter(parquet, first.schema, compression="zstd") as mirror:
        for batch in itertools.chain([first], batches):
            stream.write_batch(batch)
            mirror.write_batch(batch)
    return arrow


def _batches(
    con: duckdb.DuckDBPyConnection, split: str, query: Callable[..., str], verbatim: bool, provenance: bool,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The split's rows in sample_id order, `batch_rows` at a time (an empty split: one empty batch).

    Window by window: the split's sample ids (only the ids) are sorted, and each window of WINDOW_BATCHES x
    `batch_rows` ids is joined and sorted on its own, so neither Python nor DuckDB ever holds or sorts the
    whole split (one ORDER BY over it makes DuckDB materialise every row). benchmarks/hf_memory.py (~300 bytes
    a row; ~220 MiB of any run is the interpreter, datasets and DuckDB): peak RSS 567 MiB at 300,000 rows and
    623 MiB at 600,000, against 699 and 1,143 MiB for the split read whole and saved as before; the price is
    time, 1.8-1.9x (the Parquet mirror, the copy into shards, a scan of the segments per window)."""
    if verbatim:
        yield from _record_batches(con, split, provenance, batch_rows)
        return
    schema = None
    for window in _windows(con, split, batch_rows * WINDOW_BATCHES):
        con.register("_export_window", window)
        reader = con.sql(f"SELECT * EXCLUDE (__sid) FROM ({query(split, '_export_window')}) ORDER BY __sid")
        batches = reader.to_arrow_reader(batch_rows)
        schema = batches.schema
        yield from batches
        con.unregister("_export_window")
    if schema is None:  # no rows: one empty batch, for the schema
        yield from _at_least_one(con.sql(query(split)).to_arrow_reader(batch_rows), None)


def _windows(con: duckdb.DuckDBPyConnection, split: str, rows: int) -> Iterator[pa.Table]:
    """The split's (sample_id, split) rows in sample_id order, `rows` at a time."""
    ids = con.sql(f"SELECT sample_id, split FROM _export_members WHERE split = {sql_string(split)} "
                  "ORDER BY sample_id").to_arrow_table()
    for start in range(0, ids.num_rows, rows):
        yield ids.slice(start, rows)


def _at_least_one(batches: Any, schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        schema = schema or batches.schema
        yield pa.RecordBatch.from_pylist([], schema=pa.schema([f for f in schema if f.name != "__sid"]))


def _record_batches(
    con: duckdb.DuckDBPyConnection, split: str, provenance: bool, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The original records as columns, in two streamed passes over the windows: the first finds the one
    schema all records share (as Arrow would infer it from all of them at once), the second parses each batch
    with it."""
    select = ", ".join(f"s.{p}" for p in PROVENANCE)
    sql = (
        f"SELECT s.record, {select} FROM samples s JOIN _export_window m USING (sample_id) ORDER BY s.sample_id"
    )

    def windows() -> Iterator[pa.RecordBatch]:
        for window in _windows(con, split, batch_rows * WINDOW_BATCHES):
            con.register("_export_window", window)
            yield from con.sql(sql).to_arrow_reader(batch_rows)
            con.unregister("_export_window")

    schemas = [_parse(b["record"]).schema for b in windows()]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise LineageError(f"records of this build do not share one schema ({exc}); export as jsonl") from None
    out_schema = schema
    for batch in windows():
        table = _parse(batch["record"], schema)
        if provenance:
            for name in PROVENANCE:
                table = table.append_column(f"_lineage_{name}", batch[name])
        out_schema = table.schema
        yield from table.combine_chunks().to_batches()
    if not schemas:
        yield pa.RecordBatch.from_pylist([], schema=out_schema)


def _parse(records: pa.Array, schema: pa.Schema | None = None) -> pa.Table:
    data = "\n".join(records.to_pylist()).encode()
    parse = pajson.ParseOptions(explicit_schema=schema) if schema is not None else pajson.ParseOptions()
    try:
        return pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=max(len(data), 1 << 20)),
                                parse_options=parse)
    except pa.ArrowInvalid as exc:
        raise LineageError(f"records of this build do not share one schema ({exc}); export as jsonl") from None
