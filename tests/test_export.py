"""Exports a trainer loads (real `datasets`), that validate (real `mlcroissant`), and that list their licences.

The store mixes what a new user brings: web text (cc-by-4.0), OpenAI-style chat (mit), ShareGPT conversations,
Alpaca instructions (cc-by-nc-4.0), and synthetic paraphrases of the web text with no licence, 4,000 records.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import Runner, run_cli

from lineage.build import Build
from lineage.errors import LineageError
from lineage.licenses import composition, spdx_id, warnings
from lineage.store import Store

CORPUS = Path(__file__).resolve().parent.parent / "lineage" / "demo" / "data" / "wordnet-sentences.jsonl.gz"
SIZE = 3_000


def _sentences(n: int, seed: int) -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(20_000), f, strict=False)]
    return random.Random(seed).sample(texts, n)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def make_mix(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Seeded input files of five families of records."""
    rng, words = random.Random(seed), _sentences(4_000, seed)
    web = [{"id": f"web-{i:05d}", "text": f"{words[i]}. {words[i + 1]}."} for i in range(1_400)]
    chat = [
        {"id": f"chat-{i:05d}", "messages": [
            *([{"role": "system", "content": "You are a concise assistant."}] if i % 3 == 0 else []),
            {"role": "user", "content": f"What does this mean: {words[1_500 + i]}?"},
            {"role": "assistant", "content": words[2_300 + i]},
        ]}
        for i in range(700)
    ]
    sharegpt = [
        {"id": f"sg-{i:05d}", "conversations": [
            {"from": "human", "value": f"Explain: {words[3_000 + i]}"},
            {"from": "gpt", "value": words[3_400 + i]},
        ]}
        for i in range(400)
    ]
    alpaca = [
        {"id": f"alp-{i:05d}", "instruction": "Paraphrase the sentence.", "input": words[i], "output": words[i + 7]}
        for i in range(600)
    ]
    para = []
    for i in range(900):
        parent = web[rng.randrange(len(web))]
        text = f"In other words, {parent['text'].lower()}"
        para.append({"id": f"para-{i:05d}", "text": text, "parent_id": parent["id"]})
    return {name: _write(folder / f"{name}.jsonl", rows) for name, rows in
            (("web", web), ("chat", chat), ("sharegpt", sharegpt), ("alpaca", alpaca), ("para", para))}


def fill(store: Store, files: dict[str, Path]) -> Store:
    store.ingest(files["web"], origin="real", source="web", method="web", license="cc-by-4.0")
    store.ingest(files["chat"], origin="synthetic", source="chat", generator="llama-3-8b", generation=1, license="MIT")
    store.ingest(
        files["sharegpt"], origin="real", source="sharegpt", method="human", template="{conversations}",
        license="Apache-2.0",
    )
    store.ingest(
        files["alpaca"], origin="real", source="alpaca", method="human",
        template="{instruction}\n\n{input}\n\n{output}", license="cc-by-nc-4.0",
    )
    store.ingest(files["para"], origin="synthetic", source="para", method="paraphrase", generator="qwen-2-7b",
                 parent_field="parent_id")
    return store


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Build, dict[str, Path]]:
    root = tmp_path_factory.mktemp("export")
    files = make_mix(root)
    store = fill(Store.init(root / "store"), files)
    build = store.build({"name": "blend", "size": SIZE, "seed": 3, "description": "a blend for the export tests"})
    return store, build, files


