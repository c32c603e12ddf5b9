"""contamination: drop samples that leak protected (held-out) data into training.

Four ways a sample is contaminated, each its own reason, with the held-out item as related_id:
* `contaminated_exact`: the same text as a protected item: the same content_hash, or the same normalised
  words (case, punctuation, whitespace and template markup ignored; `lineage.features.containment`);
* `contaminated_near`: an item found inside the sample (below) whose whole text is a near duplicate of it
  too: exact Jaccard of word `ngram`-shingle sets >= `threshold`;
* `contaminated_contained:chars=S-E`: at least `contained` of the item's words found, in order, inside
  the sample's characters S to E (an item pasted into a longer document, a chat turn, an instruction
  template, lower-cased, cut to its question, lightly edited); the score is the share found;
* `contaminated_lineage`: a descendant of a protected sample or of a contaminated one (a paraphrase
  of a test question is still the test question).

`detect` is the one detection: the filter and every build's re-check of its members call it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from lineage.core.edges import Graph, reach
from lineage.errors import UsageError
from lineage.features import containment
from lineage.features.minhash import verify_exact
from lineage.filters.base import FilterParams, SelectionContext, SelectionFilter, register
from lineage.filters.bounded import BoundedRun, stage_stream
from lineage.schemas import DECISIONS

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore
    from lineage.core.selection import Selection
    from lineage.filters.events import Decided
    from lineage.filters.incremental import Prior

PROTECTED_SQL = """
SELECT s.sample_id, s.text, s.content_hash, s.origin, s.generation, s.version, s.input_row
FROM protected_samples(?) JOIN samples s USING (sample_id)
ORDER BY s.sample_id
"""


# A leak found by detection or lineage: the sample, the protected item, the reason, the share found.
FOUND = pa.schema(
    [("sample_id", pa.string()), ("related_id", pa.string()), ("reason", pa.string()), ("score", pa.float64())]
)


class ContaminationParams(FilterParams):
    sets: str | None = Field(None, description="comma-separated protected sets; default: all of them")
    contained: float = Field(
        0.5, gt=0.0, le=1.0, description="share of a protected item's words found inside a sample that is a leak"
    )
    contain_ngram: int = Field(8, ge=2, le=64, description="word n-grams that find an item inside a sample")
    min_words: int = Field(
        8, ge=1, le=10_000, description="items with fewer normalised words are matched as whole texts only"
    )
    ngram: int = Field(5, ge=1, le=64, description="shingle size of the near-duplicate Jaccard")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="exact Jaccard that makes a found item a near duplicate")

    def set_names(self) -> list[str] | None:
        return [s.strip() for s in self.sets.split(",") if s.strip()] if self.sets else None


@dataclass(frozen=True)
class Leak:
    """One sample leaking one protected item."""

    row: int  # the sample's row in the texts given to `detect`
    item_id: str  # the protected sample
    reason: str
    score: float
    span: tuple[int, int] | None  # characters of the sample's text that hold the item (containment)

    def describe(self) -> str:
        share = (
            f"{self.score:.0%} of the item"
            if self.reason.startswith("contaminated_contained")
            else (f"score {self.score:.2f}")
        )
        return f"{self.reason.split(':')[0]}, {share}" + (f", chars {self.span[0]}-{self.span[1]}" if self.span else "")


def check_sets(store: StoreCore, names: list[str]) -> None:
    """Each of `names` is a protected set. A misspelt name once checked against nothing: every sample kept, and
    the run's decisions replaced the earlier drops."""
    rows = store.query("SELECT name, protected FROM sets WHERE name IN (SELECT unnest(?::VARCHAR[]))", params=[names])
    found = dict(zip(rows["name"].to_pylist(), rows["protected"].to_pylist(), strict=True))
    for name in names:
        if name not in found:
            known = store.query("SELECT name FROM sets WHERE protected ORDER BY name")["name"].to_pylist()
            choose = f"protected sets: {', '.join(known)}" if known else "the store has no protected set"
            raise UsageError("sets", name, message=f"sets=: no set `{name}` ({choose})")
        if not found[name]:
            raise UsageError("sets", name, message=f"sets=: set `{name}` is not protected; contamination checks "
                             "protected sets only (`lineage set create NAME --protected` makes one)")


