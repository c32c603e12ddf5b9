"""contamination: drop samples that leak protected (held-out) data into training.

Three ways a sample is contaminated, each its own reason, with the held-out item as related_id:
* `contaminated_exact`: same normalised text (content_hash) as a protected sample;
* `contaminated_near`: MinHash-estimated Jaccard >= threshold with a protected sample;
* `contaminated_lineage`: a descendant of a protected sample or of a contaminated one (a paraphrase
  of a test question is still the test question).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from lineage.features.minhash import jaccard, match
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, register
from lineage.filters.near_dedup import NearDedupFilter, NearDedupParams
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.filters.incremental import Prior
    from lineage.store import Store

PROTECTED_SQL = """
SELECT DISTINCT s.sample_id, s.text, s.content_hash, s.origin, s.generation, s.version, s.input_row
FROM set_members m JOIN sets t ON t.name = m.set_name JOIN samples s USING (sample_id)
WHERE t.protected AND (? IS NULL OR list_contains(?, t.name))
ORDER BY s.sample_id
"""

# Descendants of every seed (protected or contaminated), each with the held-out item it traces back to.
LINEAGE_SQL = """
WITH RECURSIVE walk(sample_id, root) AS (
    SELECT sample_id, root FROM _seeds
    UNION
    SELECT e.child_id, w.root FROM lineage_edges e JOIN walk w ON e.parent_id = w.sample_id
)
SELECT sample_id, min(root) AS root FROM walk WHERE sample_id NOT IN (SELECT sample_id FROM _seeds) GROUP BY 1
"""


class ContaminationParams(FilterParams):
    sets: str | None = Field(None, description="comma-separated protected sets; default: all of them")
    ngram: int = Field(5, ge=1, le=64)
    num_perm: int = Field(128, ge=2, le=4096)
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="estimated Jaccard that counts as a leak")
    seed: int = Field(1, ge=0, lt=2**32)

    def set_names(self) -> list[str] | None:
        return [s.strip() for s in self.sets.split(",") if s.strip()] if self.sets else None


@register
class ContaminationFilter(SelectionFilter):
    """Drop exact, near-duplicate and lineage leaks of protected (held-out) sets."""

    name = "contamination"
    Params = ContaminationParams
    columns = ("text", "content_hash")
    params: ContaminationParams

    def context_key(self, store: Store) -> str:
        names = self.params.set_names()
        rows = store.sql(PROTECTED_SQL.replace("s.text, ", ""), params=[names, names])["sample_id"].to_pylist()
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    @staticmethod
    def context_changed_since(con: Any, version: int) -> bool:
        """Protected sets that grew after `version` may make any sample a leak: decide everything again."""
        found = con.execute(
            "SELECT count(*) FROM set_members m JOIN sets s ON s.name = m.set_name "
            "WHERE s.protected AND (m.version > ? OR s.version > ?)",
            [version, version],
        ).fetchall()[0][0]
        return bool(found)

    def decide_new(self, features: pa.Table, prior: Prior, context: SelectionContext) -> pa.Table:
        """New samples only, with the earlier leaks as lineage seeds: a child of an old leak is a leak."""
        leaks = prior.table.filter(pc.equal(prior.table["decision"], "drop"))
        seeds = dict(zip(leaks["sample_id"].to_pylist(), leaks["related_id"].to_pylist(), strict=True))
        return self.decide_all(features, context, seeds=seeds)

    def decide_all(
        self, features: pa.Table, context: SelectionContext, *, seeds: dict[str, str] | None = None
    ) -> pa.Table:
        names = self.params.set_names()
        protected = context.store.sql(PROTECTED_SQL, params=[names, names])
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        related, reason, score = self._direct(features, protected, context.store)
        self._lineage(features, protected, related, reason, context.store, seeds or {})
        return _decisions(features["sample_id"], related, reason, score, set(protected["sample_id"].to_pylist()))

    def _direct(self, features: pa.Table, protected: pa.Table, store: Store) -> tuple[list, list, list]:
        n = features.num_rows
        related: list[str | None] = [None] * n
        reason: list[str | None] = [None] * n
        score: list[float | None] = [None] * n
        if protected.num_rows == 0:
            return related, reason, score
        p = self.params
        dedup = NearDedupFilter(NearDedupParams(ngram=p.ngram, num_perm=p.num_perm, threshold=p.threshold, seed=p.seed))
        sig_sel, sig_prot = dedup.cached_signatures(features, store), dedup.cached_signatures(protected, store)
        prot_ids, prot_ids_by_hash = protected["sample_id"].to_pylist(), {}
        for pid, h in zip(prot_ids, protected["content_hash"].to_pylist(), strict=True):
            prot_ids_by_hash.setdefault(h, pid)
        pairs = match(sig_sel, sig_prot, threshold=p.threshold)
        best = _best_match(pairs, jaccard(sig_sel[pairs[:, 0]], sig_prot[pairs[:, 1]]) if len(pairs) else np.array([]))
        for i, h in enumerate(features["content_hash"].to_pylist()):
            if h in prot_ids_by_hash:
                related[i], reason[i], score[i] = prot_ids_by_hash[h], "contaminated_exact", 1.0
            elif i in best:
                j, sim = best[i]
                related[i], reason[i], score[i] = prot_ids[j], "contaminated_near", float(sim)
        return related, reason, score

    def _lineage(
        self, features: pa.Table, protected: pa.Table, related: list, reason: list, store: Store, earlier: dict
    ) -> None:
        ids = features["sample_id"].to_pylist()
        seeds = {pid: pid for pid in protected["sample_id"].to_pylist()} | earlier
        seeds |= {ids[i]: related[i] for i in range(len(ids)) if related[i] is not None}
        if not seeds:
            return
        with store.reader() as con:
            con.register("_seeds", pa.table({"sample_id": list(seeds), "root": list(seeds.values())}))
            rows = dict(con.execute(LINEAGE_SQL).fetchall())
        for i, sample_id in enumerate(ids):
            if reason[i] is None and sample_id in rows:
                related[i], reason[i] = rows[sample_id], "contaminated_lineage"


def _best_match(pairs: np.ndarray, sims: np.ndarray) -> dict[int, tuple[int, float]]:
    best: dict[int, tuple[int, float]] = {}
    for (i, j), s in zip(pairs.tolist(), sims.tolist(), strict=True):
        if i not in best or s > best[i][1]:
            best[i] = (j, s)
    return best


def _decisions(ids: pa.ChunkedArray, related: list, reason: list, score: list, protected: set[str]) -> pa.Table:
    # Protected samples are the reference, not leaks: they are kept here (builds exclude them anyway).
    drop = [r is not None and sid not in protected for sid, r in zip(ids.to_pylist(), reason, strict=True)]
    return pa.table(
        {
            "sample_id": ids,
            "decision": ["drop" if d else "keep" for d in drop],
            "score": [s if d else None for s, d in zip(score, drop, strict=True)],
            "reason": [r if d else None for r, d in zip(reason, drop, strict=True)],
            "related_id": [r if d else None for r, d in zip(related, drop, strict=True)],
            "cluster_id": [r if d else None for r, d in zip(related, drop, strict=True)],
        },
        schema=DECISIONS,
    )


