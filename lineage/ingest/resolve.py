"""Resolve parent references to sample ids and compute generations, over the staged rows.

Runs in the ingest's own DuckDB connection, where `staged` holds the extracted rows, `existing`
is a view of the store's samples, `present` the rows already stored (see `lineage.ingest.identity`)
and `model_gen(name, generation)` gives, for registered models used as
generators, 1 + the deepest generation of their training build: their outputs are at least that deep
(parents, when deeper, still win). Everything here is set-based SQL; only the generation fixpoint
loops, once per level of parent depth inside the batch.
"""

from __future__ import annotations

import duckdb

from lineage.errors import Reject
from lineage.ingest.lookup import Segments, lookup_keys

SETUP_SQL = """
CREATE OR REPLACE TEMP VIEW cand AS
    SELECT input_row, sample_id, content_hash, external_id, source, origin, generator, given_generation, parent_refs,
           generation AS draft_generation
    FROM staged WHERE len(errors) = 0 AND input_row NOT IN (SELECT input_row FROM excluded);
-- Rows repeating the sample id (so the id and text) of an earlier row, which are not stored (a hash aggregate).
CREATE OR REPLACE TEMP TABLE repeats AS
    SELECT c.input_row FROM cand c
    JOIN (SELECT sample_id, min(input_row) AS first_row FROM cand GROUP BY sample_id HAVING count(*) > 1) d
        USING (sample_id)
    WHERE c.input_row > d.first_row;
CREATE OR REPLACE TEMP TABLE refs AS SELECT DISTINCT unnest(parent_refs) AS ref FROM cand;
CREATE OR REPLACE TEMP TABLE nodes AS
    SELECT c.input_row, c.sample_id, c.content_hash, c.external_id, c.source, c.origin, c.given_generation,
           c.parent_refs, c.draft_generation, g.generation AS model_generation
    FROM cand c LEFT JOIN model_gen g ON c.origin = 'synthetic' AND g.name = c.generator
    WHERE c.input_row NOT IN (SELECT input_row FROM repeats) AND c.input_row NOT IN (SELECT input_row FROM present);
-- Samples a reference may name: in the store, or new in this input. Only those some reference matches
-- take part in resolving, so only those are kept. One semi join per way of naming, not a disjunction of IN
-- subqueries: DuckDB holds one hash table of the references at a time, so memory follows the input.
CREATE OR REPLACE TEMP TABLE named AS
    SELECT sample_id, external_id, source, generation FROM {existing}
    UNION ALL
    SELECT sample_id, external_id, source, NULL FROM nodes;
CREATE OR REPLACE TEMP TABLE known AS
    SELECT * FROM named SEMI JOIN refs ON refs.ref = named.sample_id
    UNION SELECT * FROM named SEMI JOIN refs ON refs.ref = named.external_id
    UNION SELECT * FROM named SEMI JOIN refs ON refs.ref = named.source || ':' || named.external_id;
DROP TABLE named;
CREATE OR REPLACE TEMP TABLE resolved AS
    WITH matches AS (
        SELECT r.ref, k.sample_id, k.source, 1 AS prio FROM refs r JOIN known k ON k.sample_id = r.ref
        UNION ALL
        SELECT r.ref, k.sample_id, k.source, 2 FROM refs r JOIN known k ON k.source || ':' || k.external_id = r.ref
        UNION ALL
        SELECT r.ref, k.sample_id, k.source, 3 FROM refs r JOIN known k ON k.external_id = r.ref
    ), best AS (SELECT * FROM matches QUALIFY prio = min(prio) OVER (PARTITION BY ref))
    SELECT ref, list(DISTINCT sample_id ORDER BY sample_id) AS ids, list(DISTINCT source ORDER BY source) AS sources
    FROM best GROUP BY ref;
CREATE OR REPLACE TEMP TABLE node_refs AS
    WITH u AS (
        SELECT input_row, sample_id, model_generation, unnest(parent_refs) AS ref,
            generate_subscripts(parent_refs, 1) AS pos
        FROM nodes WHERE len(parent_refs) > 0
    )
    SELECT u.input_row, u.sample_id, u.ref, u.pos, r.ids, u.model_generation
    FROM u LEFT JOIN resolved r ON r.ref = u.ref;
CREATE OR REPLACE TEMP TABLE edges AS
    SELECT sample_id AS child, ids[1] AS parent, model_generation FROM node_refs WHERE len(ids) = 1;
CREATE OR REPLACE TEMP TABLE gen AS
    SELECT sample_id, generation FROM known WHERE generation IS NOT NULL
    UNION ALL SELECT sample_id, 0 FROM nodes WHERE origin = 'real'
    UNION ALL SELECT sample_id, coalesce(model_generation, given_generation, 1) FROM nodes n
        WHERE origin = 'synthetic' AND sample_id NOT IN (SELECT child FROM edges);
"""

STEP_SQL = """
INSERT INTO gen
    SELECT e.child, greatest(1 + max(g.generation), any_value(e.model_generation))
    FROM (FROM edges ANTI JOIN gen ON gen.sample_id = edges.child) e LEFT JOIN gen g ON g.sample_id = e.parent
    GROUP BY e.child HAVING count(g.generation) = count(*)
"""