def protected_items(store: StoreCore, names: list[str] | None) -> pa.Table:
    """sample_id, text, content_hash of every protected sample (of `names`, default: every protected set)."""
    return store.query(PROTECTED_SQL, params=[names])


def detect(
    protected: pa.Table,
    texts: pa.Array | pa.ChunkedArray,
    hashes: pa.Array | pa.ChunkedArray,
    params: ContaminationParams,
    *,
    index: containment.Index | None = None,
) -> dict[int, Leak]:
    """The best leak of every text that leaks (exact, near or contained; lineage is the caller's). `index`:
    the protected items' `build_index(protected["text"], ...)` with `params`, when the caller has it already."""
    if protected.num_rows == 0 or len(texts) == 0:
        return {}
    prot_ids = protected["sample_id"].to_pylist()
    # The first protected item of each content hash (index_in finds the first), like a dict filled in order.
    same = pc.fill_null(pc.index_in(hashes, value_set=protected["content_hash"]), -1).to_numpy()
    out: dict[int, Leak] = {}
    for i in np.flatnonzero(same >= 0).tolist():
        out[i] = Leak(i, prot_ids[same[i]], "contaminated_exact", 1.0, None)
    index = index if index is not None else build_index(protected, params)
    found = [f for f in containment.scan(index, texts, threshold=params.contained) if f.row not in out]
    best: dict[int, containment.Found] = {}
    for f in found:  # the scan lists each text's best item first
        best.setdefault(f.row, f)
    near = _near(best, texts, protected["text"], params)
    for row, f in best.items():
        if f.kind == "exact":
            out[row] = Leak(row, prot_ids[f.item], "contaminated_exact", 1.0, None)
        elif row in near:
            out[row] = Leak(row, prot_ids[f.item], "contaminated_near", near[row], None)
        else:
            text = texts[row].as_py()
            span = containment.char_span(text, f.start, f.end)
            out[row] = Leak(row, prot_ids[f.item], f"contaminated_contained:chars={span[0]}-{span[1]}", f.score, span)
    return out


def build_index(protected: pa.Table, params: ContaminationParams) -> containment.Index:
    return containment.build_index(protected["text"], ngram=params.contain_ngram, min_words=params.min_words)


def found_table(ids: pa.Array | pa.ChunkedArray, leaks: dict[int, Leak]) -> pa.Table:
    """The leaking rows of `ids` as FOUND rows."""
    rows = sorted(leaks)
    return pa.table(
        {
            "sample_id": ids.take(pa.array(rows, pa.int64())),
            "related_id": [leaks[r].item_id for r in rows],
            "reason": [leaks[r].reason for r in rows],
            "score": [leaks[r].score for r in rows],
        },
        schema=FOUND,
    )


def with_lineage(store: StoreCore, found: pa.Table, protected: pa.Table, earlier: dict[str, str]) -> pa.Table:
    """`found` and every descendant of a protected sample, of a found leak or of an `earlier` one (a paraphrase
    of a test question is still the test question), as `contaminated_lineage` of the item it traces back to."""
    seeds = {pid: pid for pid in protected["sample_id"].to_pylist()} | earlier
    seeds |= dict(zip(found["sample_id"].to_pylist(), found["related_id"].to_pylist(), strict=True))
    if not seeds:
        return found
    with store.reader(views=set(Graph.VIEWS)) as con:
        rows = descendants(Graph(store, con), seeds)  # seeds are never their own descendants: no sample is in both
    lineage = pa.table(
        {
            "sample_id": list(rows),
            "related_id": list(rows.values()),
            "reason": ["contaminated_lineage"] * len(rows),
            "score": pa.nulls(len(rows), pa.float64()),
        },
        schema=FOUND,
    )
    return pa.concat_tables([found, lineage])


