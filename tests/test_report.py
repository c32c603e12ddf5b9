"""Reports: a build and a set of model lineages rendered as HTML, Markdown and JSON, escaped, and drawn by a
real browser (Debian's headless chromium) without touching the network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, Runner

from lineage.evals import record_eval
from lineage.models import register_model
from lineage.report import report, report_data
from lineage.report.models_data import group_lineages, prefix
from lineage.report.render import code_spans, render, to_json
from lineage.sets import create_set
from lineage.store import Store

SCRIPT = "<script>alert(1)</script>"
EVIL_SOURCE = "evil<b>bold</b>"
SOURCES = ("wordnet", "syn-v1", "syn-v2", "syn-v3")
# Shares of the four sources per generation: `replace` trades its real data for synthetic, `governed` keeps
# at least 60% real.
LINEAGES = {
    "replace": [(1.0, 0, 0, 0), (0.4, 0.3, 0.2, 0.1), (0.0, 0.2, 0.3, 0.5)],
    "governed": [(1.0, 0, 0, 0), (0.7, 0.2, 0.1, 0.0), (0.6, 0.2, 0.1, 0.1)],
}
# A reference to anything outside the file: src=/href= attributes, CSS url(...) and @import.
REMOTE = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?)(?:https?:)?//""", re.I)
MIX = {
    "name": "mix",
    "size": 300,
    "seed": 1,
    "quotas": {"origin": {"real": {"min": 0.5, "target": 0.6}},
               "source": {"syn-*": {"max": 0.4}, EVIL_SOURCE: {"min": 0.001}}},
    "floors": [{"metric": "distinct_2", "min": 0.3}],
}


def ingest_fixtures(store: Store) -> None:
    """What the `small_store` fixture holds, plus a hostile sample from a hostile source name."""
    store.ingest(FIXTURES / "real.jsonl", origin="real", source="wordnet", method="human", license="WordNet-3.0")
    for g in (1, 2, 3):
        store.ingest(FIXTURES / f"synthetic-g{g}.jsonl", origin="synthetic", source=f"syn-v{g}",
                     method="paraphrase", generator="llama-3-8b", parent_field="parent_id")
    store.ingest([{"id": "evil-1", "text": f"{SCRIPT} must show as text, not run. " * 6}], origin="real",
                 source=EVIL_SOURCE, method="human")


