"""Record identity at ingest (store format 2): every record is its own sample.

Runs once over the staged rows, before parents are resolved, in the ingest's own DuckDB connection (`staged`
holds the extracted rows, `existing` is a view of the store's samples). It

1. gives the n-th repeat of an id-less text in this input its own id (`lineage.core.ids.REPEAT_ID_SQL`);
2. finds the rows already in the store (`present`: input_row -> the stored sample_id), by sample id, or for
   samples ingested under format 1 (their id came from source + text) by source + external id + text;
3. refuses a record whose external id names another text, in the store or earlier in this input: samples are
   immutable, so the same id cannot mean two records.
"""

from __future__ import annotations

import duckdb

from lineage.core.ids import REPEAT_ID_SQL
from lineage.errors import Reject
from lineage.ingest.lookup import Segments, lookup

RENUMBER_SQL = f"""
CREATE OR REPLACE TEMP TABLE renumbered AS
    SELECT input_row, {REPEAT_ID_SQL.format(sample_id="sample_id", ordinal="ordinal")} AS sample_id FROM (
        SELECT input_row, sample_id, row_number() OVER (PARTITION BY sample_id ORDER BY input_row) AS ordinal
        FROM staged
        WHERE len(errors) = 0 AND external_id IS NULL AND sample_id IN (
            SELECT sample_id FROM staged WHERE len(errors) = 0 AND external_id IS NULL
            GROUP BY sample_id HAVING count(*) > 1)
    ) WHERE ordinal > 1;
UPDATE staged SET sample_id = r.sample_id FROM renumbered r WHERE staged.input_row = r.input_row;
"""

# Stored samples a row matches (`by_id`: the stored samples with one of the input's ids): by sample id (format 2
# ids, and format 1 ids of id-less records), and, for samples
# stored up to $legacy (the version a format-1 store was migrated at), by source + external id.
MATCHES_SQL = """
CREATE OR REPLACE TEMP TABLE matches AS
    SELECT c.input_row, e.sample_id, e.content_hash = c.content_hash AS same, e.input_uri, e.input_row AS line
    FROM staged c JOIN by_id e USING (sample_id) WHERE len(c.errors) = 0
    UNION ALL
    SELECT c.input_row, e.sample_id, e.content_hash = c.content_hash, e.input_uri, e.input_row
    FROM staged c JOIN existing e ON e.source = c.source AND e.external_id = c.external_id
    WHERE len(c.errors) = 0 AND c.external_id IS NOT NULL AND e.version <= $legacy
"""
PRESENT_SQL = """
CREATE OR REPLACE TEMP TABLE present AS
    SELECT input_row, min(sample_id) AS sample_id FROM matches WHERE same GROUP BY input_row
"""

CONFLICTS_SQL = """
SELECT c.input_row, 'id `' || c.external_id || '` is already sample ' || left(any_value(m.sample_id), 12)
    || ' (line ' || any_value(m.line) || ' of ' || any_value(m.input_uri) || ') with other text; '
    || 'samples are immutable: give this record an id of its own'
FROM matches m JOIN staged c USING (input_row)
WHERE c.external_id IS NOT NULL AND m.input_row NOT IN (SELECT input_row FROM present)
GROUP BY c.input_row, c.external_id
UNION ALL
SELECT c.input_row, 'id `' || c.external_id || '` is already line ' || f.first_row
    || ' of this input, with other text; samples are immutable: give this record an id of its own'
FROM staged c JOIN (
    -- Only ids given more than once (a plain count, cheap) are compared by text (a distinct count, 5x dearer).
    SELECT sample_id, arg_min(input_row, input_row) AS first_row, arg_min(content_hash, input_row) AS first_hash
    FROM staged WHERE len(errors) = 0 AND external_id IS NOT NULL AND sample_id IN (
        SELECT sample_id FROM staged WHERE len(errors) = 0 AND external_id IS NOT NULL
        GROUP BY sample_id HAVING count(*) > 1)
    GROUP BY sample_id HAVING count(DISTINCT content_hash) > 1
) f USING (sample_id)
WHERE len(c.errors) = 0 AND c.content_hash <> f.first_hash
ORDER BY 1
"""


def identify(
    con: duckdb.DuckDBPyConnection, *, id_field: str, legacy_version: int | None, segments: Segments | None = None
) -> list[Reject]:
    """Renumber repeats, fill `renumbered` and `present`; return the rows whose id names other text."""
    con.execute(RENUMBER_SQL)
    # Only the stored samples this input's ids name are read, not every sample (see `lineage.ingest.lookup`).
    lookup(con, "by_id", column="sample_id", keys_sql="SELECT sample_id FROM staged WHERE len(errors) = 0",
           columns="sample_id, content_hash, input_uri, input_row", segments=segments)
    if legacy_version is None:  # no format-1 samples: the second half would open every segment to find none
        con.execute(MATCHES_SQL.split("    UNION ALL")[0])
    else:
        con.execute(MATCHES_SQL, {"legacy": legacy_version})
    con.execute(PRESENT_SQL)
    rows = con.execute(CONFLICTS_SQL).fetchall()
    return [Reject(line, id_field, reason) for line, reason in rows]
