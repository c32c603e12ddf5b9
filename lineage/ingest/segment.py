"""Turn the staged draft into the batch's samples segment: as it is when resolution changed nothing, else
rewritten with the resolved ids, generations and parents, and without the rows that are not stored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from lineage.ingest.staging import BLOOM_COLUMNS, UNIQUE_COLUMNS, Staged
from lineage.ingest.writer import BackgroundWriter
from lineage.schemas import SAMPLES, select_cast_sql

if TYPE_CHECKING:
    from lineage.core.handle import Transaction

# Stored rows whose generation or parents differ from the draft's. Only a row with parent references or a
# registered model as generator can: any other row's generation is 0 (real) or the one given (else 1), as
# drafted, and its parents are none, as drafted.
CHANGED_SQL = """
SELECT (
    SELECT count(*) FROM nodes n JOIN gen g USING (sample_id)
    WHERE (n.model_generation IS NOT NULL OR len(n.parent_refs) > 0)
        AND g.generation IS DISTINCT FROM n.draft_generation
) + (
    -- A reference resolved to another id than it reads (an external id, SOURCE:ID): one join less than comparing
    -- the lists, so one hash table at a time.
    SELECT count(*) FROM node_refs WHERE len(ids) = 1 AND ids[1] <> ref
)
"""

# The stored rows in ranges of `$rows`, one per row group; each range is resolved and rewritten on its own, so the
# joins with the resolution's tables hold one range's rows at a time.
FINAL_SQL = """
CREATE OR REPLACE TEMP TABLE final AS
SELECT input_row, (row_number() OVER (ORDER BY input_row) - 1) // $rows AS part FROM nodes
"""

REWRITE_SQL = """
SELECT {casts} FROM (
    SELECT d.* REPLACE (f.sample_id AS sample_id, f.generation AS generation, f.parent_ids AS parent_ids)
    FROM read_parquet($draft) d JOIN (
        SELECT n.input_row, n.sample_id, g.generation, coalesce(p.parent_ids, []) AS parent_ids
        FROM (FROM nodes WHERE input_row BETWEEN $lo AND $hi) n JOIN gen g USING (sample_id)
        LEFT JOIN (FROM node_parents WHERE input_row BETWEEN $lo AND $hi) p USING (input_row)
    ) f USING (input_row)
    WHERE d.input_row BETWEEN $lo AND $hi
) ORDER BY input_row
"""


def write_samples(
    con: duckdb.DuckDBPyConnection, txn: Transaction, batch_id: str, draft: Path, staged: Staged, stored: int
) -> None:
    """Register the segment of the `stored` rows in `nodes` (at least one) with the transaction."""
    changed = con.execute(CHANGED_SQL).fetchall()[0][0]
    # Repeats of an id-less text got their own ids after the draft was written (`lineage.ingest.identity`).
    changed += con.execute("SELECT count(*) FROM renumbered").fetchall()[0][0]
    if staged.draft_in_order and changed == 0 and stored == staged.draft_rows:
        txn.write_segment("samples", batch_id, lambda tmp: os.replace(draft, tmp))
    else:
        txn.write_segment("samples", batch_id, lambda tmp: _rewrite(con, draft, tmp, staged.batch_rows))


def _rewrite(con: duckdb.DuckDBPyConnection, draft: Path, path: Path, batch_rows: int) -> None:
    """The stored rows of the draft, resolved, in input order: one range of a row group's rows at a time, so
    only that range is ever sorted in memory."""
    con.execute(FINAL_SQL, {"rows": batch_rows})
    parts = con.execute("SELECT min(input_row), max(input_row) FROM final GROUP BY part ORDER BY part").fetchall()
    sql = REWRITE_SQL.format(casts=select_cast_sql(SAMPLES))
    with BackgroundWriter(
        path, SAMPLES, row_group_rows=batch_rows, unique=UNIQUE_COLUMNS, bloom=BLOOM_COLUMNS
    ) as writer:
        for lo, hi in parts:
            params = {"draft": str(draft), "lo": lo, "hi": hi}
            for batch in con.sql(sql, params=params).to_arrow_reader(batch_rows):
                writer.write(batch)
