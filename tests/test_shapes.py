"""Every shape of training data ingests: chat `messages`, ShareGPT, [INST] templates, Alpaca JSON arrays, Hugging
Face datasets, several paths, globs, directories and stdin; each malformed case is one line naming file and place."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
from conftest import Runner, count

from lineage.cli import cli
from lineage.errors import InputError
from lineage.store import Store


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat_export(rng: random.Random, n: int) -> list[dict[str, object]]:
    """OpenAI-style chat records; ~3% are the same short exchange, some use multi-part content or tool calls."""
    rows: list[dict[str, object]] = []
    for i in range(n):
        if rng.random() < 0.03:
            messages = [{"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "I don't know."}]
        elif i % 10 == 0:
            call = {"type": "function", "function": {"name": "lookup", "arguments": json.dumps({"q": f"item {i}"})}}
            messages = [
                {"role": "user", "content": [{"type": "text", "text": f"Find item {i}."}]},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": f"item {i} is {rng.randint(1, 99)} cm"},
                {"role": "assistant", "content": f"Item {i} found."},
            ]
        else:
            messages = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"What is {i} plus {rng.randint(1, 9)}?"},
                {"role": "assistant", "content": f"About {i + rng.randint(1, 9)}."},
            ]
        rows.append({"id": f"chat-{i:05d}", "messages": messages})
    return rows


def test_chat_export_with_identical_short_answers(store: Store, tmp_path: Path) -> None:
    rows = chat_export(random.Random(5), 5000)
    shorts = sum(1 for r in rows if r["messages"][0]["content"] == "Thanks!")  # type: ignore[index]
    result = store.ingest(write_jsonl(tmp_path / "chat.jsonl", rows), origin="synthetic", source="chat", generation=1)
    assert (result.rows_stored, result.rows_duplicate) == (5000, shorts - 1)
    texts = {r["external_id"]: r["text"] for r in store.sql("SELECT external_id, text FROM samples").to_pylist()}
    assert texts["chat-00010"].startswith('user: Find item 10.\nassistant: lookup({"q": "item 10"})\ntool: item 10 is')
    assert texts["chat-00010"].endswith("\nassistant: Item 10 found.")
    assert store.run_filter("exact-dedup").dropped == shorts - 1


def test_sharegpt_inst_and_alpaca(store: Store, runner: Runner, tmp_path: Path) -> None:
    share = write_jsonl(
        tmp_path / "sharegpt.jsonl",
        [{"id": "s1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}],
    )
    inst = write_jsonl(tmp_path / "inst.jsonl", [{"id": "i1", "text": "<s>[INST] Name a colour. [/INST] Blue. </s>"}])
    alpaca = tmp_path / "alpaca_data.json"
    alpaca.write_text(
        json.dumps(
            [{"instruction": "Add.", "input": "2 and 2", "output": "4"}, {"instruction": "Greet.", "output": "Hi"}],
            indent=2,
        ),
        encoding="utf-8",
    )
    runner("ingest", str(share), str(inst), str(alpaca), "--origin", "real", "--source", "mix")
    texts = sorted(store.sql("SELECT text FROM samples")["text"].to_pylist())
    assert texts == [
        "<s>[INST] Name a colour. [/INST] Blue. </s>",
        "Add.\n\n2 and 2\n\n4",
        "Greet.\n\nHi",
        "user: Hi\nassistant: Hello!",
    ]
    assert store.sql("SELECT DISTINCT version FROM samples")["version"].to_pylist() == [1]
    uris = store.sql("SELECT input_uri, input_format FROM batches ORDER BY input_uri").to_pylist()
    assert [u["input_format"] for u in uris] == ["json", "jsonl", "jsonl"]
    assert all(Path(u["input_uri"]).is_absolute() for u in uris)

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt"}]}])
    err = runner("ingest", str(bad), "--origin", "real", "--source", "x", code=1).stderr
    assert (
        err == f"Error: {bad}:1: field `text`: conversations[1]: a turn needs a string `value`; nothing was written\n"
    )
    # OpenAI turns without content (or with a number) were stored as `user:`, the turn lost without a word; a
    # turn with content null and tool calls (an assistant calling a tool) is one.
    tools = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "get", "arguments": "{}"}}]}
    number = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 5}]
    for turns, at in (([{"role": "user"}], 0), (number, 1), ([{"role": "user", "content": None}], 0)):
        bad = write_jsonl(tmp_path / "badm.jsonl", [{"messages": [{"role": "user", "content": "ok"}, tools]},
                                                     {"messages": turns}])
        err = runner("ingest", str(bad), "--origin", "real", "--source", "x", code=1).stderr
        assert err == (f"Error: {bad}:2: field `text`: messages[{at}]: a turn needs `content` (a string or a list of "
                       "parts), or `tool_calls`; nothing was written\n")
    truncated = tmp_path / "truncated.json"
    truncated.write_text('[{"instruction": "Add.", "output": "4"}, {"instruction": "Gr', encoding="utf-8")
    err = runner("ingest", str(truncated), "--origin", "real", "--source", "x", code=1).stderr
    assert err == f"Error: `{truncated}`: not a JSON array: Unterminated string starting at (line 1, column 58)\n"
    assert store.version == 1


def test_a_text_beside_a_chat_is_refused(store: Store, runner: Runner, tmp_path: Path) -> None:
    """A record giving both a `text` and a chat once kept the text as the sample's (deduplicated, checked for
    held-out data) while exports wrote the chat as `messages`: a benchmark question in the chat reached the
    export of a build called clean. Refused now, naming the chat; an empty chat beside a text holds nothing."""
    question = {"role": "user", "content": "Which phrase completes this: the act of assigning numbers?"}
    for chat, key in (({"messages": [question]}, "messages"),
                      ({"conversations": [{"from": "human", "value": question["content"]}]}, "conversations")):
        bad = write_jsonl(tmp_path / f"{key}.jsonl", [{"id": "ok", "text": "Fine."},
                                                      {"id": "both", "text": "A summary.", **chat}])
        err = runner("ingest", str(bad), "--origin", "real", "--source", "x", code=1).stderr
        assert err == (f"Error: {bad}:2: field `text`: the record also gives a chat, `{key}`: a sample has one text, "
                       "which lineage deduplicates and checks for held-out data, and an export would write the chat "
                       "unchecked; give one of the two (without the text, the chat is rendered as `role: content` "
                       "lines); nothing was written\n")
    assert store.version == 0
    fine = write_jsonl(tmp_path / "fine.jsonl", [{"id": "a", "text": "A text.", "messages": []},
                                                 {"id": "b", "messages": [question]}])
    runner("ingest", str(fine), "--origin", "real", "--source", "x")
    texts = sorted(store.sql("SELECT text FROM samples")["text"].to_pylist())
    assert texts == ["A text.", f"user: {question['content']}"]


def test_template_escapes(store: Store, runner: Runner, tmp_path: Path) -> None:
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": "Q?", "response": "A."}])
    runner("ingest", str(qa), "--origin", "real", "--source", "qa", "--template", r"{prompt}\n\n{response}\t\\")
    assert store.sql("SELECT text FROM samples")["text"].to_pylist() == ["Q?\n\nA.\t\\"]


def test_paths_globs_directories_and_stdin(store: Store, runner: Runner, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    (shards / "part").mkdir(parents=True)
    write_jsonl(shards / "a.jsonl", [{"id": f"p{i}", "text": f"Prompt {i}."} for i in range(3)])
    with gzip.open(shards / "part" / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "p3", "text": "Prompt 3."}) + "\n")
    (shards / "README.md").write_text("not data", encoding="utf-8")
    # A file whose parents are records of the directory ingested before it, in the same command.
    child = write_jsonl(
        tmp_path / "child.jsonl", [{"id": "c1", "text": "A child.", "origin": "synthetic", "parent_ids": ["p3"]}]
    )
    out = runner("ingest", str(shards), str(child), "--origin", "real", "--source", "s")
    assert out.stdout.count(" new, ") == 3
    assert store.version == 1 and count(store) == 5
    assert store.sql("SELECT generation FROM samples WHERE external_id = 'c1'")["generation"].to_pylist() == [1]
    assert store.sql("SELECT count(*) AS n FROM batches")["n"][0].as_py() == 3

    again = runner("ingest", str(shards / "**" / "*.jsonl*"), "--origin", "real", "--source", "s").stdout
    assert again.count("0 new, ") == 2
    piped = runner.cli.invoke(
        cli,
        ["--store", str(store.root), "ingest", "-", "--origin", "real", "--source", "piped"],
        input='{"id": "x1", "text": "From a pipe."}\n',
    )
    assert piped.exit_code == 0 and piped.stdout.startswith("<stdin>: 1 new, 0 already present")
    assert store.sql("SELECT input_uri FROM samples WHERE source = 'piped'")["input_uri"].to_pylist() == ["<stdin>"]

    (tmp_path / "empty").mkdir()
    assert runner("ingest", str(tmp_path / "empty"), "--origin", "real", "--source", "x", code=1).stderr.startswith(
        f"Error: `{tmp_path / 'empty'}`: no data files (.jsonl,"
    )
    nothing = str(tmp_path / "none-*.jsonl")
    assert runner("ingest", nothing, "--origin", "real", "--source", "x", code=1).stderr == (
        f"Error: `{nothing}`: no file matches\n"
    )
    binary = runner.cli.invoke(
        cli, ["--store", str(store.root), "ingest", "-", "--origin", "real", "--source", "x"], input=b"\x00\xff\xfe\n"
    )
    assert binary.exit_code == 1
    assert binary.stderr == "Error: <stdin>:1: field `record`: not UTF-8: byte 0xff at offset 1; nothing was written\n"
    # A refused file refuses the whole command.
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "b1"}])
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "g1", "text": "Fine."}])
    assert store.version == 3
    runner("ingest", str(good), str(bad), "--origin", "real", "--source", "x", code=1)
    assert store.version == 3 and count(store, "source = 'x'") == 0


def test_zstandard_and_gzip_json_lines(store: Store, runner: Runner, tmp_path: Path) -> None:
    """`.jsonl.zst` (how many dataset dumps ship, often as several zstd frames) ingests like `.jsonl` and
    `.jsonl.gz`; a bad line still names the file and line; a corrupt or truncated file is one line."""
    import pyarrow as pa

    rows = [{"id": f"z{i}", "text": f"Compressed record number {i}.", "tags": ["zst"]} for i in range(3000)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    half = body.index(b"\n", len(body) // 2) + 1
    frames = pa.compress(body[:half], "zstd", asbytes=True) + pa.compress(body[half:], "zstd", asbytes=True)
    files = {"plain.jsonl": body, "gz.jsonl.gz": gzip.compress(body), "zst.jsonl.zst": frames}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out = runner("ingest", str(tmp_path / name), "--origin", "real", "--source", name.split(".")[0]).stdout
        assert out.startswith(f"{tmp_path / name}: 3,000 new, 0 already present"), out
    texts = {
        r["source"]: r["texts"]
        for r in store.sql("SELECT source, list(text ORDER BY input_row) AS texts FROM samples GROUP BY 1").to_pylist()
    }
    assert texts["zst"] == texts["gz"] == texts["plain"] == [r["text"] for r in rows]
    again = runner("ingest", str(tmp_path / "zst.jsonl.zst"), "--origin", "real", "--source", "zst").stdout
    assert "0 new, 3,000 already present" in again

    lines = body.splitlines(keepends=True)
    lines[2] = b'{"id": "bad", "text": \n'
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(pa.compress(b"".join(lines), "zstd", asbytes=True))
    before = store.version
    err = runner("ingest", str(bad), "--origin", "real", "--source", "b", code=1).stderr
    assert err == f"Error: {bad}:3: field `record`: malformed JSON; nothing was written\n"
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(frames[: len(frames) // 3])
    err = runner("ingest", str(cut), "--origin", "real", "--source", "c", code=1).stderr
    assert err.startswith(f"Error: `{cut}`: cannot read as zstd: ") and err.count("\n") == 1, err
    assert store.version == before


def test_hugging_face_datasets(store: Store, runner: Runner, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_list([{"id": f"hf{i}", "text": f"Dataset row {i}."} for i in range(4)])
    data.save_to_disk(str(tmp_path / "saved"))
    runner("ingest", str(tmp_path / "saved"), "--origin", "real", "--source", "hf")
    assert count(store) == 4
    arrow = sorted((tmp_path / "saved").glob("*.arrow"))[0]
    assert "0 new, 4 already present" in runner("ingest", str(arrow), "--origin", "real", "--source", "hf").stdout
    assert store.ingest(data, origin="real", source="hf-object").rows_stored == 4
    not_arrow = tmp_path / "x.arrow"
    not_arrow.write_bytes(b"not arrow at all")
    with pytest.raises(InputError, match=r"^`.*x\.arrow`: not an Arrow dataset file: "):
        store.ingest(not_arrow, origin="real", source="x")
