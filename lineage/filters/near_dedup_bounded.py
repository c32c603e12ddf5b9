"""near-dedup out of core: the decisions of `NearDedupFilter.decide_all` in memory bounded by a limit.

`decide_all` holds the selection's texts, signatures and band keys at once (~8 KB a document); this holds a
batch of each in Python and everything selection-sized in a scratch DuckDB database (`lineage.filters.spill`)
that spills to STORE/tmp past `memory_limit`:

1. The selection is streamed in batches (no sort): each batch's signatures come from the feature cache or are
   hashed (and cached, in parts of `CACHE_PART_ROWS`); its band keys, a hash of each whole signature and the
   columns of the keep policy go to DuckDB tables. Texts are not kept.
2. Candidate pairs are found by DuckDB: rows with equal signature hashes are linked as a star to the first of
   them, and the first rows sharing a band key (keys held by one row are dropped by an aggregate first) are
   paired by a hash join. These are `candidate_pairs`'s pairs, found by spilling joins instead of one sort in
   memory.
3. Only the texts of rows in a candidate pair are read again from the store, into DuckDB; the pairs are joined
   with them and verified by exact Jaccard (`verify_exact`) a batch of `VERIFY_PAIRS` at a time.
4. Clusters are the connected components of the verified pairs (in memory: their size is that of the near
   duplicates, not of the selection), kept by the shared keep policy; every decision is then written by one
   DuckDB query, streamed to an events part in batches.

The decisions are `decide_all`'s: the same candidates, verification, components, keep policy and scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from lineage.core.faults import crash_point
from lineage.features.minhash import EMPTY, band_keys, candidate_bands, clusters, signature_hashes, verify_exact
from lineage.filters.bounded import BoundedRun, stage_events
from lineage.filters.near_dedup_steps import kept_by_cluster, scores
from lineage.filters.spill import Spill

if TYPE_CHECKING:
    from lineage.core.selection import Selection
    from lineage.features.cache import FeatureCache
    from lineage.filters.events import Decided

CHUNK_BYTES = 64 << 20  # text hashed per step: batches of the selection are joined up to this
CACHE_PART_ROWS = 250_000  # signatures per cache part (128 MB at 128 values): a part's band index is sorted whole
VERIFY_PAIRS = 4_096  # candidate pairs verified at once (with both texts: ~16 MB of 2 KB documents)
KEEP_COLUMNS = ["sample_id", "origin", "generation", "version", "input_row"]
SELECTED = [*KEEP_COLUMNS, "source", "text"]

SCHEMA = """
CREATE TABLE docs (row UINTEGER, sample_id VARCHAR, origin VARCHAR, generation BIGINT, version BIGINT,
    input_row BIGINT, source VARCHAR, sighash UBIGINT, nonempty BOOLEAN);
CREATE TABLE bands (key UINTEGER, row UINTEGER);
CREATE TABLE texts (row UINTEGER, text VARCHAR);
CREATE TABLE verified (i UINTEGER, j UINTEGER, sim DOUBLE);
"""

# Step 2. `stars`: each row whose signature hash another row shares, with the first row of its group; only the
# first rows' band keys are paired (as `candidate_pairs` bands `sigs[first]`).
PAIRS_SQL = """
CREATE TABLE groups AS
    SELECT sighash, min(row) AS first FROM docs WHERE nonempty GROUP BY sighash HAVING count(*) > 1;
CREATE TABLE stars AS
    SELECT g.first AS i, d.row AS j FROM docs d JOIN groups g USING (sighash) WHERE d.nonempty AND d.row <> g.first;
CREATE TABLE shared AS
    WITH firsts AS (SELECT * FROM bands b WHERE NOT EXISTS (SELECT 1 FROM stars s WHERE s.j = b.row)),
    hot AS (SELECT key FROM firsts GROUP BY key HAVING count(*) > 1)
    SELECT f.key, f.row FROM firsts f SEMI JOIN hot USING (key);
CREATE TABLE pairs AS
    SELECT DISTINCT i, j FROM (
        SELECT a.row AS i, b.row AS j FROM shared a JOIN shared b ON a.key = b.key AND a.row < b.row
        UNION ALL SELECT i, j FROM stars);