def originals(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Every input record by its id."""
    out = {}
    for path in files.values():
        for line in path.read_text(encoding="utf-8").splitlines():
            out[json.loads(line)["id"]] = json.loads(line)
    return out


def expected_messages(record: dict[str, Any]) -> list[dict[str, str]] | None:
    if "messages" in record:
        return record["messages"]
    if "conversations" in record:
        roles = {"human": "user", "gpt": "assistant"}
        return [{"role": roles[m["from"]], "content": m["value"]} for m in record["conversations"]]
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def members(build: Build) -> dict[str, dict[str, Any]]:
    rows = build.members(columns="sample_id, external_id, text, parent_ids").to_pylist()
    return {r["sample_id"]: r for r in rows}


# -- loadable: parquet, hf, jsonl ---------------------------------------------------------------------------


def test_parquet_export_loads_with_datasets_and_keeps_families_together(mixed: Any, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    store, build, files = mixed
    columns = ["text", "messages", "_lineage_sample_id", "_lineage_external_id"]
    out = store.export("blend", tmp_path / "pq", columns=columns, split=["validation=0.1"])
    loaded = datasets.load_dataset("parquet", data_dir=str(out.path))
    assert set(loaded) == {"train", "validation"}
    assert {s: loaded[s].num_rows for s in loaded} == out.splits and sum(out.splits.values()) == SIZE
    assert 150 < out.splits["validation"] < 450
    assert loaded["train"].column_names == ["text", "messages", "_lineage_sample_id", "_lineage_external_id"]
    want, records = members(build), originals(files)
    side = {}
    for split in loaded:
        for row in loaded[split]:
            member = want[row["_lineage_sample_id"]]
            assert row["text"] == member["text"]
            assert row["messages"] == expected_messages(records[row["_lineage_external_id"]])
            side[row["_lineage_sample_id"]] = split
    assert set(side) == set(want)
    chat = [r for r in loaded["train"] if r["messages"]]
    assert len(chat) > 500 and {m["role"] for r in chat for m in r["messages"]} == {"system", "user", "assistant"}
    pairs = [(sid, p) for sid, m in want.items() for p in m["parent_ids"] if p in want]
    assert len(pairs) > 100 and all(side[a] == side[b] for a, b in pairs)  # a paraphrase sits beside its source


def test_hf_export_is_load_from_disk_at_output(mixed: Any, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    store, build, _ = mixed
    out = store.export("blend", tmp_path / "hf", format="hf")
    loaded = datasets.load_from_disk(str(out.path))
    assert isinstance(loaded, datasets.Dataset) and loaded.column_names == ["text", "messages"]
    assert sorted(loaded["text"]) == sorted(m["text"] for m in members(build).values())
    split = store.export("blend", tmp_path / "hf-split", format="hf", split={"validation": 0.05}, shard_size=1_000)
    dd = datasets.load_from_disk(str(split.path))
    assert isinstance(dd, datasets.DatasetDict) and {s: dd[s].num_rows for s in dd} == split.splits
    assert len(list((split.path / "train").glob("data-*.arrow"))) == 3


def test_jsonl_is_verbatim_by_default_and_columns_on_request(mixed: Any, tmp_path: Path) -> None:
    store, build, files = mixed
    out = store.export("blend", tmp_path / "jsonl", format="jsonl")
    lines = (out.path / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8").splitlines()
    inputs = {line for path in files.values() for line in path.read_text(encoding="utf-8").splitlines()}
    assert len(lines) == SIZE and set(lines) <= inputs  # byte for byte
    out = store.export("blend", tmp_path / "jsonl-cols", format="jsonl", verbatim=False)
    rows = read_jsonl(out.path / "data" / "train-00000-of-00001.jsonl")
    assert set(rows[0]) == {"text", "messages"} and sorted(r["text"] for r in rows) == sorted(
        m["text"] for m in members(build).values())
    out = store.export("blend", tmp_path / "jsonl-prov", format="jsonl", with_provenance=True)
    rows = read_jsonl(out.path / "data" / "train-00000-of-00001.jsonl")
    para = next(r for r in rows if r["id"].startswith("para-"))
    assert para["_lineage"]["generator"] == "qwen-2-7b" and para["_lineage"]["license"] is None
    assert para["_lineage"]["generation"] == 1 and len(para["_lineage"]["parent_ids"]) == 1


def test_shards_are_named_as_hugging_face_expects(mixed: Any, tmp_path: Path) -> None:
    store, build, _ = mixed
    out = store.export("blend", tmp_path / "shards", shard_size=700)
    names = sorted(p.name for p in (out.path / "data").iterdir())
    assert names == [f"train-{i:05d}-of-00005.parquet" for i in range(5)]
    counts = [pq.ParquetFile(out.path / "data" / n).metadata.num_rows for n in names]
    assert counts == [700, 700, 700, 700, 200]
    texts = [t for n in names for t in pq.read_table(out.path / "data" / n)["text"].to_pylist()]
    ordered = build.members(columns="text")["text"].to_pylist()  # sample_id order, shard after shard
    assert texts == ordered
    manifest = json.loads((out.path / "manifest.json").read_text(encoding="utf-8"))
    assert [f["rows"] for f in manifest["files"]] == counts and all(len(f["sha256"]) == 64 for f in manifest["files"])


def test_python_api_streams_batches_and_builds_a_dataset(mixed: Any) -> None:
    datasets = pytest.importorskip("datasets")
    _, build, _ = mixed
    batches = list(build.iter_batches(batch_size=512, columns=["text", "_lineage_origin"]))
    assert all(b.num_rows <= 512 for b in batches) and sum(b.num_rows for b in batches) == SIZE
    assert batches[0].schema.names == ["text", "_lineage_origin"]
    ds = build.to_hf()
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == SIZE and ds.column_names == ["text", "messages"]
    with pytest.raises(LineageError, match=r"columns=: unknown column `txt`; choose from text, messages, record"):
        next(build.iter_batches(columns=["txt"]))


# -- Croissant -----------------------------------------------------------------------------------------------


def mlcroissant(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mlcroissant")
    return subprocess.run([str(Path(sys.executable).parent / "mlcroissant"), *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib, inside mlcroissant
def test_croissant_validates_and_loads_every_split(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    out = store.export("blend", tmp_path / "cr", split=["validation=0.1"], shard_size=1_000)
    path = out.path / "croissant.json"
    checked = mlcroissant("validate", "--jsonld", str(path))
    assert checked.returncode == 0 and "error" not in checked.stderr.lower(), checked.stderr
    assert "warning" not in checked.stderr.lower(), checked.stderr
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=path)
    for split, n in out.splits.items():
        rows = list(dataset.records(record_set=split))
        assert len(rows) == n
        written = [t for f in sorted((out.path / "data").glob(f"{split}-*.parquet"))
                   for t in pq.read_table(f)["text"].to_pylist()]
        assert [r[f"{split}/text"].decode() for r in rows] == written
    chat = next(r for r in dataset.records(record_set="train") if r["train/messages"][0]["train/messages/role"])
    assert {m["train/messages/role"] for m in chat["train/messages"]} <= {b"system", b"user", b"assistant"}
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1" and doc["name"] == "blend-v1"
    assert "https://spdx.org/licenses/CC-BY-NC-4.0.html" in doc["license"]
    assert doc["lineage:generators"] == ["llama-3-8b", "qwen-2-7b"]
    assert "Synthetic data" in doc["rai:dataCollectionType"]
    loaded = mlcroissant("load", "--jsonld", str(path), "--record_set", "validation", "--num_records", "3")
    assert loaded.returncode == 0 and "validation/text" in loaded.stdout, loaded.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "hf"])
def test_croissant_of_other_formats_validates(mixed: Any, tmp_path: Path, fmt: str) -> None:
    store, _, _ = mixed
    out = store.export("blend", tmp_path / fmt, format=fmt)
    checked = mlcroissant("validate", "--jsonld", str(out.path / "croissant.json"))
    assert checked.returncode == 0 and "error" not in checked.stderr.lower(), checked.stderr


# -- licences ------------------------------------------------------------------------------------------------


def test_licences_of_the_export(mixed: Any, tmp_path: Path) -> None:
    store, build, _ = mixed
    out = store.export("blend", tmp_path / "lic")
    manifest = json.loads((out.path / "manifest.json").read_text(encoding="utf-8"))
    mix = {r["license"]: r for r in manifest["licenses"]}
    assert set(mix) == {"cc-by-4.0", "MIT", "Apache-2.0", "cc-by-nc-4.0", "unknown"}
    want = dict(build.members(columns="coalesce(license, 'unknown') AS l, count(*) OVER (PARTITION BY license) AS n")
                .to_pandas().drop_duplicates().values.tolist())
    assert {k: r["count"] for k, r in mix.items()} == want and sum(r["count"] for r in mix.values()) == SIZE
    assert mix["cc-by-nc-4.0"]["non_commercial"] and mix["cc-by-nc-4.0"]["spdx"] == "CC-BY-NC-4.0"
    assert [w.split(" are ")[1] for w in manifest["license_warnings"]] == ["non-commercial: cc-by-nc-4.0",
                                                                            "unknown: unknown"]


def test_spdx_ids_and_warnings() -> None:
    assert [spdx_id(x) for x in ("cc-by-4.0", "CC BY-SA 4.0", "mit", "apache-2.0", "WordNet-3.0", "cc0")] == [
        "CC-BY-4.0", "CC-BY-SA-4.0", "MIT", "Apache-2.0", None, "CC0-1.0"]
    mix = composition({"cc-by-nc-sa-4.0": 2, None: 1, "": 1, "MIT": 4})
    assert [(r.license, r.count, r.share) for r in mix] == [("MIT", 4, 0.5), ("cc-by-nc-sa-4.0", 2, 0.25),
                                                           ("unknown", 2, 0.25)]
    assert warnings(mix) == [
        "2 of 8 samples (25.0%) are non-commercial: cc-by-nc-sa-4.0",
        "2 of 8 samples (25.0%) are share-alike: cc-by-nc-sa-4.0",
        "2 of 8 samples (25.0%) are unknown: unknown",
    ]


# -- the output folder ---------------------------------------------------------------------------------------


def test_non_empty_output_refused_unless_force_which_replaces_it_whole(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    target = tmp_path / "out"
    store.export("blend", target, format="jsonl")
    with pytest.raises(LineageError, match=r"--output `.*out` exists and is not empty: .* force=True to replace it"):
        store.export("blend", target)
    assert sorted(p.name for p in (target / "data").iterdir()) == ["train-00000-of-00001.jsonl"]
    store.export("blend", target, force=True)
    assert sorted(p.name for p in (target / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it
    with pytest.raises(LineageError, match="would overwrite the store's own"):
        store.export("blend", store.root / "builds" / "x")
    with pytest.raises(LineageError, match="would overwrite the store's own"):
        store.export("blend", store.root, force=True)


def test_force_replaces_an_earlier_export_and_nothing_else(mixed: Any, tmp_path: Path) -> None:
    """`--force` once deleted whatever OUTPUT held: a user's folder, another lineage store. It replaces an earlier
    export only; anything else is refused with one line and left as it was."""
    store, _, _ = mixed
    other = Store.init(tmp_path / "other-store")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("important", encoding="utf-8")
    lookalike = tmp_path / "lookalike"
    lookalike.mkdir()
    (lookalike / "manifest.json").write_text('{"name": "my package"}', encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    cases = {other.root: "is a lineage store", notes: "holds files but no export's manifest.json",
             lookalike: "has a manifest.json that is not a lineage export's", tmp_path / "file": "is a file"}
    before = {p: sorted(str(f.relative_to(p)) for f in p.rglob("*")) if p.is_dir() else p.read_text() for p in cases}
    for target, why in cases.items():
        with pytest.raises(LineageError, match=f"^--output `{re.escape(str(target))}` {why}: force=True replaces only"):
            store.export("blend", target, force=True)
        done = run_cli("--store", str(store.root), "export", "blend", "--output", str(target), "--force")
        if target.is_file():  # click's own check of a folder option: a usage error
            assert done.returncode == 2 and "is a file" in done.stderr, done.stderr
            continue
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and why in done.stderr, done.stderr
    after = {p: sorted(str(f.relative_to(p)) for f in p.rglob("*")) if p.is_dir() else p.read_text() for p in cases}
    assert after == before and (notes / "notes.txt").read_text(encoding="utf-8") == "important"
    assert other.doctor().ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "lookalike", "notes", "other-store"]


def test_a_split_that_would_be_empty_is_refused(mixed: Any, tmp_path: Path) -> None:
    """`--split validation=0.01` of a 20-sample build once wrote an empty split and exited 0; `datasets` then refused
    to load the export. Refused with one line, nothing written, in every format; a share that fills it exports."""
    store, _, _ = mixed
    store.build({"name": "tiny", "size": 20, "seed": 1})
    for fmt in ("parquet", "jsonl", "hf"):
        target = tmp_path / fmt
        with pytest.raises(LineageError, match=r"^split validation=0\.01: the validation split would hold no sample "
                           r"\(.*this build has 20 members\).*nothing was written$"):
            store.export("tiny", target, format=fmt, split=["validation=0.01"])
        assert not target.exists()
    done = run_cli("--store", str(store.root), "export", "tiny", "--output", str(tmp_path / "cli"), "--split",
                   "validation=0.01", "--split", "test=0.98")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "the train and validation splits would hold no sample" in done.stderr and not (tmp_path / "cli").exists()
    out = store.export("tiny", tmp_path / "ok", format="hf", split=["validation=0.5"])
    assert all(n > 0 for n in out.splits.values())
    import datasets

    loaded = datasets.load_from_disk(str(tmp_path / "ok"))
    assert {name: len(part) for name, part in loaded.items()} == out.splits


def test_an_export_is_refused_when_its_build_leaks_or_holds_taken_down_data_now(small_store: Store,
                                                                                 tmp_path: Path) -> None:
    """An export once wrote the build-time "clean" beside members that leaked a set protected later, or that a
    takedown had dropped. It checks the members as the store is now; the manifest and Croissant say so."""
    store = small_store
    first = store.build({"name": "b", "size": 200, "seed": 1})
    out = store.export("b", tmp_path / "ok")
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["checks"]["clean"] and not manifest["checks"]["rechecked"] and out.splits["train"] == 200
    doc = (tmp_path / "ok" / "croissant.json").read_text(encoding="utf-8")
    assert "'clean'" not in doc and "when the build was made (the protected sets are unchanged since)" in doc
    member = first.member_ids()["sample_id"][0].as_py()
    store.create_set("heldout", ids=[member], protected=True)
    with pytest.raises(LineageError, match=rf"^build b@v1 holds protected data now .*member {member}.*nothing was "
                       "written$"):
        store.export("b", tmp_path / "leak")
    second = store.build({"name": "b", "size": 200, "seed": 1})  # leaves the protected member out
    assert member not in second.member_ids()["sample_id"].to_pylist()
    store.export("b@v2", tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "manifest.json").read_text(encoding="utf-8"))["checks"]["clean"]
    gone = second.member_ids()["sample_id"][5].as_py()
    store.takedown(where=f"sample_id = '{gone}'", reason="gdpr")
    done = run_cli("--store", str(store.root), "export", "b@v2", "--output", str(tmp_path / "gone"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "build b@v2 holds 1 member(s) taken down since it was made: 1 (takedown:gdpr)" in done.stderr
    assert not (tmp_path / "leak").exists() and not (tmp_path / "gone").exists()


def test_failed_export_leaves_the_old_one(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    target = tmp_path / "out"
    store.export("blend", target)
    before = (target / "manifest.json").read_bytes()
    with pytest.raises(LineageError, match="split=validation: the share must be between 0 and 1"):
        store.export("blend", target, force=True, split=["validation=1.5"])
    with pytest.raises(LineageError, match="columns=: unknown column `body`"):
        store.export("blend", target, force=True, columns=["body"])
    assert (target / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_export(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    runner = Runner(store.root)
    result = runner("export", "blend", "--format", "hf", "--split", "validation=0.02", "--output", str(tmp_path / "o"))
    assert result.stdout.startswith("exported train ") and "licences: cc-by-4.0" in result.stdout
    assert "warning: " in result.stderr and "non-commercial: cc-by-nc-4.0" in result.stderr
    err = runner("export", "blend", "--output", str(tmp_path / "o"), code=1).stderr
    assert err == (
        f"Error: --output `{tmp_path / 'o'}` exists and is not empty: choose another folder, or --force to replace it\n"
    )
    doc = runner.json("export", "blend", "--output", str(tmp_path / "o"), "--force", "--shard-size", "1MB")
    assert doc["format"] == "parquet" and doc["columns"] == ["text", "messages"]
    err = runner("export", "blend", "--output", str(tmp_path / "p"), "--shard-size", "lots", code=1).stderr
    assert err == "Error: --shard-size `lots`: give rows (like 100000) or a size (like 500MB)\n"


# -- licences of a build: spec restriction, build show, report --------------------------------------------------


def test_spec_restricts_licences_and_build_show_lists_them(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    spec = {"name": "permissive", "size": 500, "seed": 1, "pool": {"licenses": ["CC-BY-4.0", "mit"]}}
    build = store.build(spec)
    assert {(r.license, r.non_commercial) for r in build.licenses()} <= {("cc-by-4.0", False), ("MIT", False)}
    assert sum(r.count for r in build.licenses()) == 500
    unknown = store.build({"name": "unk", "size": 100, "seed": 1, "pool": {"licenses": ["unknown"]}})
    assert [(r.license, r.count) for r in unknown.licenses()] == [("unknown", 100)]
    runner = Runner(store.root)
    shown = runner.json("build", "show", "blend")
    assert {r["license"] for r in shown["licenses"]} == {"cc-by-4.0", "MIT", "Apache-2.0", "cc-by-nc-4.0", "unknown"}
    assert any("non-commercial: cc-by-nc-4.0" in w for w in shown["license_warnings"])
    text = runner("build", "show", "blend").stdout
    assert "  licenses: cc-by-4.0 " in text and "  warning: " in text
    from lineage.report.build_data import build_data

    summary = {s["label"]: s["value"] for s in build_data(store, "blend")["summary"]}
    assert summary["licences"].startswith("5 (") and "% non-commercial" in summary["licences"]
    assert build_data(store, "permissive")["summary"][-1] == {"label": "licences", "value": "2"}


def whole(folder: Path) -> str:
    """The export's format if its manifest's files are all there with their sha256, else fail."""
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for f in manifest["files"]:
        assert hashlib.sha256((folder / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    return manifest["format"]


@pytest.mark.parametrize(("step", "left"), [("output_written", "jsonl"), ("output_exchanged", "parquet")])
def test_crash_during_force_leaves_one_whole_export(mixed: Any, tmp_path: Path, step: str, left: str) -> None:
    from conftest import run_cli

    store, _, _ = mixed
    target = tmp_path / "out"
    store.export("blend", target, format="jsonl")
    done = run_cli("--store", str(store.root), "export", "blend", "--output", str(target), "--force",
                   env={"LINEAGE_CRASH_AT": step})
    assert done.returncode == -9, done.stderr
    assert whole(target) == left
    store.export("blend", target, force=True)
    assert whole(target) == "parquet"


# -- hf: streamed in batches, with record sets mlcroissant loads -----------------------------------------------


def test_hf_export_streams_batches_with_the_same_result(mixed: Any, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    store, _, _ = mixed
    for verbatim in (False, True):
        # 3,000 members in batches of 256, windows of 1,024: the split is never read or sorted whole
        small = store.export("blend", tmp_path / f"small-{verbatim}", format="hf", split=["validation=0.1"],
                             verbatim=verbatim, with_provenance=True, batch_rows=256)
        whole = store.export("blend", tmp_path / f"whole-{verbatim}", format="hf", split=["validation=0.1"],
                             verbatim=verbatim, with_provenance=True, batch_rows=1_000_000)
        a, b = datasets.load_from_disk(str(small.path)), datasets.load_from_disk(str(whole.path))
        assert small.splits == whole.splits and small.splits["train"] > 256
        for split in small.splits:
            assert a[split].features == b[split].features and a[split].to_list() == b[split].to_list()
        assert [f["path"] for f in small.files] == [f["path"] for f in whole.files]
        mirror = sorted((small.path / "data").glob("*.parquet"))
        assert [pq.read_table(f).to_pylist() for f in mirror] == [
            pq.read_table(whole.path / "data" / f.name).to_pylist() for f in mirror]
    ids = a["train"]["_lineage_sample_id"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    record = a["train"].to_list()[0]
    assert record["id"] and "_lineage_generation" in record  # the verbatim records, with provenance


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib, inside mlcroissant
def test_hf_croissant_record_sets_load_with_mlcroissant(mixed: Any, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    mlc = pytest.importorskip("mlcroissant")
    store, _, _ = mixed
    out = store.export("blend", tmp_path / "hfcr", format="hf", split=["validation=0.1"], shard_size=1_000)
    path = out.path / "croissant.json"
    checked = mlcroissant("validate", "--jsonld", str(path))
    assert checked.returncode == 0 and "error" not in checked.stderr.lower(), checked.stderr
    assert "warning" not in checked.stderr.lower(), checked.stderr
    loaded = datasets.load_from_disk(str(out.path))
    dataset = mlc.Dataset(jsonld=path)
    for split, n in out.splits.items():
        rows = list(dataset.records(record_set=split))
        assert len(rows) == n == loaded[split].num_rows
        assert [r[f"{split}/text"].decode() for r in rows] == loaded[split]["text"]  # the rows datasets loads
    doc = json.loads(path.read_text(encoding="utf-8"))
    arrow = [d for d in doc["distribution"] if d["name"].endswith(".arrow")]
    assert len(arrow) == 4 and {d["encodingFormat"] for d in arrow} == {"application/x-arrow"}
    manifest = json.loads((out.path / "manifest.json").read_text(encoding="utf-8"))
    assert {(f["path"], f["split"]) for f in manifest["files"] if f["path"].endswith(".parquet")} == {
        ("data/train-00000-of-00001.parquet", "train"), ("data/validation-00000-of-00001.parquet", "validation")}
    whole(out.path)


# -- what a killed export leaves beside its output ---------------------------------------------------------


def _killed_export(store: Store, target: Path) -> Path:
    """Run `export --force` to `target` and kill it (-9) after it wrote its new folder: what a kill leaves."""
    from conftest import run_cli

    done = run_cli("--store", str(store.root), "export", "blend", "--output", str(target), "--force",
                   env={"LINEAGE_CRASH_AT": "output_written"})
    assert done.returncode == -9, done.stderr
    (left,) = [p for p in target.parent.glob(f".{target.name}.*.tmp") if p.is_dir()]
    return left


def _neighbours(folder: Path) -> dict[str, bytes]:
    """What a user keeps beside the export, named like leftovers but not lineage's."""
    (folder / ".out.notes.tmp").write_bytes(b"a file, not a folder lineage made")
    (folder / ".other.abc123.tmp").mkdir()
    (folder / ".other.abc123.tmp" / "x").write_bytes(b"another output's folder")
    (folder / "out-old").mkdir()
    (folder / "out-old" / "y").write_bytes(b"mine")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            and not p.is_relative_to(folder / "out")}


