"""Contamination re-check of a build's members against protected sets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from lineage.store import Store

CHECK_SQL = """
WITH protected AS (
    SELECT DISTINCT m.sample_id FROM set_members m JOIN sets s ON s.name = m.set_name
    WHERE s.protected AND ($names IS NULL OR list_contains($names, s.name))
), members AS (SELECT sample_id FROM _members),
exact AS (
    SELECT count(*) AS n FROM members JOIN samples s USING (sample_id)
    WHERE s.content_hash IN (SELECT content_hash FROM samples WHERE sample_id IN (SELECT sample_id FROM protected))
), lineage AS (
    WITH RECURSIVE t(sample_id) AS (
        SELECT sample_id FROM protected UNION SELECT e.child_id FROM lineage_edges e JOIN t ON e.parent_id = t.sample_id
    ) SELECT count(*) AS n FROM members WHERE sample_id IN (SELECT sample_id FROM t)
)
SELECT (SELECT count(*) FROM protected) AS protected_samples, (SELECT n FROM exact) AS exact_matches,
       (SELECT n FROM lineage) AS lineage_matches
"""


def contamination_check(store: Store, names: list[str] | None, member_ids: pa.Array) -> dict[str, Any]:
    with store.reader() as con:
        con.register("_members", pa.table({"sample_id": member_ids}))
        row = con.sql(CHECK_SQL, params={"names": names}).to_arrow_table().to_pylist()[0]
        sets = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sets WHERE protected AND (? IS NULL OR list_contains(?, name)) ORDER BY 1",
                [names, names],
            ).fetchall()
        ]
    return {"protected_sets": sets, **row}