DROP TABLE bands; DROP TABLE shared;
"""

DECISIONS_SQL = """
SELECT d.sample_id,
    CASE WHEN m.kept IS NULL OR m.kept = d.row THEN 'keep' ELSE 'drop' END AS decision,
    CASE WHEN m.kept <> d.row THEN m.score END AS score,
    CASE WHEN m.kept <> d.row THEN 'near_duplicate' END AS reason,
    CASE WHEN m.kept <> d.row THEN k.sample_id END AS related_id,
    coalesce(k.sample_id, d.sample_id) AS cluster_id, d.source
FROM docs d LEFT JOIN _members m USING (row) LEFT JOIN docs k ON k.row = m.kept
"""


class Signer(Protocol):
    """What this asks of the filter (`NearDedupFilter`): its params, its signature cache, signatures."""

    @property
    def params(self) -> Any: ...

    def cache(self, store: Any) -> FeatureCache: ...

    def signatures_for(self, features: pa.Table, cache: FeatureCache) -> tuple[np.ndarray, pa.Table]: ...

    def add_to_cache(self, cache: FeatureCache, rows: pa.Table) -> None: ...


def decide(flt: Signer, selection: Selection, run: BoundedRun) -> tuple[Decided, int]:
    """The decisions, and the most bytes spilled to disk at once."""
    spill = Spill(run.store, run.run_id, run.memory_limit, "near-dedup")
    try:
        with spill.errors():
            return _decide(flt, selection, run, spill), spill.peak
    finally:
        spill.close()


def _decide(flt: Signer, selection: Selection, run: BoundedRun, spill: Spill) -> Decided:
    p, con = flt.params, spill.con
    for statement in _statements(SCHEMA):
        con.execute(statement)
    n = _load(flt, selection, run, spill)
    for statement in _statements(PAIRS_SQL):
        con.execute(statement)
        spill.measure()
    if spill.peak:
        crash_point("near_dedup_spilled")  # tests kill the run here, its spill files on disk
    _fetch_texts(selection, con)
    spill.measure()
    for i, j, sim, _ in _verify(con, "pairs", p.ngram, p.threshold):
        _append(con, "verified", pa.table({"i": pa.array(i, pa.uint32()), "j": pa.array(j, pa.uint32()),
                                           "sim": pa.array(sim, pa.float64())}))
        spill.measure()
    members = _members(flt, con)
    con.register("_members", members)
    return _write(con, run, n)


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _append(con: Any, table: str, rows: pa.Table) -> None:
    con.register("_rows", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def _chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    """The batches joined into tables of up to CHUNK_BYTES of text (one batch at least)."""
    held: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        held.append(batch)
        size += batch.nbytes
        if size >= CHUNK_BYTES:
            yield pa.Table.from_batches(held)
            held, size = [], 0
    if held:
        yield pa.Table.from_batches(held)


def _load(flt: Signer, selection: Selection, run: BoundedRun, spill: Spill) -> int:
    """Step 1: signatures (cached or hashed, and cached), band keys and keep columns of every selected sample."""
    p, cache, con = flt.params, flt.cache(run.store), spill.con
    nb, nr = candidate_bands(p.threshold, p.num_perm)
    fresh: list[pa.Table] = []
    done = 0
    for chunk in _chunks(selection.batches(SELECTED, ordered=False)):
        sigs, new = flt.signatures_for(chunk, cache)
        fresh.append(new)
        if sum(t.num_rows for t in fresh) >= CACHE_PART_ROWS:
            flt.add_to_cache(cache, pa.concat_tables(fresh))
            fresh = []
        rows = np.arange(done, done + chunk.num_rows, dtype=np.uint32)
        nonempty = (sigs != EMPTY).any(axis=1)
        docs = chunk.select([*KEEP_COLUMNS, "source"]).add_column(0, "row", pa.array(rows))
        docs = docs.append_column("sighash", pa.array(signature_hashes(sigs), pa.uint64()))
        _append(con, "docs", docs.append_column("nonempty", pa.array(nonempty)))
        keys = band_keys(sigs[nonempty], nb, nr)
        _append(con, "bands", pa.table({"key": keys.ravel(), "row": np.repeat(rows[nonempty], nb)}))
        done += chunk.num_rows
        spill.measure()
        if run.progress:
            run.progress(done, selection.count)
    if fresh:
        flt.add_to_cache(cache, pa.concat_tables(fresh))
    return done


def _fetch_texts(selection: Selection, con: Any) -> None:
    """Step 3's reads: the texts of the rows in a candidate pair (only those), from the store into DuckDB."""
    need = con.sql(
        "SELECT d.row, d.sample_id FROM docs d SEMI JOIN (SELECT i AS row FROM pairs UNION SELECT j FROM pairs) "
        "USING (row)"
    ).to_arrow_table()
    if need.num_rows == 0:
        return
    con.register("_need", need)
    try:
        for batch in selection.texts(need):
            con.register("_texts", pa.Table.from_batches([batch]))
            con.execute("INSERT INTO texts SELECT n.row, t.text FROM _texts t JOIN _need n USING (sample_id)")
            con.unregister("_texts")
    finally:
        con.unregister("_need")