def _same_neighbours(folder: Path, before: dict[str, bytes]) -> None:
    after = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
             and not p.is_relative_to(folder / "out") and not p.name.startswith(".out.")}
    assert after == {k: v for k, v in before.items() if not k.startswith(".out.")}
    assert (folder / ".out.notes.tmp").read_bytes() == before[".out.notes.tmp"]


def test_next_export_removes_what_a_killed_one_left(mixed: Any, tmp_path: Path) -> None:
    store, _, _ = mixed
    target = tmp_path / "out"
    store.export("blend", target, format="jsonl")
    before = _neighbours(tmp_path)
    left = _killed_export(store, target)
    assert whole(left) == "parquet" and whole(target) == "jsonl"  # the kill left a whole new export beside
    store.export("blend", target, force=True, format="jsonl")
    assert not left.exists() and whole(target) == "jsonl"
    _same_neighbours(tmp_path, before)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")) == [".out.notes.tmp"]


def test_gc_removes_what_a_killed_export_left_and_nothing_else(mixed: Any, tmp_path: Path) -> None:
    import fcntl
    import os

    store, _, _ = mixed
    target = tmp_path / "out"
    store.export("blend", target, format="jsonl")
    before = _neighbours(tmp_path)
    left = _killed_export(store, target)
    running = tmp_path / ".out.running1.tmp"  # an export still writing holds its folder's lock
    running.mkdir()
    fd = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        store_files = {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file() and "outputs" not in p.parts}
        runner = Runner(store.root)
        listed = runner("gc").stdout
        assert str(left) in listed and str(running) not in listed and left.exists()
        runner("gc", "--yes")
        assert not left.exists() and running.exists() and whole(target) == "jsonl"
        _same_neighbours(tmp_path, before)
        assert {p: p.read_bytes() for p in store.root.rglob("*") if p.is_file() and "outputs" not in p.parts} \
            == store_files
        assert not list((store.root / "tmp" / "outputs").iterdir())  # the note of the killed export is gone too
        assert store.doctor().ok and str(left) not in runner("gc").stdout
    finally:
        os.close(fd)


