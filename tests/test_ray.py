"""The Ray engine on a real local Ray cluster (2 CPUs): same decisions as the local engine, crash safety."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, events, fill_small_store, run_cli, store_pair, templated

from lineage.errors import LineageError
from lineage.sets import create_set
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import leaks

ray = pytest.importorskip("ray")

@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Store]:
    """Two stores with the same samples: one for each engine."""
    return store_pair(tmp_path_factory.mktemp("engines"))


def scores(store: Store, run_id: str) -> dict[str, float]:
    rows = store.sql("SELECT sample_id, score FROM events WHERE run_id = ?", params=[run_id]).to_pylist()
    return {r["sample_id"]: r["score"] if r["score"] is not None else -1.0 for r in rows}


def test_without_ray_the_error_says_how_to_install(without_ray: None, small_store: Store) -> None:
    with pytest.raises(LineageError, match=r"pip install 'lineage\[ray\]'"):
        small_store.run_filter("quality", engine="ray")
    assert small_store.sql("SELECT count(*) AS n FROM runs")["n"].to_pylist() == [0]


def test_unreachable_address_is_one_line(no_ray_session: None, small_store: Store) -> None:
    with pytest.raises(LineageError, match=r"cannot reach a Ray cluster at `127\.0\.0\.1:1`"):
        small_store.run_filter("quality", engine="ray", ray_address="127.0.0.1:1")


@pytest.mark.slow
def test_cli_starts_a_local_cluster_when_no_address_is_given(small_store: Store) -> None:
    done = run_cli("--store", str(small_store.root), "filter", "run", "quality", "--engine", "ray", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("quality: 1,125 selected")
    listed = run_cli("--store", str(small_store.root), "runs", "--json")
    assert [(r["filter"], r["engine"], r["selected"]) for r in json.loads(listed.stdout)] == [("quality", "ray", 1125)]
    assert small_store.sql("SELECT count(*) AS n FROM events")["n"].to_pylist() == [1125]


ONE_CPU = """
import sys
import ray
from lineage.store import Store
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
store = Store(sys.argv[1])
for _ in range(2):  # the second run on the same cluster is the one that hung
    print(store.run_filter("near-dedup", engine="ray", workers=1, force=True).run_id, flush=True)