def lineages(store: Store) -> None:
    """Two lineages of three models; acc and output distinct_2 fall as real data leaves the builds."""
    for lineage, plan in LINEAGES.items():
        parent = None
        for i, shares in enumerate(plan, start=1):
            quotas = {"source": {s: {"min": x, "max": x} for s, x in zip(SOURCES, shares, strict=True) if x}}
            store.build({"name": f"{lineage}-b", "size": 100, "seed": i, "quotas": quotas})
            name = f"{lineage}-m{i}"
            register_model(store, name, trained_on=f"{lineage}-b@v{i}", parent=parent, notes=f"policy {lineage}")
            acc = 0.7 - 0.4 * shares[3] - 0.1 * (1 - shares[0])
            record_eval(store, name, {"acc": acc}, benchmark="heldout-qa")
            record_eval(store, name, {"distinct_2": 0.4 + 0.4 * shares[0]}, benchmark="outputs")
            parent = name


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One store for the whole module (reports only read it): filters, a protected set, build `mix`, models."""
    store = Store.init(tmp_path_factory.mktemp("report") / "store")
    ingest_fixtures(store)
    create_set(store, "heldout", where="external_id = 'wn-n-05160796-gloss'", protected=True)
    store.run_filter("contamination", engine="inline")  # else the report says Not verified (filter never ran)
    store.run_filter("exact-dedup", engine="inline")
    store.run_filter("sql", params={"where": "length(text) < 40", "reason": "too_short"}, engine="inline")
    store.build(MIX)
    lineages(store)
    return store


def no_remote_references(html: str) -> None:
    assert not REMOTE.search(html), REMOTE.search(html)
    assert "<script" not in html.lower() and "<img" not in html.lower() and "<link" not in html.lower()


def test_build_report_in_three_formats(scenario: Store, tmp_path: Path) -> None:
    paths = [report(scenario, "build", "mix@v1", output=tmp_path / f"mix.{ext}") for ext in ("html", "md", "json")]
    html, md, doc = paths[0].read_text(), paths[1].read_text(), json.loads(paths[2].read_text())
    assert doc == {**json.loads(to_json(report_data(scenario, "build", "mix"))), "generated_at": doc["generated_at"]}
    assert [s["stage"] for s in doc["funnel"]] == [
        "ingested", "after contamination", "after exact-dedup", "after sql", "pool", "selected"]
    remaining = [s["remaining"] for s in doc["funnel"]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 300
    assert remaining[0] == scenario.sql("SELECT count(*) AS n FROM samples")["n"][0].as_py()
    assert remaining[4] == doc["build"]["pool_size"]
    quota = next(q for q in doc["quotas"] if q["name"] == "origin=real")
    assert quota["chosen"] == quota["target"] == 180 and quota["status"] == "on target"
    assert doc["checks"]["protected_sets"] == ["heldout"] and doc["floors"][0]["met"]
    assert {g["group"] for g in doc["preview"]} == {"wordnet", "syn-v1", "syn-v2", "syn-v3", EVIL_SOURCE}
    assert all(len(s["text"]) <= 201 for g in doc["preview"] for s in g["samples"])
    for section in ("Quotas: target vs achieved", "Diversity floors", "Composition", "Filter funnel",
                    "Contamination check", "Sample preview"):
        assert section in html and section in md
    assert html.count("<svg ") == 5  # quotas, origin, source, generation depth, funnel
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)) > 100  # five charts' ids, prefixed per chart, never clash
    assert "<h1>mix@v1</h1>" in html and "Clean: no member holds, contains or descends from" in html
    assert "| origin=real | 180 | 150 | 300 |" in md and "| after sql |" in md
    no_remote_references(html)


def test_sample_text_and_source_names_are_escaped(scenario: Store, tmp_path: Path) -> None:
    html = report(scenario, "build", "mix", output=tmp_path / "mix.html").read_text()
    md = report(scenario, "build", "mix", output=tmp_path / "mix.md").read_text()
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert EVIL_SOURCE not in html and "<b>" not in html and "evil&lt;b&gt;bold&lt;/b&gt;" in html
    assert html.count(">evil&lt;b&gt;bold&lt;/b&gt;</text>") >= 1  # a chart label, as SVG text
    preview = md.split("## Sample preview")[1]
    assert SCRIPT not in preview and "&lt;script&gt;alert(1)&lt;/script&gt;" in preview
    assert "### evil&lt;b&gt;bold&lt;/b&gt;" in md


def test_models_report_in_three_formats(scenario: Store, tmp_path: Path) -> None:
    html = report(scenario, "models", output=tmp_path / "models.html").read_text()
    data = report_data(scenario, "models")  # what report() renders; attribution takes a second, so once
    md, doc = render(data, "md"), json.loads(render(data, "json"))
    assert doc["metric"] == "acc" and doc["benchmark"] == "heldout-qa" and doc["diversity_metric"] == "distinct_2"
    kinds = {lin["name"]: (lin["kind"], lin["models"]) for lin in doc["lineages"]}
    assert kinds == {
        "replace": ("unmitigated", ["replace-m1", "replace-m2", "replace-m3"]),
        "governed": ("mitigated", ["governed-m1", "governed-m2", "governed-m3"]),
    }
    m3 = next(m for m in doc["models"] if m["name"] == "replace-m3")
    assert (m3["generation"], m3["real_share"], m3["shares"]["source"]["syn-v3"]) == (3, 0.0, 0.5)
    assert m3["metric"] == pytest.approx(0.4) and m3["diversity"] == pytest.approx(0.4)
    assert doc["attribution"]["suspects"][0]["group"] == "syn-v3"
    # The collapse picture: unmitigated and mitigated side by side, a line per lineage; then two stacked bars.
    assert html.count("<svg ") == 3
    for text in (">unmitigated</text>", ">mitigated (real data kept)</text>", ">replace</text>", ">governed</text>"):
        assert text in html
    assert "Attribution of acc by source" in html and "syn-v3" in html
    assert "| replace | unmitigated | 3 | 0.0% |" in md and "| 1 | syn-v3 |" in md
    no_remote_references(html)


def test_models_without_evals_get_notes(small_store: Store, tmp_path: Path) -> None:
    small_store.build({"name": "base", "size": 50})
    register_model(small_store, "solo", trained_on="base")
    doc = report_data(small_store, "models")
    assert doc["metric"] is None and doc["attribution"] is None and "no eval metric recorded" in doc["notes"][0]
    html = report(small_store, "models", output=tmp_path / "m.html").read_text()
    assert "No attribution: no eval metric is recorded" in html and html.count("<svg ") == 2  # composition only
    record_eval(small_store, "solo", {"acc": 0.5}, benchmark="qa")
    assert report_data(small_store, "models")["metric"] == "acc"
    doc = report_data(small_store, "models", metric="f1")
    assert doc["attribution"] is None and doc["notes"] == ["attribution of `f1`: no model has an eval `f1`"]
    assert "No attribution: no model has a `f1` eval to attribute." in render(doc, "md")
    assert code_spans("no `<b>` eval") == "no <code>&lt;b&gt;</code> eval"  # messages: escaped, then code


def test_lineage_rules() -> None:
    assert [prefix(n) for n in ("replace-m3", "gen-12", "run7", "mix-gen2", "llama-3-8b")] == [
        ("replace", 3), ("gen", 12), ("run", 7), ("mix", 2), ("llama-3-8b", None)]
    linked = [{"name": "a1", "parent": None}, {"name": "a2", "parent": "a1"}, {"name": "b", "parent": "a1"}]
    assert [(lin["name"], lin["models"]) for lin in group_lineages(linked)] == [("a", ["a1", "a2"]), ("b", ["a1", "b"])]
    loose = [{"name": n, "parent": None} for n in ("x-g2", "y-m1", "x-g1", "y-m2")]
    assert [(lin["name"], lin["models"]) for lin in group_lineages(loose)] == [
        ("x", ["x-g1", "x-g2"]), ("y", ["y-m1", "y-m2"])]
    unrelated = [{"name": n, "parent": None} for n in ("alpha", "beta", "gamma")]
    assert [(lin["name"], lin["rule"]) for lin in group_lineages(unrelated)] == [("models", "all")]


def test_report_cli_and_one_line_errors(scenario: Store, tmp_path: Path) -> None:
    cli = Runner(scenario.root)
    out = tmp_path / "sub" / "mix.md"
    assert cli("report", "build", "mix", "--output", str(out)).stdout == f"wrote {out}\n"
    assert out.read_text().startswith("# Build report: mix@v1")
    cli("report", "models", "--output", str(tmp_path / "m.txt"), "--format", "json")
    assert json.loads((tmp_path / "m.txt").read_text())["kind"] == "models"
    missing = str(tmp_path / "x.html")
    for args, message in [
        (("build", "nope", "--output", missing), "Error: no build `nope`; `lineage builds` lists them\n"),
        (("build", "mix@2", "--output", "x.html"), "Error: build reference `mix@2` must look like NAME or NAME@vN\n"),
        (("build", "mix", "--output", "x.pdf"), "Error: cannot tell the report format from `x.pdf`: name it "
                                                ".html, .md or .json, or pass --format html|md|json\n"),
        (("models", "--output", "x.html", "--format", "pdf"), "Error: unknown report format `pdf`; choose from "
                                                              "html, md, json\n"),
    ]:
        assert cli("report", *args, code=1).stderr == message
    assert not (tmp_path / "x.html").exists()


# -- a real browser ------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
# Requests the browser makes for itself at start-up (time, account, search and, since Chromium 156, component
# update services, whatever the flags say), not for the page.
BROWSER_OWN = ("https://www.google.com/async/", "https://accounts.google.com/ListAccounts",
               "http://clients2.google.com/time/", "https://update.googleapis.com/service/update2/",
               "http://update.googleapis.com/service/update2/")


def screenshot(html: Path, png: Path, profile: Path) -> str:
    """Render `html` with headless chromium to `png`; returns its verbose log (one line per URL request)."""
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--disable-features=NetworkTimeServiceQuerying", f"--user-data-dir={profile}", "--enable-logging=stderr",
        "--v=1", f"--screenshot={png}", "--window-size=1200,3000", html.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    return done.stdout + done.stderr


def distinct_colours(png: Path) -> int:
    from matplotlib.image import imread

    pixels = imread(png)[:, :, :3].reshape(-1, 3)
    return len({tuple(p) for p in (pixels[::7] * 255).round().astype(int).tolist()})


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's `chromium` is not installed: cannot check reports in a browser")
def test_reports_render_in_headless_chromium(scenario: Store, tmp_path: Path) -> None:
    for kind, ref in (("build", "mix"), ("models", None)):
        html = report(scenario, kind, ref, output=tmp_path / f"{kind}.html")
        png = tmp_path / f"{kind}.png"
        log = screenshot(html, png, tmp_path / f"profile-{kind}")
        assert png.is_file() and png.stat().st_size > 60_000, log[-2000:]  # a blank 1200x3000 page is ~17 kB
        assert distinct_colours(png) > 200  # charts, badges and text, not a flat page
        requests = re.findall(r"NotifyBeforeURLRequest: (\S+)", log)
        assert [u for u in requests if not u.startswith(BROWSER_OWN)] == []


def test_funnel_shows_filters_the_build_does_not_honour(small_store: Store, tmp_path: Path) -> None:
    small_store.run_filter("exact-dedup", engine="inline")
    small_store.run_filter("sql", params={"where": "length(text) < 40", "reason": "too_short"}, engine="inline")
    small_store.build({"name": "partial", "size": 100, "pool": {"exclude_dropped_by": ["exact-dedup"]}})
    doc = report_data(small_store, "build", "partial")
    stages = {s["stage"]: s for s in doc["funnel"]}
    assert list(stages) == ["ingested", "after exact-dedup", "sql (not honoured)", "pool", "selected"]
    off = stages["sql (not honoured)"]
    short = small_store.sql("SELECT count(*) AS n FROM status WHERE filter = 'sql' AND decision = 'drop'")["n"][0]
    assert (off["honoured"], off["removed"]) == (False, 0) and f"its {short.as_py():,} drops stayed" in off["note"]
    assert off["remaining"] == stages["after exact-dedup"]["remaining"]
    html = report(small_store, "build", "partial", output=tmp_path / "p.html").read_text()
    assert '<tr class="off">' in html and "Greyed: filters that ran but that this build" in html
    assert ">not honoured<" in html  # the bar's label in the chart
    md = report(small_store, "build", "partial", output=tmp_path / "p.md").read_text()
    assert "| sql (not honoured) |" in md


def test_count_axes_stay_readable_at_scale() -> None:
    from lineage.report.charts import compact, hbars

    assert [compact(x) for x in (0, 950, 80_000, 120_000, 1_500_000, 2.5)] == ["0", "950", "80k", "120k", "1.5M", "2.5"]
    svg = hbars("big", "Filter funnel", ["ingested", "after near-dedup", "pool", "selected"],
                [140_000, 100_000, 80_000, 60_000], xlabel="samples")
    ticks = re.findall(r">(\d[\d.,]*[kM]?)<", str(svg))
    assert ticks and all("," not in t or t in ("140,000", "100,000", "80,000", "60,000") for t in ticks), ticks
    assert {"50k", "100k"} <= set(ticks) or {"40k", "80k", "120k"} <= set(ticks), ticks
