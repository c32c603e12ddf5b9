"""Builds: quotas, infeasible specs, determinism, protected data, exports, diff."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, Runner

from lineage.build import Build, InfeasibleSpec, SpecError, load_spec
from lineage.build.spec import json_schema
from lineage.errors import LineageError
from lineage.store import Store

sys.path.insert(0, str(FIXTURES))
import realistic


def spec(**kw: object) -> dict:
    return {"name": "mix", "size": 400, "seed": 1, **kw}


def composition(build: Build, dim: str) -> dict[str, int]:
    return json.loads(build.info["composition"])[dim]


def test_quota_min_is_met_exactly_at_the_boundary(small_store: Store) -> None:
    b = small_store.build(spec(quotas={"origin": {"real": {"min": 0.8}}, "generation": {"3": {"max": 0}}}))
    assert composition(b, "origin")["real"] >= 320
    assert "3" not in composition(b, "generation")
    b = small_store.build(spec(size=600, quotas={"origin": {"real": {"max": 0.25}}}))
    assert composition(b, "origin")["real"] == 150  # the max binds: 25% of 600


def test_two_dimensions_at_once_and_targets(small_store: Store) -> None:
    b = small_store.build(
        spec(
            quotas={
                "origin": {"real": {"min": 0.5, "max": 0.5}},
                "source": {"syn-v1": {"target": 0.3}, "syn-v[23]": {"min": 0.1, "max": 0.2}},
            }
        )
    )
    comp = composition(b, "source")
    assert comp["wordnet"] == 200 and comp["syn-v1"] == 120
    assert 40 <= comp.get("syn-v2", 0) + comp.get("syn-v3", 0) <= 80
    table = json.loads(b.info["allocation"])
    quota = next(r for r in table if r["name"] == "source=syn-v1")
    assert (quota["target"], quota["chosen"], quota["available"]) == (120, 120, 300)


def test_size_max_is_the_largest_build_the_quotas_allow(small_store: Store, tmp_path: Path) -> None:
    """`size: max` takes all the pool can give under the quotas: with real >= 60%, every real sample and
    synthetic ones up to 40% of the whole; without quotas, the whole pool."""
    pool = small_store.build(spec(size=1), dry_run=True).pool_size
    real = small_store.sql("SELECT count(*) AS n FROM samples WHERE origin = 'real'")["n"][0].as_py()
    whole = small_store.build(spec(name="whole", size="max"))
    assert whole.info["size"] == pool and json.loads(whole.info["spec"])["size"] == pool  # recorded as the number
    mixed = small_store.build(spec(name="mixed", size="max", quotas={"origin": {"real": {"min": 0.6}}}))
    expected = min(pool, int(real / 0.6))
    assert real < pool and expected < pool  # the quota binds here, or this proves nothing
    assert mixed.info["size"] == expected and composition(mixed, "origin")["real"] == real
    with pytest.raises(InfeasibleSpec, match="size max: the pool is empty"):
        small_store.build(spec(name="none", size="max", pool={"where": "false"}))
    with pytest.raises(InfeasibleSpec, match="size max: quota origin=nothing min 10% needs samples; the pool has 0 "
                       "nothing samples after filters"):
        small_store.build(spec(name="none", size="max", quotas={"origin": {"nothing": {"min": 0.1}}}))
    # A hard target on what the pool lacks: not a build of 4 in which 10% rounds to none and reads "on target".
    with pytest.raises(InfeasibleSpec, match="size max: quota source=nothing hard target 10% needs samples"):
        small_store.build(spec(name="none", size="max", quotas={"source": {"nothing": {"target": 0.1, "hard": True}}}))
    (tmp_path / "m.yaml").write_text("name: m\nsize: max\nquotas:\n  origin:\n    real: {min: 0.6}\n")
    out = Runner(small_store.root)("build", str(tmp_path / "m.yaml"), "--dry-run").stdout
    assert f"dry run m: {expected:,} samples (size: max) from a pool of {pool:,}" in out, out


@pytest.mark.parametrize("seed", range(40))
def test_max_size_is_the_largest_feasible_size(seed: int) -> None:
    """Against brute force: the largest size whose allocation exists, on random pools and quotas."""
    import random

    from lineage.build.allocate import _max_size, _solve, quotas
    from lineage.build.pool import Pool
    from lineage.build.spec import BuildSpec

    r = random.Random(seed)
    cells = [({"origin": o, "source": s}, r.randint(0, 12)) for o in ("real", "synthetic") for s in ("a", "b")]
    shares: dict = {"origin": {}, "source": {}}
    for dim, value in r.sample([("origin", "real"), ("origin", "synthetic"), ("source", "a"), ("source", "b")], 2):
        kind = r.choice(["min", "max", "hard", "both"])
        x = round(r.uniform(0.05, 0.95), 2)
        shares[dim][value] = ({"target": x, "hard": True} if kind == "hard" else
                              {"min": x / 2, "max": x} if kind == "both" else {kind: x})
    pool = Pool(sum(a for _, a in cells), sum(a for _, a in cells), cells)
    qs = quotas(BuildSpec(name="x", size=1, quotas={k: v for k, v in shares.items() if v}), pool)
    # A positive hard target takes at least one sample (else a build small enough to round it to none would do).
    positive = [q for q in qs if q.share.hard and q.share.target]
    brute = next((n for n in range(pool.size, 0, -1)
                  if _solve(n, pool, qs) is not None and all(q.bounds(n)[0] >= 1 for q in positive)), 0)
    assert _max_size(pool, qs) == brute, (cells, shares)


def test_max_size_gives_a_positive_hard_target_a_sample() -> None:
    """A 10% hard target on 0 real samples: sizes up to 4 round it to none, which would be "on target"; the
    largest build in which the target takes a sample does not exist, so max is 0 (and `resolve_size` says why)."""
    from lineage.build.allocate import _max_size, _solve, quotas
    from lineage.build.pool import Pool
    from lineage.build.spec import BuildSpec

    cells = [({"origin": "real"}, 0), ({"origin": "synthetic"}, 50)]
    pool = Pool(50, 50, cells)
    qs = quotas(BuildSpec(name="x", size=1, quotas={"origin": {"real": {"target": 0.1, "hard": True}}}), pool)
    assert _solve(4, pool, qs) is not None  # what a maximum without the rule would take
    assert _max_size(pool, qs) == 0
    cells[0] = ({"origin": "real"}, 2)  # two real samples: 10% of 25 rounds to 2 (half to even), of 26 to 3
    assert _max_size(Pool(52, 52, cells), quotas(BuildSpec(name="x", size=1, quotas={
        "origin": {"real": {"target": 0.1, "hard": True}}}), Pool(52, 52, cells))) == 25


def test_expr_quota(small_store: Store) -> None:
    b = small_store.build(spec(expr=[{"name": "long", "sql": "length(text) > 120", "min": 0.4}]))
    n = b.members(columns="length(text) AS n")
    assert sum(1 for x in n["n"].to_pylist() if x > 120) >= 160


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"size": 5000},
            "size 5,000 needs 5,000 samples; the pool has 1,125 after filters, protected sets and the pool's "
            "limits (1,125 match the pool's `where`)",
        ),
        (
            {"size": 300, "pool": {"licenses": ["cc-by-nc"], "max_generation": 1}},
            "size 300 needs 300 samples; the pool has 0 after filters, protected sets and the pool's limits "
            "(licenses cc-by-nc, max_generation 1) (1,125 match the pool's `where`)",
        ),
        (
            {"quotas": {"origin": {"real": {"min": 0.9}}}, "size": 1000},
            "quota origin=real min 90% of 1,000 needs 900; the pool has 600 real samples after filters",
        ),
        (
            {"quotas": {"origin": {"real": {"max": 0.3}}, "source": {"wordnet": {"min": 0.5}}}},
            "quota origin=real (min 0, max 120 of 400; 600 available) cannot hold together with the other quotas",
        ),
    ],
)
def test_infeasible_specs_fail_before_writing(small_store: Store, kw: dict, message: str) -> None:
    with pytest.raises(InfeasibleSpec) as err:
        small_store.build(spec(**kw))
    assert str(err.value).startswith(message)
    assert small_store.version == 4 and not list((small_store.root / "builds").iterdir())


def test_same_version_spec_and_seed_give_identical_members(small_store: Store) -> None:
    s = spec(quotas={"origin": {"real": {"min": 0.6}}})
    a, b = small_store.build(s), small_store.build(s)
    assert a.member_ids().equals(b.member_ids())
    assert not small_store.build({**s, "seed": 2}).member_ids().equals(a.member_ids())
    small_store.ingest(FIXTURES / "mixed.jsonl")
    later = small_store.build(s, as_of=4)
    assert later.member_ids().equals(a.member_ids()) and later.info["store_version"] == 4


def test_protected_and_tainted_never_enter_even_when_selected(small_store: Store) -> None:
    root = small_store.sample("syn3-00001")["ancestors"][-1]["sample_id"]
    from lineage.sets import create_set

    create_set(small_store, "heldout", where=f"sample_id = '{root}'", protected=True)
    small_store.ingest([{"text": small_store.sample(root)["sample"]["text"]}], origin="real", source="copy")
    everything = small_store.build(spec(size=1121, pool={"where": "true"}))
    members = set(everything.member_ids()["sample_id"].to_pylist())
    chain = {root, *[d["sample_id"] for d in small_store.sample(root)["descendants"]]}
    assert not members & chain
    assert everything.info["pool_size"] == 1126 - 1 - 3 - 1  # the root, its 3 descendants, the copied text
    checks = json.loads(everything.info["checks"])
    assert {k: checks[k] for k in ("protected_sets", "protected_samples", "clean", "leaks")} == {
        "protected_sets": ["heldout"], "protected_samples": 1, "clean": True, "leaks": []}
    assert all(checks[f"{m}_matches"] == 0 for m in ("exact", "near", "contained", "lineage"))


def test_a_spec_naming_a_set_that_protects_nothing_is_refused(small_store: Store) -> None:
    """`protected: [heldot]` once protected nothing: every held-out item entered the build, whose check then said
    there was no protected set. An unknown or unprotected name, or an empty list, fails before anything is read."""
    root = small_store.sample("syn3-00001")["ancestors"][-1]["sample_id"]
    chain = {root, *[d["sample_id"] for d in small_store.sample(root)["descendants"]]}
    small_store.create_set("heldout", where=f"sample_id = '{root}'", protected=True)
    small_store.create_set("plain", where="external_id = 'wn-n-09474162-ex4'")
    for names, message in (
        (["heldot"], "spec protected: no set `heldot` (protected sets: heldout)"),
        (["plain"], "spec protected: set `plain` is not protected (protected sets: heldout)"),
        ([], "protected: names no set; leave it out to keep every protected set out of the build"),
    ):
        with pytest.raises(LineageError, match=re.escape(message)):
            small_store.build(spec(size="max", protected=names))
    assert small_store.build(spec(size="max", protected=["heldout"]), dry_run=True).pool_size == 1_125 - len(chain)


def test_members_descending_from_a_sample_that_contains_a_protected_item_are_not_called_clean(
    small_store: Store,
) -> None:
    """The build's own check follows descendants of protected samples; the filter, descendants of any sample that
    contains a protected item. A parent protected (by a copy of its text) after the build: `build show` says NOT
    VERIFIED until the filter runs, then counts the filter's drops among the members: CONTAMINATED, and the
    export and `check` refuse. The same for a build made with `--allow-stale` over samples the filter had not seen."""
    store, runner = small_store, Runner(small_store.root)
    item = "Which river flows through the city of Lyon before it meets the Saone at the confluence? The Rhone does."
    words = [f"filler{i}" for i in range(300)]
    doc = " ".join(words[:150]) + " " + item + " " + " ".join(words[150:])  # a document with the item inside
    store.ingest([{"id": "doc-1", "text": doc}], origin="real", source="web")
    store.ingest([{"id": f"kid-{i}", "text": f"A short summary number {i} of a page about rivers.", "parent": "doc-1"}
                  for i in range(3)], origin="synthetic", source="kids", parent_field="parent")
    store.create_set("first", where="external_id = 'wn-n-11137334-gloss'", protected=True)
    store.build(spec(name="early", size="max", pool={"where": "source = 'kids'"}))
    assert "NOT VERIFIED: no leak found against 1 protected items" in runner("build", "show", "early").stdout
    assert "the contamination filter has never run" in runner("build", "show", "early").stdout
    store.run_filter("contamination")
    assert "contamination: clean against 1 protected items" in runner("build", "show", "early").stdout
    kids = store.build(spec(name="kids", size="max", pool={"where": "source = 'kids'"}))
    store.ingest([{"id": "bench-1", "text": item}], origin="real", source="bench")
    store.create_set("bench", where="source = 'bench'", protected=True)  # after the build and the filter's run
    shown = runner("build", "show", "kids").stdout
    assert "contamination: NOT VERIFIED: no leak found against 2 protected items" in shown, shown
    assert "the protected sets changed after the contamination filter last ran" in shown, shown
    report = store.root.parent / "kids.md"
    runner("report", "build", "kids", "--output", str(report))
    assert "**Not verified: no leak found against the 2 protected items" in report.read_text(encoding="utf-8")
    store.run_filter("contamination")
    check = kids.contamination()
    assert not check["clean"] and check["filter_matches"] == 3, check
    assert {x["reason"] for x in check["leaks"]} == {"contaminated_lineage"}
    assert "dropped by the contamination filter 3" in runner("build", "show", "kids").stdout
    runner("report", "build", "kids", "--output", str(report))
    assert "**Contaminated: 3 members leak protected data" in report.read_text(encoding="utf-8")
    with pytest.raises(LineageError, match="leak"):
        kids.export(store.root.parent / "kids-export")

    store.ingest([{"id": "late-1", "text": "A late summary of a page about rivers.", "parent": "doc-1"}],
                 origin="synthetic", source="late", parent_field="parent")
    late = store.build(spec(name="late", size="max", pool={"where": "source = 'late'"}), allow_stale=True)
    assert late.contamination()["unverified"].startswith("the contamination filter had not seen 1 samples")
    assert "NOT VERIFIED" in runner("build", "show", "late").stdout
    store.run_filter("contamination", new_only=True)
    assert late.contamination()["unverified"] is None and not late.contamination()["clean"]


def test_a_build_from_an_earlier_version_leaves_out_what_is_excluded_now(small_store: Store) -> None:
    """`--as-of` (and a policy's rollback) once drew the store as it was, protected sets and takedowns included:
    a set protected later, a sample taken down later, entered the build and its checks said clean. What the store
    excludes now stays out, whatever version the pool is drawn from; the checks are against the sets of now."""
    store = small_store
    before = store.version
    root = store.sample("syn3-00001")["ancestors"][-1]["sample_id"]
    chain = {root, *[d["sample_id"] for d in store.sample(root)["descendants"]]}
    store.ingest([{"text": store.sample(root)["sample"]["text"]}], origin="real", source="copy")  # a copy, later
    store.create_set("heldout", where=f"sample_id = '{root}'", protected=True)
    gone = store.sql("SELECT sample_id FROM samples WHERE external_id = 'syn1-00005'")["sample_id"][0].as_py()
    store.takedown(where="external_id = 'syn1-00005'", reason="gdpr")
    gone_chain = {gone, *[d["sample_id"] for d in store.sample(gone)["descendants"]]}
    everything = spec(name="old", size=1125 - len(chain) - len(gone_chain), pool={"where": "true"})
    assert store.build(everything, dry_run=True, as_of=before).pool_size == 1125 - len(chain) - len(gone_chain)
    old = store.build(everything, as_of=before)
    assert old.info["pool_size"] == 1125 - len(chain) - len(gone_chain)
    members = set(old.member_ids()["sample_id"].to_pylist())
    assert len(members) == 1125 - len(chain) - len(gone_chain) and not members & (chain | gone_chain)
    assert old.info["store_version"] == before
    checks = json.loads(old.info["checks"])
    assert checks["clean"] and checks["protected_sets"] == ["heldout"] and checks["protected_samples"] == 1


def test_an_earlier_version_build_leaves_out_documents_and_chats_found_contaminated_since(store: Store) -> None:
    """The shapes teams have: a 400-word web document with a benchmark item somewhere inside, a chat quoting it, an
    Alpaca record, identical short answers; the benchmark arrives (a protected set) after them, and `contamination`
    drops the leaks. A build `--as-of` the version before still leaves the leaks out."""
    import random

    rng = random.Random(11)
    words = [f"w{i}" for i in range(3000)]
    item = "Which river flows through the city of Khartoum where the Blue and White Nile meet in Sudan?"
    doc = " ".join(rng.choices(words, k=200)) + " " + item + " " + " ".join(rng.choices(words, k=200))
    others = [{"id": f"web-{i}", "text": " ".join(rng.choices(words, k=300))} for i in range(20)]
    store.ingest([{"id": "web-leak", "text": doc}, *others], origin="real", source="web")
    def chat(question: str, answer: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    yes = [{"id": f"yes-{i}", "messages": chat(f"Is {i} even?", "Yes.")} for i in range(0, 20, 2)]
    alpaca = {"id": "alpaca", "instruction": "Name a river.", "input": "", "output": "The Amazon."}
    store.ingest([{"id": "chat-leak", "messages": chat(item, "The Nile.")}, *yes, alpaca], origin="synthetic",
                 source="chat", generation=1)
    before = store.version
    store.ingest([{"id": "q1", "text": item}], origin="real", source="bench", set_name="bench")
    store.create_set("bench-protected", where="source = 'bench'", protected=True)
    dropped = store.run_filter("contamination").dropped
    assert dropped >= 2
    leaks = set(store.sql("SELECT sample_id FROM status WHERE filter = 'contamination' AND decision = 'drop'")
                ["sample_id"].to_pylist())
    leaked_ids = set(store.sql(
        "SELECT external_id FROM samples WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
        params=[sorted(leaks)])["external_id"].to_pylist())
    assert {"web-leak", "chat-leak"} <= leaked_ids
    total = store.at(before).sql("SELECT count(*) AS n FROM samples")["n"][0].as_py()
    old = store.build({"name": "old", "size": total - len(leaks), "seed": 1, "pool": {"where": "true"}},
                      as_of=before)
    members = set(old.member_ids()["sample_id"].to_pylist())
    assert not members & leaks and len(members) == total - len(leaks) == 33 - len(leaks)  # 21 web, 12 chat
    assert json.loads(old.info["checks"])["clean"] and old.info["store_version"] == before


def test_filter_drops_are_honoured(small_store: Store) -> None:
    small_store.run_filter("exact-dedup")
    b = small_store.build(spec(size=1115))
    assert b.info["pool_size"] == 1115
    b2 = small_store.build(spec(size=1125, pool={"exclude_dropped_by": []}))
    assert b2.info["pool_size"] == 1125


BAD_SIZE = 'must be a whole number from 1 to 10,000,000,000, or "max"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"name": "b", "size": 10, "quotas": {"origin": {"real": {"min": 1.4}}}},
            "spec: quotas.origin.real.min: must be between 0 and 1, got 1.4",
        ),
        ({"name": "b", "size": 10, "colour": "red"}, "spec: colour: unknown key, got 'red'"),
        ({"name": "b", "size": "many"}, f"spec: size: {BAD_SIZE}; got 'many'"),
        ({"name": "b", "size": 0}, f"spec: size: {BAD_SIZE}; got 0"),
        (
            {"name": "b", "size": 10, "quotas": {"origin": {"real": {"min": 0.7}, "synthetic": {"min": 0.6}}}},
            "spec: quotas: the min shares of `origin` sum to 1.3, past 1",
        ),
        ({"name": "../../etc", "size": 10}, "spec: name: build name `../../etc` is not allowed"),
        ({"size": 10}, "spec: name: Field required"),
    ],
)
def test_bad_specs_are_one_line(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(data)
    assert str(err.value).startswith(message)


def test_spec_formats_and_file_errors(tmp_path: Path, runner: Runner) -> None:
    (tmp_path / "s.toml").write_text('name = "t"\nsize = 5\n[quotas.origin.real]\nmin = 0.5\n', encoding="utf-8")
    (tmp_path / "s.json").write_text('{"name": "j", "size": 5}', encoding="utf-8")
    assert load_spec(tmp_path / "s.toml").quotas["origin"]["real"].min == 0.5
    assert load_spec(tmp_path / "s.json").name == "j"
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    result = runner("build", str(tmp_path / "bad.yaml"), code=1)
    assert result.stderr.startswith(f"Error: `{tmp_path / 'bad.yaml'}`: not valid YAML:")


def test_the_spec_in_build_help_builds(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    """`lineage build --help` shows a spec: it is valid, and `size: max` in it dry-runs to the most the quota
    allows (at least half real: every real sample not protected, and synthetic ones up to as many)."""
    import textwrap

    help_text = runner("build", "--help").stdout
    block = help_text[help_text.index("    name: mix"):help_text.index("  Examples:")]
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(block), encoding="utf-8")
    root = small_store.sql("SELECT sample_id FROM samples WHERE origin = 'real' LIMIT 1")["sample_id"][0].as_py()
    small_store.create_set("heldout", where=f"sample_id = '{root}'", protected=True)
    plan = runner.json("build", str(tmp_path / "spec.yaml"), "--dry-run")
    real = small_store.sql("SELECT count(*) AS n FROM samples WHERE origin = 'real'")["n"][0].as_py() - 1
    (row,) = [r for r in plan["allocation"] if r["name"] == "origin=real"]
    assert row["available"] == row["chosen"] == real  # every real sample but the protected one
    assert plan["size"] == min(plan["pool_size"], 2 * real) and plan["pool_size"] == 1_125 - 2  # and its child
    assert plan["summary"].startswith(f"dry run mix: {plan['size']:,} samples (size: max)"), plan


def test_published_json_schema_is_current() -> None:
    published = Path(__file__).parent.parent / "lineage" / "schemas" / "build_spec.schema.json"
    current = json.loads(published.read_text(encoding="utf-8"))
    assert current == json_schema(), "regenerate it: python -m lineage.build.spec"


def test_cli_dry_run_writes_nothing_then_build_show_diff(runner: Runner, small_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: mix\nsize: 300\nquotas:\n  origin:\n    real: {min: 0.5}\n", encoding="utf-8")
    out = runner("build", str(path), "--dry-run", "--json")
    plan = json.loads(out.stdout)
    assert plan["summary"].startswith("dry run mix: 300 samples from a pool of 1,125")
    assert small_store.version == 4
    runner("build", str(path))
    path.write_text("name: mix\nsize: 300\nseed: 5\nquotas:\n  origin:\n    real: {min: 0.9}\n", encoding="utf-8")
    runner("build", str(path))
    shown = runner.json("build", "show", "mix@v1")
    assert shown["size"] == 300 and shown["composition"]["origin"]["real"] >= 150
    d = runner.json("diff", "mix@v1", "mix@v2")
    assert d["members"]["a"] == d["members"]["b"] == 300 and d["spec_changed"]
    assert runner("build", "show", "mix@v9", code=1).stderr == "Error: no build `mix@v9`; `lineage builds` lists them\n"
    assert [r["build_version"] for r in runner.json("builds")] == [1, 2]


def test_exports_round_trip(small_store: Store, tmp_path: Path) -> None:
    b = small_store.build(spec(size=200, quotas={"origin": {"real": {"min": 0.5}}}))
    out = b.export(tmp_path / "jsonl", format="jsonl").path
    lines = (out / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8").splitlines()
    originals = set()
    for name in ("real.jsonl", "synthetic-g1.jsonl", "synthetic-g2.jsonl", "synthetic-g3.jsonl"):
        originals |= set((FIXTURES / name).read_text(encoding="utf-8").splitlines())
    assert len(lines) == 200 and set(lines) <= originals  # byte-for-byte input lines
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["files"][0]
    assert entry["path"] == "data/train-00000-of-00001.jsonl" and len(entry["sha256"]) == 64
    croissant = json.loads((out / "croissant.json").read_text(encoding="utf-8"))
    assert croissant["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert croissant["lineage:syntheticShare"] == round(composition(b, "origin").get("synthetic", 0) / 200, 6)
    out = b.export(tmp_path / "pq", format="parquet", verbatim=True, with_provenance=True).path
    table = pq.read_table(out / "data" / "train-00000-of-00001.parquet")
    assert table.num_rows == 200 and "_lineage_origin" in table.column_names
    records = [json.loads(line) for line in lines]
    got = sorted(
        table.select([c for c in table.column_names if not c.startswith("_lineage_")]).to_pylist(),
        key=lambda r: r["id"],
    )
    want = sorted(records, key=lambda r: r["id"])
    assert [{k: v for k, v in r.items() if v is not None} for r in got] == want


def test_floors_met_are_recorded_and_missed_refuse(small_store: Store) -> None:
    floors = [{"metric": "distinct_2", "min": 0.5}, {"metric": "self_bleu", "max": 0.9, "by": "origin"}]
    b = small_store.build(spec(size=300, quotas={"origin": {"real": {"min": 0.5}}}, floors=floors))
    rows = json.loads(b.info["floors"])
    assert [(r["metric"], r["bound"], r["met"]) for r in rows] == [
        ("distinct_2", "min", True), ("self_bleu", "max", True), ("self_bleu", "max", True)]
    assert all(r["achieved"] is not None for r in rows)
    from lineage.build.floors import FloorNotMet

    with pytest.raises(FloorNotMet, match=r"floor distinct_1 min 0.9 not met: the build reaches 0\.\d+"):
        small_store.build(spec(size=300, floors=[{"metric": "distinct_1", "min": 0.9}]))
    assert small_store.sql("SELECT count(*) AS n FROM builds")["n"][0].as_py() == 1


def test_two_floors_by_one_dimension(small_store: Store) -> None:
    """Two floors by `origin` (no quota on it) once failed with DuckDB's "Duplicate named argument", blamed on the
    spec's `where`: both are measured, per origin."""
    floors = [
        {"metric": "self_bleu", "max": 0.9, "by": "origin"}, {"metric": "distinct_2", "min": 0.1, "by": "origin"},
        {"metric": "distinct_1", "min": 0.1, "by": "source"}, {"metric": "self_bleu", "max": 0.95, "by": "source"},
    ]
    b = small_store.build(spec(size=300, floors=floors))
    rows = json.loads(b.info["floors"])
    measured = {(r["metric"], *json.loads(r["group"])) for r in rows if r["achieved"] is not None and r["met"]}
    assert measured == {("self_bleu", "origin"), ("distinct_2", "origin"), ("distinct_1", "source"),
                        ("self_bleu", "source")}, rows
    assert len(rows) == 2 * 2 + 2 * 4  # a row per floor and group: two origins, four sources


def test_bad_floors() -> None:
    with pytest.raises(SpecError, match=r"floors\.0: unknown metric `diversity`"):
        load_spec(spec(floors=[{"metric": "diversity", "min": 1}]))
    with pytest.raises(SpecError, match=r"floors\.0: give exactly one of min or max"):
        load_spec(spec(floors=[{"metric": "distinct_1"}]))


def test_hf_export_loads_back(small_store: Store, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the hf export needs the `hf` extra")
    b = small_store.build(spec(size=50))
    out = b.export(tmp_path / "hf", format="hf", verbatim=True, with_provenance=True).path
    loaded = datasets.load_from_disk(str(out))
    assert loaded.num_rows == 50 and "_lineage_generation" in loaded.column_names
    ids = {r["id"] for r in loaded}
    assert ids == set(b.members(columns="external_id")["external_id"].to_pylist())
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["format"] == "hf"


def test_the_rest_of_a_build_follows_the_pool_when_a_target_takes_most(store: Store, tmp_path: Path) -> None:
    """A target on one source leaves 40 of 400 samples: they are drawn like the pool (each other source its share),
    not all from whichever source the solver happens to reach first."""
    realistic.write(realistic.make(seed=4, n=200), tmp_path)
    for name, origin in (("chat", "synthetic"), ("sharegpt", "synthetic"), ("inst", "synthetic"), ("docs", "real")):
        store.ingest(tmp_path / f"{name}.jsonl", origin=origin, source=name, generation=int(origin == "synthetic"))
    store.ingest(tmp_path / "alpaca.json", origin="synthetic", source="alpaca", generation=1)
    # A source of two samples: its share of the 40 rounds to 0, which must not free the others from theirs.
    store.ingest(realistic.make(seed=4, n=200)["unicode"][:2], origin="real", source="tiny")
    b = store.build(spec(size=200, quotas={"source": {"sharegpt": {"target": 0.8}}}))
    got = composition(b, "source")
    assert got.pop("sharegpt") == 160 and got.pop("tiny", 0) <= 1
    assert sorted(got) == ["alpaca", "chat", "docs", "inst"]
    assert all(9 <= n <= 11 for n in got.values()), got  # 40 over four sources of 200 samples each


def test_a_provenance_field_never_given_shows_as_unknown(store: Store, tmp_path: Path) -> None:
    """Chats ingested without --method or --language: `build show`, the report and the build row say `unknown`
    for them, as for licences, never Python's `None`."""
    realistic.write(realistic.make(seed=7, n=100), tmp_path)
    store.ingest(tmp_path / "chat.jsonl", origin="synthetic", source="chat", generation=1)
    store.ingest(tmp_path / "docs.jsonl", origin="real", source="web", method="human")
    build = store.build(spec(size=100))
    methods = composition(build, "method")
    assert sorted(methods) == ["human", "unknown"] and sum(methods.values()) == 100
    shown = Runner(store.root)("build", "show", "mix").stdout
    assert f"method: human {methods['human']}, unknown {methods['unknown']}" in shown and "None" not in shown
    report = store.report("build", "mix", output=tmp_path / "mix.md").read_text()
    assert f"| unknown | {methods['unknown']} |" in report and "None" not in report