"""


@pytest.mark.slow
def test_near_dedup_on_a_one_cpu_cluster_ends(tmp_path: Path) -> None:
    """On a cluster of one CPU, a read streaming beside a shuffle's boundary sampling once held the only CPU while
    the sampling waited for it (with Ray Data's V1 Parquet reader, tried for its lower fixed cost): near-dedup of
    20,000 passages never ended, on its second run in the cluster. The runs must end, with the local engine's
    decisions."""
    import random
    import subprocess

    lines = (FIXTURES / "real.jsonl").read_text(encoding="utf-8").splitlines()
    sentences = [json.loads(line)["text"] for line in lines]
    rng = random.Random(7)
    passages = [" ".join(rng.choices(sentences, k=6)) for _ in range(20_000)]
    store = Store.init(tmp_path / "store")
    store.ingest([{"id": str(i), "text": t} for i, t in enumerate(passages[:18_000])], origin="real", source="a")
    store.ingest([{"id": str(i), "text": t + " again"} for i, t in enumerate(passages[:2_000])], origin="synthetic",
                 source="b", method="edit", generation=1)  # near-copies of the first 2,000
    done = subprocess.run([sys.executable, "-c", ONE_CPU, str(store.root)], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    local = store.run_filter("near-dedup", engine="local", force=True)
    assert local.dropped >= 2_000
    for run_id in done.stdout.split():
        assert events(store, run_id) == events(store, local.run_id)


def test_ray_address_without_ray_engine_is_refused(small_store: Store) -> None:
    done = run_cli("--store", str(small_store.root), "filter", "run", "quality", "--ray-address", "auto")
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: --ray-address goes with --engine ray"


def test_zero_workers_is_refused_before_any_work(small_store: Store) -> None:
    for engine in ("local", "ray"):
        with pytest.raises(LineageError, match=r"^workers= must be at least 1, got 0$"):
            small_store.run_filter("quality", engine=engine, workers=0)
    assert small_store.sql("SELECT count(*) AS n FROM runs")["n"].to_pylist() == [0]


@pytest.mark.parametrize(
    ("name", "params", "where"),
    [
        ("quality", {}, None),
        ("quality", {"min_words": 6}, "origin = 'synthetic'"),
        ("exact-dedup", {}, None),
        ("near-dedup", {}, None),
        ("near-dedup", {"threshold": 0.5, "ngram": 3}, "generation > 0"),
        ("sql", {"where": "length(text) < 40", "reason": "too_short"}, "generation < 3"),
    ],
)
def test_same_events_on_both_engines(
    cluster: None, pair: tuple[Store, Store], name: str, params: dict[str, Any], where: str | None
) -> None:
    local, on_ray = pair
    a = local.run_filter(name, params=params, where=where, engine="local", force=True)
    b = on_ray.run_filter(name, params=params, where=where, engine="ray", force=True)
    assert (a.selected, a.kept, a.dropped, a.flagged, a.reasons) == (
        b.selected,
        b.kept,
        b.dropped,
        b.flagged,
        b.reasons,
    )
    assert a.selected > 0
    assert events(local, a.run_id) == events(on_ray, b.run_id)
    assert on_ray.sql("SELECT engine FROM runs WHERE run_id = ?", params=[b.run_id])["engine"].to_pylist() == ["ray"]
    assert on_ray.doctor().ok
    assert not list((on_ray.root / "tmp").iterdir())


def test_semantic_dedup_embeds_on_actors_and_decides_the_same(cluster: None, pair: tuple[Store, Store]) -> None:
    local, on_ray = pair
    where = "length(text) < 70"
    a = local.run_filter("semantic-dedup", params={"threshold": 0.9}, where=where, engine="local", force=True)
    b = on_ray.run_filter("semantic-dedup", params={"threshold": 0.9}, where=where, engine="ray", force=True)
    assert a.selected == b.selected > 100 and a.dropped == b.dropped > 0
    # Vectors from other batches differ in the last float32 bits (padding changes the kernels' sums):
    # the decisions are the same, the cosine scores agree to float32 precision.
    without_score = "sample_id, decision, reason, related_id, cluster_id"
    query = f"SELECT {without_score} FROM events WHERE run_id = ? ORDER BY sample_id"
    assert local.sql(query, params=[a.run_id]) == on_ray.sql(query, params=[b.run_id])
    x, y = scores(local, a.run_id), scores(on_ray, b.run_id)
    assert x.keys() == y.keys() and all(abs(x[k] - y[k]) < 1e-5 for k in x)
    assert list((on_ray.root / "data" / "features" / "embeddings").iterdir())  # the driver cached the vectors


def test_sample_filter_parts_are_registered_segments(cluster: None, pair: tuple[Store, Store]) -> None:
    _, on_ray = pair
    result = on_ray.run_filter("quality", params={"min_words": 4}, engine="ray", workers=2, force=True)
    segments = on_ray.sql(
        "SELECT path, row_count FROM segments WHERE kind = 'events' AND version = ?", params=[result.version]
    ).to_pylist()
    assert sum(s["row_count"] for s in segments) == result.selected == 1125
    assert all(Path(on_ray.root / s["path"]).is_file() for s in segments)


def test_a_workers_lineage_error_reaches_the_user_as_itself(cluster: None, pair: tuple[Store, Store]) -> None:
    _, on_ray = pair
    before = on_ray.version
    with pytest.raises(LineageError, match=r"^filter undecided returned decision `maybe`; allowed: keep, drop, flag$"):
        on_ray.run_filter("undecided", module="user_filters:UndecidedFilter", engine="ray")
    assert on_ray.version == before
    assert not list((on_ray.root / "tmp").iterdir())


def test_user_filter_runs_on_workers(cluster: None, pair: tuple[Store, Store]) -> None:
    _, on_ray = pair
    result = on_ray.run_filter("shouting", module="user_filters:ShoutingFilter", engine="ray", force=True)
    assert result.selected == 1125 and result.kept + result.dropped + result.flagged == 1125


def ingest_real(store: Store) -> None:
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet")


def test_killed_worker_registers_nothing_and_the_run_can_be_retried(cluster: None, tmp_path: Path) -> None:
    store = templated(Store.init(tmp_path / "store"), ingest_real)
    before = store.version
    killer = tmp_path / "marker"
    run = {"module": "user_filters:KillerFilter", "params": {"marker": str(killer)}, "engine": "ray"}
    killer.write_text("always")
    with pytest.raises(LineageError, match="failed on Ray: WorkerCrashedError: The worker died"):
        store.run_filter("killer", **run)
    assert store.version == before
    assert store.sql("SELECT count(*) AS n FROM events")["n"].to_pylist() == [0]
    assert store.sql("SELECT count(*) AS n FROM runs")["n"].to_pylist() == [0]
    assert store.doctor().ok
    assert not (store.root / "tmp").exists() or not list((store.root / "tmp").iterdir())

    killer.write_text("once")  # the first worker to see it dies; Ray retries its task elsewhere
    result = store.run_filter("killer", **run)
    assert not killer.exists()
    assert result.kept == result.selected == store.sql("SELECT count(*) AS n FROM samples")["n"].to_pylist()[0]
    assert store.sql("SELECT count(*) AS n, count(DISTINCT sample_id) AS d FROM events").to_pylist() == [
        {"n": result.selected, "d": result.selected}
    ]
    assert store.doctor().ok


def test_empty_selection(cluster: None, pair: tuple[Store, Store]) -> None:
    _, on_ray = pair
    result = on_ray.run_filter("quality", where="false", engine="ray", force=True)
    assert result.selected == 0


def test_contamination_detects_on_the_workers_and_decides_the_same(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted leaks of every kind (contained in documents and chats, exact copies, lineage): the Ray engine's
    events are the local engine's, and the driver never runs detection (the workers do)."""
    import shutil

    from lineage.engines.ray import plans
    from lineage.filters import contamination

    made = leaks.make(seed=2, clean=300, items=60, chats=10, planted=40)
    local = fill_small_store(Store.init(tmp_path / "local"))
    leaks.ingest(local, made)
    # Real sentences with synthetic descendants, held out too: their paraphrases leak by lineage.
    roots = local.sql(
        "SELECT DISTINCT parent_id FROM lineage_edges e JOIN samples s ON s.sample_id = e.parent_id "
        "WHERE s.origin = 'real' ORDER BY 1 LIMIT 10"
    )["parent_id"].to_pylist()
    create_set(local, "roots", where=f"sample_id IN ({', '.join(repr(r) for r in roots)})", protected=True)
    copy = {"id": "copy", "text": leaks.ITEM_TEMPLATE.format(**made.heldout[0]).upper()}  # the same normalised words
    local.ingest([copy], origin="real", source="copies")
    shutil.copytree(tmp_path / "local", tmp_path / "ray")
    on_ray = Store(tmp_path / "ray")

    a = local.run_filter("contamination")

    def on_the_driver(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("detection ran on the driver")

    monkeypatch.setattr(contamination, "detect", on_the_driver)
    monkeypatch.setattr(plans, "detect", on_the_driver)
    b = on_ray.run_filter("contamination", engine="ray", workers=2)
    assert (a.selected, a.kept, a.dropped, a.reasons) == (b.selected, b.kept, b.dropped, b.reasons)
    assert {"contaminated_exact", "contaminated_contained", "contaminated_lineage"} <= a.reasons.keys()
    assert a.reasons["contaminated_contained"] >= 40
    assert events(local, a.run_id) == events(on_ray, b.run_id)
    assert on_ray.doctor().ok


# -- the segments as a Ray Data source -------------------------------------------------------------


def test_pack_keeps_the_order_splits_no_file_and_makes_at_most_the_tasks_asked() -> None:
    from lineage.core.catalog import SegmentFile
    from lineage.engines.ray.source import pack

    sizes = [5, 1, 1, 1, 90, 3, 3, 30, 30, 30, 2]
    files = [SegmentFile(f"s{i}", 10, size) for i, size in enumerate(sizes)]
    for tasks in (1, 2, 3, 4, 7, 11, 50):
        groups = pack(files, tasks)
        assert [f for g in groups for f in g] == files and all(groups), tasks
        assert len(groups) <= tasks, (tasks, len(groups))
    same = [SegmentFile(f"s{i}", 10, 100) for i in range(5)]
    assert pack(same, 200) == [[f] for f in same]  # more tasks than files: a task per file
    assert pack(same, 2) == [same[:2], same[2:]]
    assert pack(files, 3) == [files[:4], [files[4]], files[5:]]  # the 90-byte file, past a third alone, is a task
    assert pack([], 4) == []


def test_the_source_reads_every_row_of_every_file_once(cluster: None, tmp_path: Path) -> None:
    """Files of several row groups, more files than tasks: every row arrives once, in the tasks asked for."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from lineage.core.catalog import SegmentFile
    from lineage.engines.ray.source import SegmentSource
    from lineage.schemas import SAMPLES

    files, ids = [], []
    for i in range(6):
        rows = [f"{i}-{n:03d}" for n in range(25 + i)]
        path = tmp_path / f"seg-{i}.parquet"
        pq.write_table(pa.table({"sample_id": rows, "text": [f"text {r}" for r in rows]}), path, row_group_size=7)
        files.append(SegmentFile(str(path), len(rows), path.stat().st_size))
        ids += rows
    source = SegmentSource(files, ["sample_id"], pafs.LocalFileSystem(), SAMPLES)
    tasks = source.get_read_tasks(2)
    paths = [f.path for f in files]
    assert [t.metadata.input_files for t in tasks] == [tuple(paths[:3]), tuple(paths[3:])]
    assert sum(t.metadata.num_rows for t in tasks) == len(ids)
    ds = ray.data.read_datasource(source, override_num_blocks=2)
    assert sorted(ds.to_pandas()["sample_id"]) == sorted(ids)
    assert ds.schema().names == ["sample_id"]


def test_embedding_actors_are_started_for_enough_text_only() -> None:
    import pyarrow as pa

    from lineage.engines.ray.plans import ACTOR_MIN_CHARS, MODEL_CHARS, embedding_actors

    short = pa.chunked_array([["a short sentence of forty characters ok"] * 1_000])  # 39,000 characters
    assert embedding_actors(short, 64, 8) == 1  # less than one actor's start-up worth: one actor
    many = pa.chunked_array([["x" * 100] * (3 * ACTOR_MIN_CHARS // 100)])
    assert embedding_actors(many, 64, 8) == 3 and embedding_actors(many, 64, 2) == 2  # at most one per CPU
    assert embedding_actors(many, 1_500, 8) == 2  # at most one per batch
    long = pa.chunked_array([["y" * 50 * MODEL_CHARS] * 80])  # the model reads only MODEL_CHARS of each
    assert embedding_actors(long, 64, 8) == max(1, 80 * MODEL_CHARS // ACTOR_MIN_CHARS)
    assert embedding_actors(pa.chunked_array([[None, None]], pa.string()), 64, 8) == 1
