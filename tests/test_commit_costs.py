"""What a small commit pays for stays right: the version a handle caches, the ingest instances it reuses, the
catalog it attaches to its own DuckDB instance to commit (`benchmarks/many_commits.py` measures the costs)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lineage.core.handle import CATALOG_FILE
from lineage.ingest.staging import SMALL_ROWS
from lineage.store import Store


def chats(prefix: str, n: int) -> list[dict[str, object]]:
    """Chat records with ids; every tenth is the same short exchange (the same text under another id)."""
    same = [{"role": "user", "content": "Is that right?"}, {"role": "assistant", "content": "Yes."}]
    return [
        {
            "id": f"{prefix}-{i}",
            "messages": same if i % 10 == 0 else [
                {"role": "user", "content": f"{prefix}: what does item {i * 7919 % 1000} mean?"},
                {"role": "assistant", "content": f"It means {i} things."},
            ],
        }
        for i in range(n)
    ]


def test_a_handle_sees_the_commits_of_another(tmp_path: Path) -> None:
    first = Store.init(tmp_path / "store")
    second = Store(tmp_path / "store")
    assert first.version == second.version == 0
    assert first.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 0
    second.ingest(chats("a", 30), origin="synthetic", source="pipeline", generation=1)
    assert first.version == second.version == 1  # the catalog file changed: `first` looks again
    assert first.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 30
    first.ingest(chats("b", 20), origin="synthetic", source="pipeline", generation=1)
    assert second.version == 2
    assert second.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 50


def test_small_and_streamed_inputs_in_turn(tmp_path: Path) -> None:
    """Ingests one after another reuse a DuckDB instance (their tables in a database of their own): a small input
    staged at once, one of several batches streamed, parents, a repeat; each sees exactly the store."""
    store = Store.init(tmp_path / "store")
    small = store.ingest(chats("s", 100), origin="synthetic", source="pipeline", generation=1)
    assert (small.rows_stored, small.rows_present) == (100, 0)
    assert small.rows_duplicate == 9  # the same exchange ten times: the nine after the first

    big = chats("m", SMALL_ROWS * 2 + 7)  # several reader batches: streamed
    streamed = store.ingest(big, origin="synthetic", source="pipeline", generation=1)
    assert streamed.rows_stored == len(big)
    assert streamed.rows_duplicate == (len(big) + 9) // 10  # its same exchanges all repeat the small one's

    children = [{"id": f"c-{i}", "text": f"A longer answer derived from s-{i}.", "parent": f"pipeline:s-{i}"}
                for i in range(5)]
    derived = store.ingest(children, origin="synthetic", source="rewrites", parent_field="parent")
    assert derived.rows_stored == 5
    again = store.ingest(chats("s", 100), origin="synthetic", source="pipeline", generation=1)
    assert (again.rows_stored, again.rows_present) == (0, 100)

    rows = store.sql(
        "SELECT external_id, generation, parent_ids FROM samples WHERE source = 'rewrites' ORDER BY external_id"
    ).to_pylist()
    parents = {r["external_id"]: r["sample_id"] for r in store.sql(
        "SELECT external_id, sample_id FROM samples WHERE source = 'pipeline' AND starts_with(external_id, 's-')"
    ).to_pylist()}
    assert [r["generation"] for r in rows] == [2] * 5
    assert [r["parent_ids"] for r in rows] == [[parents[f"s-{i}"]] for i in range(5)]
    assert store.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 100 + len(big) + 5


def test_commits_leave_the_catalog_closed(tmp_path: Path) -> None:
    """A commit attaches the catalog to the handle's own DuckDB instance and detaches it: no write-ahead log is left
    to replay, and another process can open the file for writing at once."""
    store = Store.init(tmp_path / "store")
    for batch in range(3):
        store.ingest(chats(f"k{batch}", 40), origin="synthetic", source="pipeline", generation=1)
    assert not (tmp_path / "store" / f"{CATALOG_FILE}.wal").exists()
    version = store.version
    con = duckdb.connect(str(tmp_path / "store" / CATALOG_FILE))  # fails if this process still held the file
    try:
        assert con.execute("SELECT max(version) FROM _lineage.commits").fetchall()[0][0] == version == 3
    finally:
        con.close()
    store.ingest(chats("k3", 40), origin="synthetic", source="pipeline", generation=1)
    assert store.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py() == 160


def test_views_at_versions_share_the_stores_instances_and_leave_nothing_behind(tmp_path: Path) -> None:
    """A store's views `at` a version read through the store's DuckDB instances (a build or a report opens several;
    each once started instances of its own, ~15 ms apiece), each reading its own version; and the catalog copies a
    dropped view made are released, so a session that opens thousands of views holds no more than one."""
    store = Store.init(tmp_path / "store")
    store.ingest(chats("a", 30), origin="synthetic", source="pipeline", generation=1)
    store.ingest(chats("b", 20), origin="synthetic", source="pipeline", generation=1)
    assert store.query("SELECT count(*) AS n FROM samples")["n"].to_pylist() == [50]
    kept = store._shared.kept
    assert kept is not None
    before = kept.execute("SELECT count(*) FROM duckdb_databases()").fetchall()
    for i in range(200):
        view = store.at(1 + i % 2)
        assert view._shared is store._shared
        assert view.query("SELECT count(*) AS n FROM samples")["n"].to_pylist() == [30 if i % 2 == 0 else 50]
        with view.reader(views={"samples"}) as con:
            assert con.execute("SELECT count(*) FROM samples").fetchall() == [(30 if i % 2 == 0 else 50,)]
        del view
    assert store._shared.kept is kept  # one instance for lineage's own copies, for every version read
    assert kept.execute("SELECT count(*) FROM duckdb_databases()").fetchall() == before
    store.ingest(chats("c", 5), origin="synthetic", source="pipeline", generation=1)
    assert store.query("SELECT count(*) AS n FROM samples")["n"].to_pylist() == [55]  # a commit: a new copy
    assert kept.execute("SELECT count(*) FROM duckdb_databases()").fetchall() == before