# -- verbatim exports: the record's other fields -----------------------------------------------------------------


def test_a_verbatim_export_refuses_a_held_out_item_in_a_field_the_text_was_not_made_of(
    store: Store, tmp_path: Path
) -> None:
    """A verbatim export writes each record as it came; the members' check reads their text. A benchmark item in a
    `reference` field once reached a verbatim export of a build called clean: the export now reads every string
    of the members' records and refuses, naming the member and the item; without verbatim it writes what was
    checked."""
    item = "Which phrase completes this: the act or process of assigning numbers to phenomena according to a rule?"
    store.ingest([{"id": "q-1", "text": item}], origin="real", source="bench")
    store.create_set("heldout", where="source = 'bench'", protected=True)
    rng = random.Random(7)
    words = ["river", "stone", "market", "quiet", "engine", "harbour", "lantern", "orchard", "signal", "meadow"]
    docs = [{"id": f"doc-{i}", "text": " ".join(rng.choice(words) for _ in range(120)),
             "url": f"https://example.org/{i}"} for i in range(40)]
    docs[17]["reference"] = item  # the held-out item, beside a clean text
    # Realistic shapes beside them: chats and Alpaca records (one carrying the item in an extra `prompt` field).
    chats = [{"id": f"chat-{i}", "messages": [{"role": "user", "content": f"Tell me about {w}."},
                                              {"role": "assistant", "content": f"{w.title()} is a word."}]}
             for i, w in enumerate(words)]
    alpaca = [{"id": f"alp-{i}", "instruction": f"Describe a {w}.", "input": "", "output": f"A {w}, plainly."}
              for i, w in enumerate(words)]
    alpaca[3]["prompt"] = f"### Instruction:\n{item}\n\n### Response:\n"
    store.ingest(docs + chats + alpaca, origin="real", source="web")
    store.run_filter("contamination")
    build = store.build({"name": "web", "size": "max", "pool": {"where": "source = 'web'"}})
    assert build.contamination()["clean"] and build.info["size"] == 60  # the texts are clean
    runner = Runner(store.root)
    err = runner("export", "web", "--format", "jsonl", "--output", str(tmp_path / "v"), code=1).stderr
    assert err.startswith("Error: build web@v1: a verbatim export would write protected data in fields of the records "
                          "that lineage's checks do not read: member "), err
    assert re.search(r"\((alp-3|doc-17)\) leaks protected item", err) and "2 member(s) in all" in err and err.endswith(
        "nothing was written\n"), err
    assert not (tmp_path / "v").exists()
    runner("export", "web", "--format", "jsonl", "--no-verbatim", "--output", str(tmp_path / "t"))
    lines = (tmp_path / "t" / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 60 and not any("assigning numbers" in line for line in lines)
