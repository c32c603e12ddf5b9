"""Shared fixtures: a real store in a temporary directory, the CLI runner, the fixture files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from filelock import FileLock

import lineage
from lineage.cli import cli
from lineage.core import catalog
from lineage.core.handle import CATALOG_FILE
from lineage.store import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on a Ray cluster is `slow` (the cluster takes seconds to start, each run ships work to its
    workers), marked here so a new one is too. In a parallel run (`make test`: pytest-xdist, `--dist loadgroup`),
    the tests sharing a module-scoped fixture are one group, run by one worker, so the fixture is built once."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            _Cluster.modules.add(_module(item))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _group_for_xdist(items)


def _group_for_xdist(items: list[pytest.Item]) -> None:
    """Each test on the shared Ray cluster (`cluster`) joins one `ray` group, run by one worker: one cluster at a time
    on the machine, started once. Each other test that uses a module-scoped fixture joins its module's group, run by
    one worker, so the fixture is built once (a module with tests in both builds its fixtures on both workers; its
    tests on no cluster run where no Ray session is open, as a serial run runs them before its cluster starts). The
    others go to any worker, one by one. (The `ray` group once took every test of its modules, test_remote's S3 tests
    included: that worker ran most of the suite's Ray and S3 work while the other had nothing left to do.)
    Every worker collects and orders the same way: units with a slow test first (the long ones, started early, keep
    the workers' ends close), then the groups, then the rest, each kind the largest unit first; a unit's tests keep
    their order (the work queue's order with `--no-loadscope-reorder`)."""
    unit_of: dict[pytest.Item, str] = {}
    ranks: dict[str, int] = {}
    sizes: Counter[str] = Counter()
    for item in items:
        module = item.nodeid.split("::")[0]
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = fixtures.name2fixturedefs.values() if fixtures else ()
        if "cluster" in getattr(item, "fixturenames", ()):
            unit, rank = "ray", 1
        elif any(d[-1].scope in ("module", "class", "package") for d in defs if d):
            unit, rank = module, 1
        else:
            unit, rank = item.nodeid, 2
        unit_of[item] = unit
        ranks[unit] = min(ranks.get(unit, rank), 0 if item.get_closest_marker("slow") else rank)
        sizes[unit] += 1
    items.sort(key=lambda item: (ranks[unit_of[item]], -sizes[unit_of[item]]))  # stable
    for item, unit in unit_of.items():
        if unit != item.nodeid:
            _join_group(item, unit)


def _join_group(item: pytest.Item, group: str) -> None:
    """What pytest-xdist does for an `xdist_group(group)` mark, done here: `--dist loadgroup` sends the tests whose
    ids end in the same `@group` to one worker. pytest-xdist 3.8 sets the id as `item._nodeid`, which pytest 9 no
    longer reads (its ids are `NodeId`s in `item._id`): its marks grouped nothing, each worker built every module
    fixture it came across and both ran Ray clusters at once. The check below fails the run if a pytest changes
    this again, instead of silently spreading a group over the workers."""
    nodeid = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):  # pytest >= 9
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid
    if item.nodeid != nodeid:
        raise pytest.UsageError(f"cannot put {item.nodeid} into the xdist group `{group}`: update _join_group")


class _Cluster:
    """The process's local Ray cluster of 2 CPUs, started by the first test that needs one and kept while the next
    test's module uses it (`pytest_runtest_teardown`): starting one takes seconds, so the Ray modules that one worker
    runs one after another share it. Started again when the environment its workers inherit changed (`AWS_*`:
    test_remote's workers read its S3 server with the credentials its `s3` fixture sets)."""

    started_with: ClassVar[dict[str, str] | None] = None  # the environment it was started with; None: not started by us
    modules: ClassVar[set[str]] = set()  # the test modules with a test on the cluster (`pytest_collection_modifyitems`)

    @classmethod
    def start(cls) -> None:
        ray = pytest.importorskip("ray")
        env = cls._env()
        if ray.is_initialized() and cls.started_with == env:
            return
        cls.stop()
        path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        # address="local": a cluster of this process's own, never one found running on the machine (a parallel
        # run's other worker, or another checkout's tests).
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
        cls.started_with = env

    @classmethod
    def stop(cls) -> None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        cls.started_with = None

    @staticmethod
    def _env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


@pytest.fixture
def cluster() -> None:
    """A real local Ray cluster of 2 CPUs (see `_Cluster`). As a team's cluster would have them installed, its
    workers can import the tests' user filters."""
    _Cluster.start()


@pytest.fixture
def no_ray_session() -> None:
    """No Ray session open in this process (a test of what happens without one): the shared cluster is stopped,
    and the next test on a cluster starts it again."""
    _Cluster.stop()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _Cluster.started_with is not None and (nextitem is None or _module(nextitem) not in _Cluster.modules):
        _Cluster.stop()


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if Ray were not installed: importing it fails."""
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)


# -- stores built once per pytest run, copied for each test -----------------------------------------------
# Building the small store takes seconds (four real ingests); copying a built one takes milliseconds. A store is a
# directory (the DuckDB catalog and Parquet segments, with paths relative to it), so a copy is a store of its own:
# a test that writes to or damages its copy leaves the others alone, and no test is handed the template itself.


class Templates:
    """Stores built once per pytest run under `root`, each by a named recipe; `copy` gives a test its own. The
    workers of a parallel run share `root`: the first to need a template builds it (under a file lock) for all."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, build: Callable[[Store], object], key: str | None = None) -> Path:
        """The template store `build` makes (given a new empty store), built on its first use in the run; named
        by `key`, or by the function's qualified name."""
        made = self.root / (key or f"{build.__module__}.{build.__qualname__}")
        if made.is_dir():
            return made
        with FileLock(made.with_name(f".{made.name}.lock")):
            if not made.is_dir():
                # Built under another name and renamed when whole: a recipe that fails is tried again by the next
                # test (which then fails as it would have), never copied half-made.
                draft = made.with_name(f".{made.name}.draft")
                shutil.rmtree(draft, ignore_errors=True)
                build(Store.init(draft))
                draft.rename(made)
        return made

    def copy(self, build: Callable[[Store], object], dest: Path, key: str | None = None) -> Store:
        """A private copy at `dest` (which must not exist, or be an empty store) of the template `build` makes."""
        shutil.copytree(self.path(build, key), dest, dirs_exist_ok=True)
        return Store(dest)


_templates: Templates | None = None  # set for the pytest run by the `templates` fixture


@pytest.fixture(scope="session", autouse=True)
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The run's template stores (autouse, so `fill_small_store` finds them from any fixture or test)."""
    global _templates
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's base is a directory of the run's own: share its parent
    (root / "templates").mkdir(exist_ok=True)
    _templates = Templates(root / "templates")
    yield _templates
    _templates = None


def templated(store: Store, build: Callable[[Store], object], key: str | None = None) -> Store:
    """`build(store)`; in a pytest run, when `store` is empty and local, a copy of what `build` made once in the run
    instead: the same catalog rows and segments, in milliseconds. `build` must depend on nothing but the store
    (and be deterministic); its qualified name names the template, or `key` when one function makes several."""
    if _templates is not None and _pristine(store, _templates):
        _templates.copy(build, store.root, key)
    else:
        build(store)
    return store


def _pristine(store: Store, templates: Templates) -> bool:
    """Nothing done to `store` since `Store.init`: local data, version 0, and the catalog's settings (its meta
    table, which some calls change without a new version, e.g. `set_auto_compact`) as `init` wrote them."""
    if store.as_of is not None or store.data.uri is not None or store.version != 0:
        return False
    return _settings(store.root) == _settings(templates.path(_empty))


def _settings(root: Path) -> set[tuple[str, str]]:
    with catalog.connect(root / CATALOG_FILE, read_only=True) as con:
        return set(con.execute(f"SELECT key, value FROM {catalog.SCHEMA}.meta WHERE key <> 'created_at'").fetchall())


def _empty(store: Store) -> None:
    """The recipe of the empty store: `Store.init` did it all."""


@pytest.fixture
def store(tmp_path: Path, templates: Templates) -> Store:
    """An empty store (a copy of one `Store.init` made once per run)."""
    return templates.copy(_empty, tmp_path / "store")


@pytest.fixture
def small_store(store: Store) -> Store:
    """Real WordNet sentences plus three synthetic generations derived from them (1,125 samples), in the
    directory of `store` (so `runner` works on it)."""
    return fill_small_store(store)


def fill_small_store(store: Store) -> Store:
    """Ingest the small store's four fixture files into `store` (in a pytest run, a copy: see `templated`)."""
    return templated(store, _ingest_small)


def _ingest_small(store: Store) -> Store:
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet", method="human", license="WordNet-3.0")
    for g in (1, 2, 3):
        store.ingest(
            FIXTURES / f"synthetic-g{g}.jsonl",
            origin="synthetic",
            source=f"syn-v{g}",
            method="paraphrase",
            generator="llama-3-8b",
            parent_field="parent_id",
        )
    return store


class Runner:
    """Runs the CLI in-process against one store and checks exit codes."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.cli = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.cli.invoke(cli, ["--store", str(self.store_path), *args], catch_exceptions=False)
        assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def runner(store: Store) -> Runner:
    return Runner(store.root)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The CLI in a real subprocess (`python -m lineage`), as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "lineage", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def count(store: Store, where: str = "true") -> int:
    return store.sql(f"SELECT count(*) AS n FROM samples WHERE {where}")["n"][0].as_py()


__all__ = ["FIXTURES", "Runner", "count", "fill_small_store", "lineage", "run_cli", "templated"]


EVENT_COLUMNS = "sample_id, decision, score, reason, related_id, cluster_id"


def events(store: Store, run_id: str) -> set[tuple[Any, ...]]:
    """A run's events as a set (scores to 9 digits): what two engines or two stores must agree on."""
    rows = store.sql(f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?", params=[run_id]).to_pylist()
    return {tuple(round(v, 9) if isinstance(v, float) else v for v in r.values()) for r in rows}


def store_pair(root: Path, *filters: str) -> tuple[Store, Store]:
    """Two copies of the small store (with `filters` run first): one for each engine."""
    first = fill_small_store(Store.init(root / "local"))
    for name in filters:
        first.run_filter(name)
    shutil.copytree(root / "local", root / "ray")
    return first, Store(root / "ray")