def _verify(
    con: Any, pairs: str, ngram: int, threshold: float
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(i, j, exact Jaccard, k) of the pairs (i, j[, k]) of table `pairs` that reach the threshold, a batch at a
    time: each batch carries both texts of each pair from the `texts` table; a text in several pairs of a batch is
    hashed once. `k` is the pairs' own `k` column when they have one (else i)."""
    has_k = "k" in [c[0] for c in con.sql(f"DESCRIBE {pairs}").fetchall()]
    reader = con.cursor()  # its own connection to the database: the caller inserts while this streams
    query = (
        f"SELECT p.i, p.j, {'p.k' if has_k else 'p.i'} AS k, a.text AS ta, b.text AS tb FROM {pairs} p "
        "JOIN texts a ON a.row = p.i JOIN texts b ON b.row = p.j"
    )
    for batch in reader.sql(query).to_arrow_reader(VERIFY_PAIRS):
        if batch.num_rows == 0:
            continue
        ends = np.concatenate([batch["i"].to_numpy(), batch["j"].to_numpy()]).astype(np.int64)
        rows, first, local = np.unique(ends, return_index=True, return_inverse=True)
        both = pa.concat_arrays([batch["ta"].cast(pa.large_string()), batch["tb"].cast(pa.large_string())])
        local = local.reshape(2, -1).T
        # threshold 0 keeps every pair in its order: the similarity of each, compared here as verify_exact does
        _, sim = verify_exact(local, both.take(pa.array(first)), ngram=ngram, threshold=0.0)
        keep = sim >= threshold
        yield rows[local[keep, 0]], rows[local[keep, 1]], sim[keep], batch["k"].to_numpy()[keep]


def _members(flt: Signer, con: Any) -> pa.Table:
    """Step 4: (row, kept row, score) of every sample in a cluster of two or more, by the shared keep policy."""
    verified = con.sql("SELECT i, j, sim FROM verified").to_arrow_table()
    pairs = np.stack([verified["i"].to_numpy(), verified["j"].to_numpy()], axis=1).astype(np.int64)
    rows = np.unique(pairs)
    local = np.searchsorted(rows, pairs)
    con.register("_rows", pa.table({"row": pa.array(rows, pa.uint32())}))
    try:
        keep = con.sql(f"SELECT {', '.join(KEEP_COLUMNS)} FROM docs SEMI JOIN _rows USING (row) ORDER BY row")
        table = keep.to_arrow_table()
    finally:
        con.unregister("_rows")
    kept = kept_by_cluster(table, clusters(len(rows), local))

    def exact(links: np.ndarray) -> np.ndarray:
        return _similarities(con, rows[links], flt.params.ngram)

    score = scores(exact, kept, local, verified["sim"].to_numpy(), flt.params.ngram)
    return pa.table({"row": pa.array(rows, pa.uint32()), "kept": pa.array(rows[kept], pa.uint32()),
                     "score": pa.array(score)})


def _similarities(con: Any, links: np.ndarray, ngram: int) -> np.ndarray:
    """Exact Jaccard of each (row, row) link (rows whose texts were fetched), in their order."""
    out = np.zeros(len(links))
    table = pa.table({"i": pa.array(links[:, 0], pa.uint32()), "j": pa.array(links[:, 1], pa.uint32()),
                      "k": np.arange(len(links))})
    con.execute("CREATE OR REPLACE TABLE links (i UINTEGER, j UINTEGER, k BIGINT)")
    _append(con, "links", table)
    for _, _, sim, k in _verify(con, "links", ngram, 0.0):
        out[k] = sim
    return out


def _write(con: Any, run: BoundedRun, n: int) -> Decided:
    """Every decision, as a table in DuckDB, staged as an events part for the run to register."""
    con.execute(f"CREATE TABLE decided AS {DECISIONS_SQL}")
    return stage_events(con, run, "decided", n)
