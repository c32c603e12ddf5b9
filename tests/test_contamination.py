"""contamination: exact, near-duplicate and lineage leaks of protected sets, with the held-out item named."""

from __future__ import annotations

from conftest import FIXTURES

from lineage.sets import create_set
from lineage.store import Store


def test_exact_near_and_lineage_leaks(small_store: Store) -> None:
    # Hold out the longest real sentence that synthetic generations 1-3 were derived from.
    deepest = small_store.sql(
        "SELECT external_id FROM samples WHERE generation = 3 ORDER BY external_id"
    )["external_id"].to_pylist()
    chain = max((small_store.sample(e) for e in deepest[:40]), key=lambda c: len(c["ancestors"][-1]["text"]))
    root = chain["ancestors"][-1]["sample_id"]
    text = small_store.sample(root)["sample"]["text"]
    create_set(small_store, "heldout", where=f"sample_id = '{root}'", protected=True)
    small_store.ingest([
        {"id": "copy", "text": "  " + text + "  "},  # exact (normalised)
        {"id": "near", "text": text + " indeed"},  # one word more
        {"id": "far", "text": "A completely different sentence about boats and tides."},
    ], origin="real", source="web")
    result = small_store.run_filter("contamination")
    rows = {
        r["external_id"]: r for r in small_store.sql(
            "SELECT s.external_id, e.decision, e.reason, e.related_id, e.score FROM status e "
            "JOIN samples s USING (sample_id) WHERE e.filter = 'contamination'"
        ).to_pylist()
    }
    assert rows["copy"]["reason"] == "contaminated_exact" and rows["copy"]["related_id"] == root
    assert rows["near"]["reason"] == "contaminated_near" and rows["near"]["related_id"] == root
    assert rows["near"]["score"] >= 0.8
    assert rows["far"]["decision"] == "keep"
    lineage = [a["sample_id"] for a in chain["ancestors"][:-1]] + [chain["sample"]["sample_id"]]
    dropped = small_store.sql(
        "SELECT sample_id, reason, related_id FROM status WHERE filter = 'contamination' AND decision = 'drop'"
    ).to_pylist()
    # Every descendant is dropped naming the root: by lineage, or directly when it still contains the item.
    assert set(lineage) <= {r["sample_id"] for r in dropped if r["related_id"] == root}
    leaked = [r for r in dropped if r["reason"] == "contaminated_lineage"]
    assert leaked and {r["related_id"] for r in leaked} == {root}
    assert result.reasons["contaminated_lineage"] == len(leaked)
    assert rows["copy"]["decision"] == "drop"
    # The protected item itself is the reference, not a leak.
    assert small_store.sql(f"SELECT decision FROM status WHERE sample_id = '{root}'")["decision"].to_pylist() == [
        "keep"]


def test_rerun_after_the_protected_set_changes(small_store: Store) -> None:
    create_set(small_store, "heldout", protected=True)
    first = small_store.run_filter("contamination")
    assert first.dropped == 0
    assert small_store.run_filter("contamination").skipped
    small_store.ingest(FIXTURES / "qa.jsonl", origin="real", source="eval", template="{prompt} {response}",
                       set_name="heldout")
    assert not small_store.run_filter("contamination").skipped


def test_a_set_name_that_is_not_a_protected_set_is_refused(small_store: Store) -> None:
    """`sets=heldoutt` once checked against nothing: every sample kept, the earlier drops replaced, `status` up to
    date. A name that is no set, or a set that is not protected, is refused before anything is decided."""
    import pytest
    from conftest import Runner

    from lineage.errors import LineageError

    root = small_store.sql("SELECT sample_id FROM samples WHERE generation = 0 ORDER BY sample_id LIMIT 1")
    create_set(small_store, "heldout", ids=root["sample_id"].to_pylist(), protected=True)
    create_set(small_store, "notes", ids=root["sample_id"].to_pylist())
    dropped = "SELECT count(*) AS n FROM status WHERE filter = 'contamination' AND decision = 'drop'"
    assert small_store.run_filter("contamination").dropped > 0
    before, version = small_store.sql(dropped), small_store.version
    cases = {"heldoutt": r"^sets=: no set `heldoutt` \(protected sets: heldout\)$",
             "heldout,foo": r"^sets=: no set `foo` \(protected sets: heldout\)$",
             '["heldout"]': r'^sets=: no set `\["heldout"\]`',
             "notes": r"^sets=: set `notes` is not protected; contamination checks protected sets only"}
    for sets, message in cases.items():
        for engine in ("inline", "local"):
            with pytest.raises(LineageError, match=message):
                small_store.run_filter("contamination", params={"sets": sets}, engine=engine, force=True)
    err = Runner(small_store.root)("filter", "run", "contamination", "--param", "sets=heldoutt", code=1).stderr
    assert err == "Error: sets=: no set `heldoutt` (protected sets: heldout)\n"
    assert small_store.version == version and small_store.sql(dropped) == before
    assert small_store.run_filter("contamination", params={"sets": "heldout"}).dropped == before["n"][0].as_py()
