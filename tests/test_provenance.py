"""Provenance at scale: lineage edges materialised at ingest (`lineage.core.edges`), walked by point lookups.

On a generated multi-generation store (chat `messages`, ShareGPT `conversations`, Alpaca and `[INST]` records, real
then four synthetic generations, each sample with 1-2 parents named by external id): ancestors and descendants
equal what the recursive query over every sample's unnested parent_ids gave before, at every version, through
compaction and gc; takedown cascades to exactly the descendants; the format-4 store migrates to edges; a SIGKILL
while the edges are written leaves the store as before or as after.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, templated

import lineage
from lineage.core import catalog
from lineage.errors import StoreFormatError
from lineage.store import Store

SEED = 20261207
GENERATIONS = 4
REAL_ROWS, GEN_ROWS = 400, 300
TOPICS = ["tides", "bread", "comets", "verbs", "rivers", "ledgers", "ferns", "chess", "glaciers", "looms"]


def real_record(i: int, rng: random.Random) -> dict[str, Any]:
    """A real record in one of four shapes, with an id."""
    topic, other = rng.choice(TOPICS), rng.choice(TOPICS)
    shape = i % 4
    if shape == 0:
        return {"id": f"r-{i}", "messages": [
            {"role": "user", "content": f"How do {topic} relate to {other}? ({i})"},
            {"role": "assistant", "content": f"They share little; {topic} and {other} meet in item {i}."},
        ]}
    if shape == 1:
        return {"id": f"r-{i}", "conversations": [
            {"from": "human", "value": f"Explain {topic} simply, case {i}."},
            {"from": "gpt", "value": "Yes."},  # identical short answers across records
        ]}
    if shape == 2:
        return {"id": f"r-{i}", "instruction": f"Summarise the note on {topic}.", "input": f"Note {i} on {other}.",
                "output": f"A note about {topic} and {other}."}
    return {"id": f"r-{i}", "text": f"[INST] Define {topic} [/INST] {topic.title()} is entry {i}: " + " ".join(
        rng.choice(TOPICS) for _ in range(40))}


def synthetic_record(gen: int, i: int, prev: int, rng: random.Random) -> dict[str, Any]:
    prefix = "r" if gen == 1 else f"g{gen - 1}"
    parents = sorted({f"{prefix}-{rng.randrange(prev)}" for _ in range(rng.choice((1, 2)))})
    return {"id": f"g{gen}-{i}", "messages": [
        {"role": "user", "content": f"Paraphrase {' and '.join(parents)}."},
        {"role": "assistant", "content": f"Generation {gen} paraphrase {i} of {rng.choice(TOPICS)}."},
    ], "parent_ids": parents}


def grow(store: Store) -> Store:
    """Real data in two sources, then GENERATIONS synthetic ones; automatic compaction off (tests merge)."""
    store.set_auto_compact(None)
    rng = random.Random(SEED)
    real = [real_record(i, rng) for i in range(REAL_ROWS)]
    store.ingest(real[: REAL_ROWS // 2], origin="real", source="forum", method="human")
    store.ingest(real[REAL_ROWS // 2:], origin="real", source="wiki", method="human")
    prev = REAL_ROWS
    for gen in range(1, GENERATIONS + 1):
        rows = [synthetic_record(gen, i, prev, rng) for i in range(GEN_ROWS)]
        store.ingest(rows, origin="synthetic", source=f"gen{gen}", method="paraphrase", generator=f"m{gen}")
        prev = GEN_ROWS
    return store


def family_store(root: Path) -> Store:
    return templated(Store.init(root), grow)


# What lineage ran before edges were materialised: the parents of every sample unnested at each step.
OLD_WALK = """
WITH RECURSIVE edges AS (SELECT unnest(parent_ids) AS parent_id, sample_id AS child_id FROM samples),
walk(sample_id, depth) AS (
    SELECT {first}, 1 FROM edges WHERE {start} = ?
    UNION
    SELECT e.{first}, w.depth + 1 FROM edges e JOIN walk w ON e.{start} = w.sample_id WHERE w.depth < 10000
)
SELECT sample_id, min(depth) AS depth FROM walk GROUP BY sample_id ORDER BY depth, sample_id
"""


def old_walk(store: Store, sample_id: str, which: str) -> list[tuple[str, int]]:
    first, start = ("parent_id", "child_id") if which == "ancestors" else ("child_id", "parent_id")
    rows = store.sql(OLD_WALK.format(first=first, start=start), params=[sample_id]).to_pylist()
    return [(r["sample_id"], r["depth"]) for r in rows]


def new_walk(store: Store, sample_id: str, which: str) -> list[tuple[str, int]]:
    table = getattr(store, which)(sample_id)
    return list(zip(table["sample_id"].to_pylist(), table["depth"].to_pylist(), strict=True))


def probes(store: Store, n: int = 12) -> list[str]:
    """Samples of every generation, seeded."""
    ids = store.sql("SELECT sample_id FROM samples ORDER BY generation, sample_id")["sample_id"].to_pylist()
    return [*random.Random(SEED).sample(ids, n), ids[0], ids[-1]]


def assert_same_as_old(store: Store) -> None:
    for sample_id in probes(store):
        for which in ("ancestors", "descendants"):
            assert new_walk(store, sample_id, which) == old_walk(store, sample_id, which), (sample_id, which)


def test_relatives_equal_the_old_recursive_query(tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    deep = store.sql("SELECT min(sample_id) AS s FROM samples WHERE generation = 4 AND len(parent_ids) = 2")
    deep_id = deep["s"][0].as_py()
    ancestors = new_walk(store, deep_id, "ancestors")
    assert ancestors == old_walk(store, deep_id, "ancestors")
    assert {d for _, d in ancestors} == {1, 2, 3, 4} and len(ancestors) >= 5
    assert_same_as_old(store)
    # The SQL macros read the same edges.
    macro = store.sql("SELECT sample_id, depth FROM ancestors(?) ORDER BY depth, sample_id", params=[deep_id])
    assert list(zip(macro["sample_id"].to_pylist(), macro["depth"].to_pylist(), strict=True)) == ancestors
    # `show` lists them with their provenance, back to real data.
    shown = store.sample(deep_id)
    assert [(r["sample_id"], r["depth"]) for r in shown["ancestors"]] == ancestors
    assert {r["origin"] for r in shown["ancestors"] if r["depth"] == 4} == {"real"}


def test_edges_are_each_ingests_parent_ids_stored_from_both_ends(tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    edges = store.sql("SELECT count(*) AS n FROM segments WHERE kind = 'edges'")["n"][0].as_py()
    assert edges == GENERATIONS  # the real ingests have no parents: no edges segment
    links = store.sql("SELECT sum(len(parent_ids)) AS n FROM samples")["n"][0].as_py()
    rows = store.sql("SELECT relation, count(*) AS n FROM _edges GROUP BY ALL ORDER BY ALL").to_pylist()
    assert rows == [{"relation": "child", "n": links}, {"relation": "parent", "n": links}]
    report = store.doctor()
    assert report.ok and report.missing_parents == []


@pytest.mark.slow  # many commits, compactions and gc: started early by the parallel run
def test_time_travel_compaction_and_gc_keep_every_version_exact(tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    versions = {v: {s: (new_walk(store.at(v), s, "ancestors"), new_walk(store.at(v), s, "descendants"))
                    for s in probes(store.at(v), 4)} for v in range(3, store.version + 1)}
    for v, found in versions.items():  # each version against the old query over that version's samples
        for sample_id, (up, down) in found.items():
            assert (up, down) == (old_walk(store.at(v), sample_id, "ancestors"),
                                  old_walk(store.at(v), sample_id, "descendants"))
    result = store.compact()
    assert result.merged["edges"] == GENERATIONS and result.written["edges"] == 1
    for v, found in versions.items():
        for sample_id, (up, down) in found.items():
            assert (new_walk(store.at(v), sample_id, "ancestors"), new_walk(store.at(v), sample_id, "descendants")) \
                == (up, down)
    assert_same_as_old(store)
    # gc keeping only the compacted version removes the replaced edges segments; it still reads as before.
    removed = store.gc(dry_run=False, retain_versions=1)
    assert sum(rel.startswith("data/edges/") for rel in removed) == GENERATIONS
    for sample_id, (up, down) in versions[store.version - 1].items():
        assert (new_walk(store, sample_id, "ancestors"), new_walk(store, sample_id, "descendants")) == (up, down)
    assert store.doctor().ok


def test_takedown_cascades_to_exactly_the_descendants(tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    roots = store.sql("SELECT sample_id FROM samples WHERE source = 'wiki'")["sample_id"].to_pylist()
    expected = set(roots)
    for root in roots:
        expected |= {s for s, _ in old_walk(store, root, "descendants")}
    out = Runner(store.root)("takedown", "--source", "wiki", "--reason", "licence withdrawn").stdout
    assert f"{len(expected):,} dropped" in out
    dropped = store.sql("SELECT sample_id, related_id FROM status WHERE filter = 'takedown' AND decision = 'drop'")
    assert set(dropped["sample_id"].to_pylist()) == expected
    assert set(dropped["related_id"].to_pylist()) <= set(roots)
    assert store.sql("SELECT count(*) AS n FROM samples WHERE generation = 4 AND sample_id IN "
                     "(SELECT sample_id FROM status WHERE filter = 'takedown')")["n"][0].as_py() > 0


def test_a_format3_store_migrates_to_edges(tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    store.compact(kinds=("samples",))  # a retired samples segment: its edges must be retired at the same version
    before = {v: store.at(v).sql("SELECT * FROM lineage_edges ORDER BY ALL").to_pylist()
              for v in range(store.version + 1)}
    con = duckdb.connect(str(store.catalog_path))  # the catalog as format 3 wrote it: no edges segments
    paths = [r[0] for r in con.execute(f"SELECT path FROM {catalog.SCHEMA}.segments WHERE kind = 'edges'").fetchall()]
    con.execute(f"DELETE FROM {catalog.SCHEMA}.segments WHERE kind = 'edges'")
    con.execute(f"UPDATE {catalog.SCHEMA}.meta SET value = '3' WHERE key = 'format_version'")
    con.close()
    for rel in paths:
        (store.root / rel).unlink()
    shutil.rmtree(store.root / "data" / "features" / "edges")  # nor their indexes (`lineage.core.edgeindex`)
    with pytest.raises(StoreFormatError, match="has format 3; run `lineage migrate` to upgrade it to 4"):
        Store(store.root)
    assert Runner(store.root)("migrate").stdout == "migrated through formats [4]\n"
    store = Store(store.root)
    after = {v: store.at(v).sql("SELECT * FROM lineage_edges ORDER BY ALL").to_pylist()
             for v in range(store.version + 1)}
    assert after == before
    assert_same_as_old(store)
    assert store.doctor().ok and store.doctor().orphans == []


@pytest.mark.slow  # a crash loop
@pytest.mark.parametrize("step", ["ingest_edges_written", "catalog_segment_inserted", "catalog_committed"])
def test_sigkill_while_writing_edges_leaves_before_or_after(step: str, tmp_path: Path) -> None:
    store = family_store(tmp_path / "store")
    rng = random.Random(SEED + 1)
    rows = [synthetic_record(GENERATIONS + 1, i, GEN_ROWS, rng) for i in range(200)]
    path = tmp_path / "g5.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["ingest", str(path), "--origin", "synthetic", "--source", "gen5", "--generator", "m5"]
    before = store.version
    proc = subprocess.run([sys.executable, "-m", "lineage", "--store", str(store.root), *args],
                          env={**_env(), "LINEAGE_CRASH_AT": step}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = lineage.open(store.root)
    assert store.version == (before + 1 if step == "catalog_committed" else before)
    assert store.doctor().ok
    Runner(store.root)(*args)
    store.gc(dry_run=False)
    report = store.doctor()
    assert report.ok and report.orphans == [] and report.missing_parents == []
    assert store.sql("SELECT count(*) AS n FROM samples WHERE source = 'gen5'")["n"][0].as_py() == 200
    assert_same_as_old(store)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}


# -- the indexed walks (`lineage.core.edgeindex`) against plain recursive SQL over the samples' parent_ids --------

# Every relative of a sample with what `show` prints of it: the old recursive walk, then the samples' columns.
OLD_RELATIVES = """
SELECT w.depth, w.sample_id, s.origin, s.source, s.method, s.generator, s.generation, s.external_id,
       s.text
