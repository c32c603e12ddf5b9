"""The samples an operation reads: `--where` over the samples view (and/or explicit ids), read-only, in batches.

Filter runs, diversity, builds and the Ray engine read samples through it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core import catalog, readonly
from lineage.core.sqlutil import quote_ident

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

BATCH_ROWS = 20_000  # rows per batch a selection yields and an engine hands to a filter


def _views(where: str | None) -> set[str] | None:
    """The views a selection's own reader creates: `samples`, `runs` (a filter run looks up its previous runs on
    it) and what `where` names; all when `where` lists the catalog's contents (`catalog.views_named`). Creating
    every view costs a reader ~60-80 ms more, paid by every filter run, build pool and diversity measure."""
    named = catalog.views_named(where or "")
    return None if named is None else {"samples", "runs", *named}


class Selection:
    """The samples a run sees: `--where` over the samples view (and/or explicit ids), read-only, in batches."""

    def __init__(
        self,
        store: StoreCore,
        where: str | None,
        columns: list[str],
        ids: pa.Array | None = None,
        con: Any = None,
        min_version: int | None = None,
    ) -> None:
        """`con`: a reader connection of `store` to use throughout (see `open`); else one per query.
        `min_version`: no selected sample is older (a bound DuckDB prunes segments with, for `ids`)."""
        self.store, self.where, self.columns, self.ids, self._con = store, where, columns, ids, con
        self._predicate = readonly.check_predicate(where, what="--where") if where else "true"
        if min_version is not None:
            self._predicate = f"({self._predicate}) AND version >= {int(min_version)}"
        if con is not None:
            self._prepare(con)
        query = f"SELECT count(*) AS n, hex(bit_xor(md5_number(sample_id))) AS fp FROM {self._from()}"
        with self._connect() as con:
            row = readonly.run(con, query).to_pylist()[0]
        self.count, self.fingerprint = row["n"], f"{row['n']}:{row['fp']}"

    @classmethod
    @contextmanager
    def open(
        cls, store: StoreCore, where: str | None, columns: list[str], ids: pa.Array | None = None,
        min_version: int | None = None, con: Any = None,
    ) -> Iterator[Selection]:
        """A selection reading through one connection while the block runs (a run's queries share it); `con`: a
        reader connection of the store's to use (else one is opened)."""
        if con is not None:
            yield cls(store, where, columns, ids, con, min_version)
            return
        with store.reader(views=_views(where), locked=True) as own:
            yield cls(store, where, columns, ids, own, min_version)

    def sql(self, query: str, params: list[object] | None = None) -> pa.Table:
        """A read-only query over the store's views on the selection's connection."""
        with self._connect() as con:
            return readonly.run(con, query, params)

    def _from(self) -> str:
        ids = " SEMI JOIN _selected_ids USING (sample_id)" if self.ids is not None else ""
        return f"(SELECT * FROM samples WHERE {self._predicate}){ids}"

    def _prepare(self, con: Any) -> None:
        if self.ids is not None:
            con.register("_selected_ids", pa.table({"sample_id": pa.array(self.ids, pa.string())}))
        readonly.lock_down(con, self.store.data)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        if self._con is not None:
            yield self._con
            return
        with self.store.reader(views=_views(self.where), locked=True) as con:
            self._prepare(con)
            yield con

    def batches(self, columns: list[str] | None = None, *, ordered: bool = True) -> Iterator[pa.RecordBatch]:
        """The selected samples' `columns` (default: the run's) in batches, by sample_id unless not `ordered` (then
        streamed as read: no sort holds the selection in memory)."""
        cols = ", ".join(quote_ident(c) for c in columns or self.columns)
        query = f"SELECT {cols} FROM {self._from()}{' ORDER BY sample_id' if ordered else ''}"
        with self._connect() as con:
            readonly.check_statement(con, query)
            yield from con.sql(query).to_arrow_reader(BATCH_ROWS)

    def texts(self, ids: pa.Table) -> Iterator[pa.RecordBatch]:
        """(sample_id, text) of the samples whose ids are in `ids` (a table with a `sample_id` column), streamed
        in batches in no particular order."""
        with self._connect() as con:
            con.register("_wanted_ids", ids.select(["sample_id"]))
            try:
                query = "SELECT sample_id, text FROM samples SEMI JOIN _wanted_ids USING (sample_id)"
                yield from con.sql(query).to_arrow_reader(BATCH_ROWS)
            finally:
                con.unregister("_wanted_ids")

    def segment_files(self) -> list[catalog.SegmentFile]:
        """The sample segment files the selection reads (as of the store's version), with their row counts and
        sizes; paths relative to the data location's base."""
        with self._connect() as con:
            return catalog.segment_files(con, "samples", self.store.as_of)

    def text_bytes(self) -> int:
        """The size of the selected texts in bytes (a pass over the text column)."""
        return int(self.sql(f"SELECT coalesce(sum(strlen(text)), 0) AS n FROM {self._from()}")["n"][0].as_py())

    def sample_ids(self) -> pa.Array:
        """The selected sample ids (what other engines semi-join the segments with)."""
        with self._connect() as con:
            return con.sql(f"SELECT sample_id FROM {self._from()}").to_arrow_table()["sample_id"].combine_chunks()

    def by_source(self, decisions: pa.Table) -> list[dict[str, Any]]:
        """The decisions counted by source, decision and reason (its part before `:`)."""
        with self._connect() as con:
            con.register("_decided", decisions)
            try:
                rows = con.sql(
                    "SELECT s.source, d.decision, split_part(d.reason, ':', 1) AS reason, count(*) AS n "
                    f"FROM _decided d JOIN (SELECT * FROM {self._from()}) s USING (sample_id) GROUP BY ALL ORDER BY ALL"
                ).to_arrow_table()
            finally:
                con.unregister("_decided")
        return [{**r, "reason": r["reason"] or None} for r in rows.to_pylist()]