ERRORS_SQL = """
SELECT n.input_row, $field AS field,
    'parent `' || n.ref || '` is ambiguous: an external id in sources ' || array_to_string(r.sources, ', ')
    || '; write it as `SOURCE:' || n.ref || '`' AS reason
FROM node_refs n JOIN resolved r USING (ref) WHERE len(r.ids) > 1
UNION ALL
SELECT input_row, $field, 'unknown parent `' || ref || '`' FROM node_refs WHERE ids IS NULL AND NOT $allow_missing
UNION ALL
-- Only a child in `edges` can be left without a generation: SETUP gives every other node one.
SELECT n.input_row, $field, 'parent cycle: this sample is its own ancestor'
FROM nodes n WHERE sample_id IN (SELECT child FROM edges) AND sample_id NOT IN (SELECT sample_id FROM gen)
UNION ALL
-- Without parents or a registered generator, a synthetic node's generation is the one given: no contradiction.
SELECT n.input_row, 'generation',
    'generation ' || n.given_generation || CASE WHEN n.model_generation IS NULL
        THEN ' contradicts its parents (1 + max parent generation = ' || g.generation || ')'
        ELSE ' contradicts its parents and generator (max of 1 + deepest parent and 1 + deepest sample the '
             || 'generator was trained on = ' || g.generation || ')' END
FROM nodes n JOIN gen g USING (sample_id)
WHERE n.origin = 'synthetic' AND n.given_generation IS NOT NULL AND n.given_generation <> g.generation
    AND (n.model_generation IS NOT NULL OR len(n.parent_refs) > 0)
ORDER BY 1
"""

# Each node's parents in their order, resolved. An ordered list aggregate holds every group's values at once, so it
# runs over one range of input rows at a time (PARENTS_ROWS): memory follows that range, not the input.
PARENTS_SQL = """
INSERT INTO node_parents
    SELECT input_row, list(CASE WHEN len(ids) = 1 THEN ids[1] ELSE ref END ORDER BY pos) AS parent_ids
    FROM node_refs WHERE input_row >= $lo AND input_row < $hi GROUP BY input_row
"""
PARENTS_ROWS = 131_072


def resolve(
    con: duckdb.DuckDBPyConnection, *, field: str, allow_missing: bool, segments: Segments | None = None
) -> list[Reject]:
    """Fill `nodes`, `gen` and `node_parents`; return rows whose parents or generation are wrong."""
    # Without parent references nothing in the store needs reading here: cost follows the input, not the store.
    refs = [r[0] for r in con.execute(
        "SELECT DISTINCT ref FROM (SELECT unnest(parent_refs) AS ref FROM staged WHERE len(errors) = 0)"
    ).fetchall()]
    # A reference names a sample id, an external id, or SOURCE:ID (the external id follows some `:`): only the
    # stored samples with one of those ids are read (see `lineage.ingest.lookup`).
    if not refs:
        return _resolve_without_refs(con, field)
    external = sorted({ref[i + 1:] for ref in refs for i, ch in enumerate(ref) if ch == ":"} | set(refs))
    lookup_keys(con, "by_ref", {"sample_id": refs, "external_id": external if refs else []},
                columns="sample_id, external_id, source, generation", segments=segments)
    con.execute(SETUP_SQL.replace("{existing}", "(SELECT DISTINCT * FROM by_ref)"))
    if con.execute("SELECT count(*) FROM edges").fetchall()[0][0]:
        while con.execute(STEP_SQL).fetchall()[0][0] > 0:
            pass
    rows = con.execute(ERRORS_SQL, {"allow_missing": allow_missing, "field": field}).fetchall()
    con.execute("CREATE OR REPLACE TEMP TABLE node_parents (input_row BIGINT, parent_ids VARCHAR[])")
    lo, hi = con.execute("SELECT coalesce(min(input_row), 0), coalesce(max(input_row), -1) FROM node_refs").fetchone()
    for start in range(lo, hi + 1, PARENTS_ROWS):
        con.execute(PARENTS_SQL, {"lo": start, "hi": start + PARENTS_ROWS})
    return [Reject(line, field, reason) for line, field, reason in rows]


# The same tables when no row names a parent (the usual small ingest): nothing to look up or walk, so a few
# statements instead of a score (each costs DuckDB ~1 ms to plan, whatever the rows).
NO_REFS_SQL = SETUP_SQL.split("-- Samples a reference may name")[0] + """
CREATE OR REPLACE TEMP TABLE resolved (ref VARCHAR, ids VARCHAR[], sources VARCHAR[]);
CREATE OR REPLACE TEMP TABLE node_refs (input_row BIGINT, sample_id VARCHAR, ref VARCHAR, pos BIGINT, ids VARCHAR[],
    model_generation BIGINT);
CREATE OR REPLACE TEMP TABLE edges (child VARCHAR, parent VARCHAR, model_generation BIGINT);
CREATE OR REPLACE TEMP TABLE gen AS
    SELECT sample_id, CASE WHEN origin = 'real' THEN 0 ELSE coalesce(model_generation, given_generation, 1) END
        AS generation
    FROM nodes WHERE origin IN ('real', 'synthetic');
CREATE OR REPLACE TEMP TABLE node_parents (input_row BIGINT, parent_ids VARCHAR[]);
"""
# ERRORS_SQL's last part: the only one that can find anything without parents.
NO_REFS_ERRORS_SQL = "SELECT" + ERRORS_SQL.split("UNION ALL\n-- Without parents")[1].split("SELECT", 1)[1]


def _resolve_without_refs(con: duckdb.DuckDBPyConnection, field: str) -> list[Reject]:
    con.execute(NO_REFS_SQL)
    rows = con.execute(NO_REFS_ERRORS_SQL).fetchall()
    return [Reject(line, field, reason) for line, field, reason in rows]