FROM ({walk}) w LEFT JOIN samples s USING (sample_id) ORDER BY w.depth, w.sample_id
"""
# The seeds (`$seeds`, each with its root in `$roots`) and every descendant, with the smallest root reaching it.
OLD_REACH = """
WITH RECURSIVE edges AS (SELECT unnest(parent_ids) AS parent_id, sample_id AS child_id FROM samples),
walk(sample_id, root) AS (
    SELECT unnest($seeds), unnest($roots)
    UNION
    SELECT e.child_id, w.root FROM edges e JOIN walk w ON e.parent_id = w.sample_id
)
SELECT sample_id, min(root) AS root FROM walk GROUP BY sample_id
"""
LOST = ["lost-parent-7", "ursprünglich-verlorene-quelle-mit-einem-sehr-langen-namen-0042"]  # wider than any id


def missing_parent_store(root: Path) -> Store:
    """The family store and one more generation whose samples name 1-2 parents: some in generation 4, some in
    no ingest at all (kept with --allow-missing-parents), one of them longer than any sample id."""
    store = family_store(root)
    rng = random.Random(SEED + 2)
    rows = [synthetic_record(GENERATIONS + 1, i, GEN_ROWS, rng) for i in range(60)]
    for i, row in enumerate(rows[:6]):
        row["parent_ids"] = sorted({LOST[i % 2], *row["parent_ids"][:1]})
    store.ingest(rows, origin="synthetic", source="gen5", method="paraphrase", generator="m5",
                 allow_missing_parents=True)
    return store


def old_relatives(store: Store, sample_id: str, which: str) -> list[dict[str, Any]]:
    first, start = ("parent_id", "child_id") if which == "ancestors" else ("child_id", "parent_id")
    sql = OLD_RELATIVES.format(walk=OLD_WALK.format(first=first, start=start).strip())
    return store.sql(sql, params=[sample_id]).to_pylist()


def old_reach(store: Store, seeds: dict[str, str]) -> dict[str, str]:
    rows = store.sql(OLD_REACH.replace("$seeds", "?::VARCHAR[]").replace("$roots", "?::VARCHAR[]"),
                     params=[list(seeds), list(seeds.values())]).to_pylist()
    return {r["sample_id"]: r["root"] for r in rows}


def new_reach(store: Store, seeds: dict[str, str]) -> dict[str, str]:
    from lineage.core.edges import Graph, reach

    with store.reader(views={"samples", "_edges"}) as con:
        return reach(Graph(store, con), seeds)


def index_files(store: Store) -> list[str]:
    return sorted(p.relative_to(store.root).as_posix() for p in (store.root / "data" / "features").glob("*/*")
                  if p.parent.name in ("edges", "rows"))


def test_indexed_relatives_equal_recursive_sql_with_diamonds_and_missing_parents(tmp_path: Path) -> None:
    store = missing_parent_store(tmp_path / "store")
    # Each ingest indexed its samples segment, and its edges segment when it had one.
    live = store.sql("SELECT kind, path FROM segments ORDER BY ALL").to_pylist()
    stems = {(r["kind"], r["path"].rsplit("/", 1)[-1].removesuffix(".parquet")) for r in live}
    assert index_files(store) == sorted(f"data/features/{'rows' if k == 'samples' else k}/{s}.arrow"
                                        for k, s in stems if k in ("samples", "edges"))
    lost = store.sql("SELECT sample_id FROM samples WHERE list_has_any(parent_ids, ?::VARCHAR[]) ORDER BY 1",
                     params=[LOST])["sample_id"].to_pylist()
    diamonds = store.sql(  # a sample two of whose parents share a parent
        "SELECT DISTINCT c.sample_id FROM samples c, unnest(c.parent_ids) a(p1), unnest(c.parent_ids) b(p2), "
        "samples x, samples y WHERE p1 < p2 AND x.sample_id = p1 AND y.sample_id = p2 "
        "AND list_has_any(x.parent_ids, y.parent_ids) ORDER BY 1")["sample_id"].to_pylist()
    assert len(lost) == 6 and diamonds
    for sample_id in [*lost, *diamonds[:3], *probes(store, 8)]:
        for which in ("ancestors", "descendants"):
            assert getattr(store, which)(sample_id).to_pylist() == old_relatives(store, sample_id, which), which
    # A missing parent is an ancestor with no provenance, and it has the children that name it.
    up = store.ancestors(lost[0]).to_pylist()
    assert [r["origin"] for r in up if r["sample_id"] in LOST] == [None]
    from lineage.core.edges import Graph, walk

    with store.reader(views={"samples", "_edges"}) as con:
        down = walk(Graph(store, con), [LOST[1]], "descendants")
    found = list(zip(down["sample_id"].to_pylist(), down["depth"].to_pylist(), strict=True))
    assert found == old_walk(store, LOST[1], "descendants") != []
    # Lineage-aware contamination and takedown: every descendant with the smallest root reaching it, for seeds
    # that are their own roots, seeds reached from other seeds, and a root that is a held-out item, not a sample.
    rng = random.Random(SEED + 3)
    ids = store.sql("SELECT sample_id FROM samples ORDER BY 1")["sample_id"].to_pylist()
    for seeds in ({s: s for s in rng.sample(ids, 40)}, {s: f"item-{rng.randrange(5)}" for s in rng.sample(ids, 25)},
                  {LOST[1]: LOST[1], lost[0]: "item-0"}):
        assert new_reach(store, seeds) == old_reach(store, seeds)
    # Time travel: each version sees the edges and rows of its own samples only.
    for v in range(1, store.version + 1):
        for sample_id in probes(store.at(v), 3):
            for which in ("ancestors", "descendants"):
                assert getattr(store.at(v), which)(sample_id).to_pylist() == \
                    old_relatives(store.at(v), sample_id, which), (v, which)


def test_a_lost_or_damaged_index_is_rebuilt_and_gc_removes_the_unused(tmp_path: Path) -> None:
    store = missing_parent_store(tmp_path / "store")
    sample_id = store.sql("SELECT min(sample_id) AS s FROM samples WHERE generation = 4")["s"][0].as_py()
    root = store.sql("SELECT min(sample_id) AS s FROM samples WHERE generation = 0")["s"][0].as_py()
    expected = {w: old_relatives(store, s, w) for w, s in (("ancestors", sample_id), ("descendants", root))}
    files = index_files(store)
    (store.root / files[0]).unlink()  # lost
    (store.root / files[-1]).write_bytes(b"ARROW1 cut short")  # half written by a crash
    for which, start in (("ancestors", sample_id), ("descendants", root)):
        assert getattr(store, which)(start).to_pylist() == expected[which]
    assert index_files(store) == files and store.doctor().orphans == []
    # Compaction indexes the segments it writes once committed, and gc removes the indexes of the replaced ones.
    store.compact()
    assert len(index_files(store)) == len(files) + 2  # one compacted samples and one edges segment
    for which, start in (("ancestors", sample_id), ("descendants", root)):
        assert getattr(store, which)(start).to_pylist() == expected[which]
    store.gc(dry_run=False, retain_versions=1)
    assert len(index_files(store)) == 2 and store.doctor().orphans == []
    for which, start in (("ancestors", sample_id), ("descendants", root)):
        assert getattr(store, which)(start).to_pylist() == expected[which]
