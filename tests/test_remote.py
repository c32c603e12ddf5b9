"""A store whose data lives on object storage (a real S3 server on localhost: moto), the catalog local.

The same commands work, give the same results as a store on local disk, stay read-only in `lineage sql`,
survive a SIGKILL around the upload, and run on Ray with the workers reading and staging on S3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest
from conftest import FIXTURES, events, fill_small_store, run_cli

from lineage.core.catalog import SCHEMA
from lineage.core.handle import CATALOG_FILE
from lineage.errors import LineageError, QueryError
from lineage.store import Store

BUCKET = "lineage-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
REAL_ARGS = ["--origin", "real", "--source", "wordnet", "--method", "human"]
G1_ARGS = ["--origin", "synthetic", "--source", "syn-v1", "--method", "paraphrase", "--generator", "llama-3-8b",
           "--parent-field", "parent_id"]


class S3:
    """The server's address, a filesystem on it, and fresh store URIs under one bucket."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.fs = pafs.S3FileSystem(
            endpoint_override=endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True
        )

    def uri(self, prefix: str | None = None) -> str:
        prefix = prefix or uuid.uuid4().hex[:12]
        return f"s3://{BUCKET}/{prefix}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"

    def files(self, uri: str, under: str = "data") -> list[str]:
        prefix = uri.split("?")[0].removeprefix("s3://")
        found = self.fs.get_file_info(pafs.FileSelector(f"{prefix}/{under}", recursive=True, allow_not_found=True))
        return sorted(i.path[len(prefix) + 1 :] for i in found if i.type == pafs.FileType.File)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # the driver, CLI subprocesses and Ray workers all take them from here
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    found = S3(f"{host}:{port}")
    found.fs.create_dir(BUCKET)
    yield found
    server.stop()
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def remote_made(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The small store with its data on S3, made once per module (four ingests uploading to S3 take seconds)."""
    return fill_small_store(Store.init(tmp_path_factory.mktemp("remote") / "store", data=s3.uri()))


@pytest.fixture
def remote(s3: S3, remote_made: Store, tmp_path: Path) -> Store:
    """A private copy of `remote_made`: its objects under a new prefix, its directory with the catalog naming
    that prefix (a store records its data location only there), so a test that writes to it stays alone."""
    uri = s3.uri()
    source, dest = (u.split("?")[0].removeprefix("s3://") for u in (remote_made.data.uri, uri))
    for rel in s3.files(remote_made.data.uri, under=""):
        s3.fs.copy_file(f"{source}/{rel}", f"{dest}/{rel}")
    shutil.copytree(remote_made.root, tmp_path / "store")
    con = duckdb.connect(str(tmp_path / "store" / CATALOG_FILE))
    try:
        con.execute(f"UPDATE {SCHEMA}.meta SET value = ? WHERE key = 'data_uri'", [uri])
    finally:
        con.close()
    return Store(tmp_path / "store")


@pytest.fixture
def local(tmp_path: Path) -> Store:
    return fill_small_store(Store.init(tmp_path / "local"))


def cli_ok(store: Path, *args: str) -> str:
    done = run_cli("--store", str(store), *args)
    assert done.returncode == 0, f"`lineage {' '.join(args)}` exited {done.returncode}: {done.stderr}"
    return done.stdout


# -- the CLI, end to end ---------------------------------------------------------------------


def test_cli_init_ingest_query_doctor(s3: S3, tmp_path: Path) -> None:
    store, uri = tmp_path / "store", s3.uri()
    assert cli_ok(store, "init", "--data", uri).strip() == f"initialised lineage store at {store} (data in {uri})"
    cli_ok(store, "ingest", str(FIXTURES / "real.jsonl"), *REAL_ARGS)
    cli_ok(store, "ingest", str(FIXTURES / "synthetic-g1.jsonl"), *G1_ARGS)

    counted = json.loads(cli_ok(store, "sql", "SELECT origin, count(*) AS n FROM samples GROUP BY 1 ORDER BY 1",
                                "--format", "json"))
    assert counted == [{"origin": "real", "n": 600}, {"origin": "synthetic", "n": 300}]
    report = json.loads(cli_ok(store, "doctor", "--json"))
    assert (report["ok"], report["segments"], report["rows"], report["data"]) == (True, 2, 900, uri)
    # Two samples segments and the edges of the generation-1 samples' parents (doctor counts samples segments).
    assert sorted(p.split("/")[1] for p in s3.files(uri)) == ["edges", "samples", "samples"]
    assert not (store / "data").exists(), "the data went to S3, not beside the catalog"

    child = json.loads(cli_ok(store, "sql", "SELECT sample_id FROM samples WHERE generation = 1 LIMIT 1",
                              "--format", "json"))[0]["sample_id"]
    shown = json.loads(cli_ok(store, "show", child, "--json"))
    assert [a["generation"] for a in shown["ancestors"]] == [0]


def test_same_results_as_a_store_on_local_disk(remote: Store, local: Store) -> None:
    on_disk = {}
    for name in ("exact-dedup", "near-dedup", "quality"):
        on_s3, on_disk[name] = remote.run_filter(name), local.run_filter(name)
        assert events(remote, on_s3.run_id) == events(local, on_disk[name].run_id), name
    query = "SELECT source, generation, count(*) AS n, sum(length(text)) AS c FROM samples GROUP BY ALL ORDER BY ALL"
    assert remote.sql(query).equals(local.sql(query))
    # The minhash cache went up with the data, and a re-run reads it back.
    assert any(p.startswith("data/features/minhash/") and p.endswith(".parquet") for p in remote.data.files("data"))
    again = remote.run_filter("near-dedup", force=True)
    assert events(remote, again.run_id) == events(local, on_disk["near-dedup"].run_id)


def test_provenance_on_s3_equals_the_indexed_walks_on_local_disk(remote: Store, local: Store) -> None:
    """Local walks search memory-mapped indexes (`lineage.core.edgeindex`); on S3 they are SQL lookups."""
    from lineage.core.edges import Graph, reach

    query = "SELECT sample_id FROM samples WHERE generation IN (0, 3) ORDER BY generation, sample_id"
    ids = local.sql(query)["sample_id"].to_pylist()
    assert ids == remote.sql(query)["sample_id"].to_pylist()
    for sample_id in [*ids[:5], *ids[-5:]]:
        for which in ("ancestors", "descendants"):
            assert getattr(remote, which)(sample_id).equals(getattr(local, which)(sample_id)), (sample_id, which)
    seeds = {s: f"item-{i % 3}" for i, s in enumerate(ids[:40])}
    found = {}
    for store in (remote, local):
        with store.reader(views={"samples", "_edges"}) as con:
            found[store.data.posix] = reach(Graph(store, con), seeds)
    assert found[True] == found[False] and len(found[True]) > len(seeds)
    assert not any(p.startswith("data/features/") for p in remote.data.files("data"))  # no index on S3


def test_builds_read_s3_and_stay_beside_the_catalog(remote: Store, tmp_path: Path) -> None:
    spec = {"name": "mix", "size": 400, "seed": 1, "quotas": {"origin": {"real": {"min": 0.5}}}}
    build = remote.build(spec)
    members = build.members(columns="sample_id, origin")
    assert members.num_rows == 400
    assert sum(o == "real" for o in members["origin"].to_pylist()) >= 200
    assert (remote.root / "builds" / "mix" / "v1" / "members.parquet").is_file()
    out = build.export(tmp_path / "out", format="jsonl").path
    lines = (out / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 400 and all(json.loads(line)["text"] for line in lines)
    assert remote.doctor().ok and remote.doctor().orphans == []


# -- read-only SQL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO 'lineage://data/samples/evil.parquet'",
        "SELECT * FROM read_text('lineage://data/../../elsewhere/secret.txt')",
        "SELECT * FROM read_text('lineage://tmp/x')",
    ],
)
def test_sql_cannot_write_or_leave_the_data(remote: Store, s3: S3, query: str) -> None:
    other = s3.uri("elsewhere").split("?")[0].removeprefix("s3://")
    with s3.fs.open_output_stream(f"{other}/secret.txt") as out:
        out.write(b"secret")
    before = s3.files(remote.data.uri)
    with pytest.raises(QueryError):
        remote.sql(query)
    assert s3.files(remote.data.uri) == before


def test_sql_cannot_read_other_buckets(remote: Store, s3: S3) -> None:
    with pytest.raises(QueryError):
        remote.sql(f"SELECT * FROM read_text('s3://{BUCKET}/elsewhere/secret.txt')")


def test_duckdb_threads_sharing_a_remote_file_read_it_whole(s3: S3) -> None:
    """DuckDB's scan threads share one file handle and seek, then read: with one shared position a thread
    read at another's offset (zstd errors on most queries, before the fix)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lineage.core.remote_fs import ReadOnlyFS

    rows = 100_000
    table = pa.table({"n": pa.array(range(rows)), "text": pa.array([f"passage {i} " * 6 for i in range(rows)])})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=1_000, compression="zstd")
    base = s3.uri().split("?")[0].removeprefix("s3://")
    with s3.fs.open_output_stream(f"{base}/data/many-row-groups.parquet") as out:
        out.write(sink.getvalue())
    con = duckdb.connect()
    con.execute("SET threads = 4")
    con.register_filesystem(ReadOnlyFS(pafs.SubTreeFileSystem(base, s3.fs)))
    query = "SELECT count(*), sum(n), sum(length(text)) FROM read_parquet('lineage://data/many-row-groups.parquet')"
    expected = (rows, rows * (rows - 1) // 2, sum(len(t) for t in table["text"].to_pylist()))
    for _ in range(8):
        assert con.execute(query).fetchall() == [expected]


# -- bad locations ---------------------------------------------------------------------------


def test_bad_locations_are_one_line_and_leave_nothing(s3: S3, tmp_path: Path) -> None:
    cases = {
        "s3://key:secret@bucket/x": "put credentials in the environment, not the URI",
        f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1": "cannot be read",
        "nosuchscheme://bucket/x": "data location `nosuchscheme://bucket/x`",
    }
    for i, (uri, message) in enumerate(cases.items()):
        done = run_cli("init", str(tmp_path / f"s{i}"), "--data", uri)
        assert done.returncode == 1, done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "secret" not in done.stderr
        assert not (tmp_path / f"s{i}").exists()


def test_two_remote_stores_in_one_process_read_each_their_own_data(s3: S3, tmp_path: Path) -> None:
    """Ingest reuses DuckDB instances between ingests; one that had a store's `lineage://` filesystem must never
    serve another store, whose segments it would look for under the first one's prefix."""
    first = Store.init(tmp_path / "first", data=s3.uri(f"first-{uuid.uuid4().hex}"))
    second = Store.init(tmp_path / "second", data=s3.uri(f"second-{uuid.uuid4().hex}"))
    records = [{"text": f"a sentence stored on S3, number {i}"} for i in range(20)]
    first.ingest(records, origin="real", source="one")
    stored = second.ingest(records, origin="real", source="two").rows_stored
    again = second.ingest(records, origin="real", source="two")  # reads the second store's existing samples
    assert stored > 0 and (again.rows_stored, again.rows_present) == (0, stored)
    assert first.sql("SELECT DISTINCT source FROM samples").to_pylist() == [{"source": "one"}]
    assert second.sql("SELECT DISTINCT source FROM samples").to_pylist() == [{"source": "two"}]


def test_an_unreachable_or_missing_location_is_one_line(s3: S3, tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    gone = S3(f"{host}:{port}")
    gone.fs.create_dir(BUCKET)
    store = fill_small_store(Store.init(tmp_path / "store", data=gone.uri("s"))).root
    server.stop()
    for args in (["sql", "SELECT count(*) FROM samples"], ["ingest", str(FIXTURES / "mixed.jsonl")]):
        done = run_cli("--store", str(store), *args)
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"Error: data location `s3://{BUCKET}/s/data` cannot be reached: "), done.stderr

    mounted = tmp_path / "mount"
    Store.init(tmp_path / "posix", data=str(mounted))
    (mounted / "data").rename(tmp_path / "elsewhere")  # as if the share were not mounted
    done = run_cli("--store", str(tmp_path / "posix"), "stats")
    message = f"Error: data location `{mounted}/data` is not there: is it mounted, and is it this store's?\n"
    assert (done.returncode, done.stderr) == (1, message)


def test_a_location_holding_data_is_refused(remote: Store, tmp_path: Path) -> None:
    with pytest.raises(LineageError, match=r"already holds \d+ files under data/: give each store an empty location"):
        Store.init(tmp_path / "second", data=remote.data.uri)
    assert not (tmp_path / "second").exists()


def test_a_plain_path_is_kept_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = fill_small_store(Store.init(tmp_path / "store", data="shared/lineage-data"))
    assert store.data.uri == str(tmp_path / "shared" / "lineage-data")
    monkeypatch.chdir("/")
    reopened = Store(tmp_path / "store")
    assert reopened.sql("SELECT count(*) AS n FROM samples")["n"].to_pylist() == [1125]
    assert len(list((tmp_path / "shared" / "lineage-data" / "data" / "samples").glob("*.parquet"))) == 4


# -- SIGKILL around the upload ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("step", ["segment_fsynced", "segment_renamed", "catalog_before_commit", "catalog_committed"])
def test_sigkill_around_the_upload(s3: S3, tmp_path: Path, step: str) -> None:
    store, uri = tmp_path / "store", s3.uri()
    cli_ok(store, "init", "--data", uri)
    cli_ok(store, "ingest", str(FIXTURES / "real.jsonl"), *REAL_ARGS)
    killed = run_cli("--store", str(store), "ingest", str(FIXTURES / "synthetic-g1.jsonl"), *G1_ARGS,
                     env={"LINEAGE_CRASH_AT": step})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    committed = step == "catalog_committed"
    report = json.loads(cli_ok(store, "doctor", "--json"))
    assert report["ok"] and report["rows"] == (900 if committed else 600), report
    uploaded_orphan = step in ("segment_renamed", "catalog_before_commit")
    where = uri.split("?")[0]  # shown without the location's options
    assert any(o.startswith(f"{where}/data/samples/") for o in report["orphans"]) == uploaded_orphan, report

    again = json.loads(cli_ok(store, "ingest", str(FIXTURES / "synthetic-g1.jsonl"), *G1_ARGS, "--json"))
    assert again["rows_stored"] == (0 if committed else 300)
    cli_ok(store, "gc", "--yes")
    report = json.loads(cli_ok(store, "doctor", "--json"))
    assert (report["ok"], report["rows"], report["orphans"]) == (True, 900, [])
    assert len(s3.files(uri, "data/samples")) == 2


# -- Ray workers on S3 -----------------------------------------------------------------------


def test_ray_workers_read_and_stage_on_s3(s3: S3, cluster: None, remote: Store, local: Store) -> None:
    # `s3` before `cluster`: the cluster's workers take the credentials from the environment `s3` sets.
    for name in ("quality", "near-dedup"):
        on_ray, on_disk = remote.run_filter(name, engine="ray"), local.run_filter(name)
        assert events(remote, on_ray.run_id) == events(local, on_disk.run_id), name
    assert remote.data.files("tmp") == [], "staged parts were moved into data/events or removed"
    assert sum(p.startswith("data/events/") for p in remote.data.files("data")) >= 2

    # Embeddings on the actor pool, cached on S3 by the driver; decisions as on local disk.
    where, params = "length(text) < 70", {"threshold": 0.9}
    on_ray = remote.run_filter("semantic-dedup", params=params, where=where, engine="ray")
    on_disk = local.run_filter("semantic-dedup", params=params, where=where)
    decided = "SELECT sample_id, decision, related_id FROM events WHERE run_id = ? ORDER BY sample_id"
    assert remote.sql(decided, params=[on_ray.run_id]) == local.sql(decided, params=[on_disk.run_id])
    assert any(p.startswith("data/features/embeddings/") for p in remote.data.files("data"))

    # Diversity metrics read the segments on S3 from the workers: the local engine's values.
    kwargs = {"by": ["source"], "metrics": "text", "sample_size": 100, "record": False}
    assert remote.diversity(engine="ray", **kwargs).table == local.diversity(**kwargs).table
    assert remote.doctor().ok and remote.doctor().orphans == []


def test_one_protocol_name() -> None:
    """`location` names the protocol without importing `remote_fs` (fsspec loads only for a remote store)."""
    from lineage.core import location, remote_fs

    assert location.PROTOCOL == remote_fs.PROTOCOL == remote_fs.ReadOnlyFS.protocol


def test_duckdb_asks_for_a_data_files_info_once(tmp_path: Path) -> None:
    """DuckDB asks the filesystem for a file's existence, size and time many times per query (each a HEAD request
    on object storage): the read-only filesystem asks the store's once per file, and again for a path not found."""
    from collections import Counter

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lineage.core.remote_fs import ReadOnlyFS

    class Counting:
        """A pyarrow filesystem that counts the paths it is asked about."""

        type_name = "counting"

        def __init__(self) -> None:
            self.inner, self.asked = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()), Counter()

        def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
            self.asked.update(paths)
            return self.inner.get_file_info(paths)

        def open_input_file(self, path: str) -> pa.NativeFile:
            return self.inner.open_input_file(path)

    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"n": list(range(100))}), tmp_path / "data" / "a.parquet", row_group_size=10)
    counting = Counting()
    con = duckdb.connect()
    con.register_filesystem(ReadOnlyFS(counting, skip_instance_cache=True))
    for _ in range(3):
        assert con.sql("SELECT sum(n) FROM 'lineage://data/a.parquet'").fetchall() == [(4950,)]
    assert counting.asked["data/a.parquet"] == 1, counting.asked
    for _ in range(2):
        with pytest.raises(duckdb.Error):
            con.sql("SELECT * FROM 'lineage://data/gone.parquet'").fetchall()
    assert counting.asked["data/gone.parquet"] >= 2  # not found is not kept: a file may appear