def decisions(ids: pa.Array | pa.ChunkedArray, found: pa.Table, protected: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Every sample of `ids`: dropped with its FOUND row when it has one, else kept. Protected samples are the
    reference, not leaks: they are kept here (builds exclude them anyway)."""
    at = pc.index_in(ids, value_set=found["sample_id"])
    drop = pc.and_(pc.is_valid(at), pc.invert(pc.is_in(ids, value_set=protected)))
    related = pc.if_else(drop, found["related_id"].take(at), None)
    return pa.table(
        {
            "sample_id": ids,
            "decision": pc.if_else(drop, "drop", "keep"),
            "score": pc.if_else(drop, found["score"].take(at), None),
            "reason": pc.if_else(drop, found["reason"].take(at), None),
            "related_id": related,
            "cluster_id": related,
        },
        schema=DECISIONS,
    )


def _near(best: dict[int, containment.Found], texts: Any, items: Any, params: ContaminationParams) -> dict[int, float]:
    """Jaccard of the found pairs whose whole texts are near duplicates."""
    rows = sorted(row for row, f in best.items() if f.kind == "contained")
    if not rows:
        return {}
    # The few found texts by themselves: `take` on a selection of many chunks would copy all of them.
    found = pa.array([texts[r].as_py() for r in rows], pa.string())
    pairs = np.array([(i, best[r].item) for i, r in enumerate(rows)], np.int64)
    kept, sims = verify_exact(pairs, found, items, ngram=params.ngram, threshold=params.threshold)
    return {rows[i]: round(float(s), 4) for (i, _), s in zip(kept.tolist(), sims.tolist(), strict=True)}


@register
class ContaminationFilter(SelectionFilter):
    """Drop exact, near-duplicate, contained and lineage leaks of protected (held-out) sets."""

    name = "contamination"
    version = "2"
    Params = ContaminationParams
    columns = ("text", "content_hash")
    params: ContaminationParams

    def context_key(self, store: StoreCore) -> str:
        names = self.params.set_names()
        if names is not None:
            check_sets(store, names)
        query = "SELECT sample_id FROM protected_samples(?) ORDER BY 1"
        rows = store.query(query, params=[names])["sample_id"].to_pylist()
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

    def decide_bounded(self, selection: Selection, run: BoundedRun) -> Decided:
        """`decide_all`'s decisions in bounded memory: detection is per sample, so the selection is streamed in
        batches (texts never all held); the leaks found (few) get their lineage, then a second stream of the
        selection's ids writes every decision (`lineage.filters.bounded.stage_stream`)."""
        protected = protected_items(run.store, self.params.set_names())
        index = build_index(protected, self.params) if protected.num_rows else None
        parts, done = [FOUND.empty_table()], 0
        for batch in selection.batches(["sample_id", "text", "content_hash"], ordered=False):
            leaks = detect(protected, batch["text"], batch["content_hash"], self.params, index=index)
            parts.append(found_table(batch["sample_id"], leaks))
            done += batch.num_rows
            if run.progress:
                run.progress(done, selection.count)
        found = with_lineage(run.store, pa.concat_tables(parts), protected, {})
        protected_ids = protected["sample_id"]
        stream = (
            (batch, decisions(batch["sample_id"], found, protected_ids))
            for batch in selection.batches(["sample_id", "source"], ordered=False)
        )
        return stage_stream(run, self.name, stream)

    def decide_all(
        self, features: pa.Table, context: SelectionContext, *, seeds: dict[str, str] | None = None
    ) -> pa.Table:
        protected = protected_items(context.store, self.params.set_names())
        if features.num_rows == 0:
            return DECISIONS.empty_table()
        leaks = detect(protected, features["text"], features["content_hash"], self.params)
        found = with_lineage(context.store, found_table(features["sample_id"], leaks), protected, seeds or {})
        return decisions(features["sample_id"], found, protected["sample_id"])


def descendants(graph: Graph, seeds: dict[str, str]) -> dict[str, str]:
    """Every descendant of a seed that is not a seed itself, with the root (held-out item) it traces back to (the
    smallest, where several do). Searches over the edges (`lineage.core.edges.reach`): the cost follows the seeds'
    families, not the store."""
    return {s: root for s, root in reach(graph, seeds).items() if s not in seeds}
