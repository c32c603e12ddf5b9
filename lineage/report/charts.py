"""Charts for the HTML reports: matplotlib figures rendered to SVG strings, cleaned up to be inlined, and
which charts each report gets (drawn from the same data the JSON format holds).

Figures are made with `matplotlib.figure.Figure` (no pyplot), so no global backend or figure registry is
touched. Text stays text (`svg.fonttype: none`): smaller files, crisp at any zoom, and matplotlib's XML
writer escapes it, so a source named `<b>` stays a label.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INK, MUTED, GRID, OFF = "#1f2933", "#616e7c", "#e4e7eb", "#cbd2d9"
ACCENT, RANGE, TARGET = "#3b5bdb", "#c5d0f7", "#1f2933"
ORIGIN_COLOURS = {"real": "#2f9e44", "synthetic": "#e8590c"}
# No green or orange: those mean real and synthetic in every chart, so a source never looks like an origin.
PALETTE = (
    "#3b5bdb", "#ae3ec9", "#1098ad", "#f59f00", "#e03131", "#495057", "#74c0fc", "#9c36b5",
    "#66d9e8", "#ffd43b", "#e599f7", "#868e96", "#1c7ed6", "#c2255c", "#0b7285", "#5f3dc4",
)
LABEL_CHARS = 32
HALF = 5.3  # inches: a chart in one column of the two-column grid at its natural size

STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "lineage-report",  # deterministic ids; they are prefixed per chart below
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 9,
}


def label(value: object, limit: int = LABEL_CHARS) -> str:
    """A user-supplied name as a plain matplotlib label: `$` would start mathtext, long names are cut."""
    text = str(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _legend_columns(labels: Sequence[str], width: float) -> int:
    """As many legend columns as fit the figure's width (a legend wider than its figure is cut off)."""
    entry = 0.55 + 0.075 * max((len(x) for x in labels), default=1)  # inches at legend.fontsize 9
    return max(1, min(4, len(labels), int((width - 0.3) // entry)))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@contextmanager
def figure(width: float, height: float) -> Iterator[Figure]:
    """A styled Figure; the style must be active both when artists are made and when they are saved."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        yield Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure, key: str, title: str) -> Markup:
    """The figure as an inline <svg> element: no XML prolog, DOCTYPE, metadata or comments, and ids unique
    to this chart (several charts share one HTML document). It keeps its natural size (so text is the same
    size in every chart); CSS only shrinks it to fit narrow screens."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S)
    svg = re.sub(r"<[^>]+>", lambda tag: _scoped(tag.group(0), key), svg)  # tags only: never the text
    head, rest = svg.split(">", 1)
    return Markup(f'{head} class="chart" role="img" aria-label="{escape(title)}">{rest}')


def _scoped(tag: str, key: str) -> str:
    """One SVG tag with its ids, and references to them, prefixed by the chart's key."""
    tag = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', tag)
    tag = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", tag)
    return re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', tag)


def compact(value: float) -> str:
    """A count as a short axis label: 950, 80k, 120k, 1.5M (full numbers such as `120,000` run into each other
    on a half-width chart)."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else f"{int(value)}"


def _count_axis(axis: Any) -> None:
    """At most five whole-number ticks, labelled compactly."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    axis.set_major_formatter(FuncFormatter(lambda x, _: compact(x)))


def _tidy(ax: Axes, *, categories: str) -> None:
    """Grid lines only across the value axis; none through the bars of the category axis."""
    ax.grid(axis=categories, visible=False)
    ax.set_axisbelow(True)
    ax.tick_params(length=0)


def _height(n: int) -> float:
    return 0.9 + 0.3 * max(n, 1)


def hbars(key: str, title: str, labels: Sequence[object], values: Sequence[float], *, xlabel: str,
          colours: Sequence[str] | None = None, texts: Sequence[str] | None = None) -> Markup:
    """Horizontal bars, first label on top, each bar with its value (or `texts`) at its end."""
    with figure(HALF, _height(len(labels))) as fig:
        ax = fig.add_subplot()
        ys = list(range(len(labels)))[::-1]
        bars = ax.barh(ys, values, color=list(colours or [ACCENT] * len(labels)), height=0.62)
        ax.bar_label(bars, labels=list(texts or [f"{v:,.0f}" for v in values]), padding=3, color=INK, fontsize=9)
        ax.set_yticks(ys, [label(x) for x in labels])
        ax.set_xlabel(xlabel)
        ax.set_title(label(title), loc="left")
        ax.set_xlim(0, max([*values, 1]) * 1.3)
        _count_axis(ax.xaxis)
        _tidy(ax, categories="y")
        return to_svg(fig, key, title)


def columns(key: str, title: str, labels: Sequence[object], values: Sequence[float], *, xlabel: str,
            ylabel: str) -> Markup:
    """Vertical bars (a histogram over a small discrete axis such as generation depth)."""
    with figure(HALF, 2.8) as fig:
        ax = fig.add_subplot()
        xs = list(range(len(labels)))
        bars = ax.bar(xs, values, color=ACCENT, width=0.66)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, color=INK, fontsize=9)
        ax.set_xticks(xs, [label(x) for x in labels])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, max([*values, 1]) * 1.18)
        _count_axis(ax.yaxis)
        ax.set_title(label(title), loc="left")
        _tidy(ax, categories="x")
        return to_svg(fig, key, title)


def quotas(key: str, rows: Sequence[dict[str, Any]]) -> Markup:
    """Per quota: the allowed range min..max as a pale band, the chosen count as a bar, the target as a tick."""
    title = "Quotas: chosen vs allowed range"
    with figure(8.0, _height(len(rows)) + 0.4) as fig:
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        _bounds(ax, ys, rows)
        bars = ax.barh(ys, [r["chosen"] for r in rows], height=0.34, color=ACCENT, label="chosen")
        ax.bar_label(bars, labels=[f"{r['chosen']:,}" for r in rows], padding=3, color=INK, fontsize=9)
        ax.set_yticks(ys, [label(r["name"]) for r in rows])
        ax.set_xlabel("samples")
        _count_axis(ax.xaxis)
        ax.set_title(title, loc="left")
        fig.legend(loc="outside lower center", ncols=3)
        _tidy(ax, categories="y")
        return to_svg(fig, key, title)


def _bounds(ax: Axes, ys: list[int], rows: Sequence[dict[str, Any]]) -> None:
    lows = [r["min"] or 0 for r in rows]
    spans = [(r["max"] if r["max"] is not None else r["chosen"]) - lo for r, lo in zip(rows, lows, strict=True)]
    ax.barh(ys, spans, left=lows, height=0.74, color=RANGE, label="allowed (min … max)")
    targets = [(y, r["target"]) for y, r in zip(ys, rows, strict=True) if r["target"] is not None]
    if targets:
        ax.scatter([t for _, t in targets], [y for y, _ in targets], marker="|", s=260, linewidths=2,
                   color=TARGET, label="target", zorder=3)


def funnel(key: str, stages: Sequence[dict[str, Any]]) -> Markup:
    """Samples remaining after each step, from everything ingested down to the build; a filter the build does
    not honour is a pale bar marked as such."""
    colours = [MUTED] + [ACCENT if s.get("honoured", True) else OFF for s in stages[1:-1]] + [ORIGIN_COLOURS["real"]]
    texts = [f"{s['remaining']:,}" if s.get("honoured", True) else "not honoured" for s in stages]
    return hbars(key, "Filter funnel: samples remaining", [s["stage"] for s in stages],
                 [s["remaining"] for s in stages], xlabel="samples", colours=colours[: len(stages)], texts=texts)


def stacked(key: str, title: str, rows: Sequence[str], shares: Sequence[dict[str, float]],
            groups: Sequence[str]) -> Markup:
    """One 100% bar per row (a model's build), split into groups (origin or source shares)."""
    names = [label(g) for g in groups]
    ncols = _legend_columns(names, HALF)
    with figure(HALF, _height(len(rows)) + 0.3 + 0.2 * -(-len(groups) // ncols)) as fig:
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        _segments(ax, ys, shares, groups, names)
        ax.set_yticks(ys, [label(r) for r in rows])
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter("{x:.0%}")
        ax.set_title(label(title), loc="left")
        fig.legend(loc="outside lower center", ncols=ncols)
        _tidy(ax, categories="y")
        return to_svg(fig, key, title)


def _segments(ax: Axes, ys: list[int], shares: Sequence[dict[str, float]], groups: Sequence[str],
              names: list[str]) -> None:
    left = [0.0] * len(ys)
    for i, g in enumerate(groups):
        widths = [s.get(g, 0.0) for s in shares]
        ax.barh(ys, widths, left=left, height=0.66, label=names[i], color=_group_colour(g, i))
        left = [a + b for a, b in zip(left, widths, strict=True)]


def _group_colour(group: str, i: int) -> str:
    return ORIGIN_COLOURS.get(group, colour(i))


def collapse(key: str, rows: Sequence[dict[str, Any]], cols: Sequence[dict[str, Any]]) -> Markup:
    """The model-collapse picture: one row per measure (the metric, output diversity), one column per kind
    of lineage (unmitigated, mitigated), a line per lineage over its generations. Rows share a y-axis so
    the columns compare at a glance."""
    title = " and ".join(r["title"].split("\n")[0] for r in rows) + " per generation"
    with figure(4.4 * len(cols) + 0.5, 3.0 * len(rows) + 0.6) as fig:
        fig.get_layout_engine().set(h_pad=0.12)  # room between the rows' axes
        axes = fig.subplots(len(rows), len(cols), squeeze=False, sharey="row", sharex=True)
        for r, row in enumerate(rows):
            for c, col in enumerate(cols):
                _lines(axes[r][c], row, col, first_row=r == 0, last_row=r == len(rows) - 1, first_col=c == 0)
        _generation_ticks(axes[0][0], max((len(s["x"]) for col in cols for s in col["lineages"]), default=1))
        handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines()}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 4))
        return to_svg(fig, key, title)


def _generation_ticks(ax: Axes, longest: int) -> None:
    """A tick per generation (the axes share x, so one call sets them all); past 12, whole numbers only."""
    if longest <= 12:
        ax.set_xticks(range(1, longest + 1))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def _lines(ax: Axes, row: dict[str, Any], col: dict[str, Any], *, first_row: bool, last_row: bool,
           first_col: bool) -> None:
    for series in col["lineages"]:
        points = [(x, y) for x, y in zip(series["x"], series[row["field"]], strict=True) if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=4, linewidth=1.8,
                    color=series["colour"], label=label(series["name"]))
    if first_row:
        ax.set_title(label(col["title"]), loc="left")
    if first_col:  # the axes of a row share their y scale; one label says it
        ax.set_ylabel("\n".join(label(line, 40) for line in row["title"].split("\n")))
    if last_row:
        ax.set_xlabel("generation (position in lineage)")
    ax.grid(axis="x", visible=False)


# -- which charts a report gets, drawn from its data (what the JSON format holds) ------------------------


def build_charts(data: dict[str, Any]) -> dict[str, Markup]:
    out: dict[str, Markup] = {}
    if data["quotas"]:
        out["quotas"] = quotas("quotas", data["quotas"])
    comp = data["composition"]
    for dim in ("origin", "source"):
        if comp.get(dim):
            out[dim] = _composition(dim, comp[dim])
    if comp.get("generation"):
        gens = comp["generation"]
        out["generation"] = columns(
            "generation", "Generation depth", [g["group"] for g in gens], [g["count"] for g in gens],
            xlabel="generation (0 = real)", ylabel="samples",
        )
    out["funnel"] = funnel("funnel", data["funnel"])
    return out


def _composition(dim: str, rows: list[dict[str, Any]]) -> Markup:
    colours = [ORIGIN_COLOURS.get(r["group"], colour(i)) if dim == "origin" else ACCENT
               for i, r in enumerate(rows)]
    return hbars(
        f"comp-{dim}", f"Composition by {dim}", [r["group"] for r in rows], [r["count"] for r in rows],
        xlabel="samples", colours=colours, texts=[f"{r['count']:,} ({r['share']:.1%})" for r in rows],
    )


def models_charts(data: dict[str, Any]) -> dict[str, Markup]:
    out: dict[str, Markup] = {}
    rows = _measures(data)
    if rows:
        out["collapse"] = collapse("collapse", rows, _columns(data))
    names = [m["name"] for m in data["models"] if m["build"]]
    shares = [m["shares"] for m in data["models"] if m["build"]]
    for dim in ("origin", "source"):
        if names and data["groups"][dim]:
            out[dim] = stacked(f"stack-{dim}", f"Training build by {dim}", names, [s[dim] for s in shares],
                               data["groups"][dim])
    return out


# Axis labels in words for the measures lineage and its demo record; any other metric keeps its name.
WORDS = {
    "heldout_loss": "held-out loss (bits/token)",
    "heldout_accuracy": "held-out next-word accuracy",
    "rare_survival": "rare words kept (share)",
    "tail_coverage": "tail coverage (share)",
    "distinct_1": "output distinct-1 (unique words/all)",
    "distinct_2": "output distinct-2 (unique pairs/all)",
    "self_bleu": "output self-BLEU",
}


def words(metric: str) -> str:
    return WORDS.get(metric, metric)


def _measures(data: dict[str, Any]) -> list[dict[str, Any]]:
    from lineage.report.models_data import higher_is_better

    rows = []
    if data["metric"] and any(m["metric"] is not None for m in data["models"]):
        bench = f" ({data['benchmark']})" if data["benchmark"] and data["metric"] not in WORDS else ""
        better = "higher" if data["higher_is_better"] else "lower"
        rows.append({"title": f"{words(data['metric'])}{bench}\n{better} is better", "field": "metric"})
    for extra in data.get("extra_measures", []):
        if any(m["extra"].get(extra["key"]) is not None for m in data["models"]):
            better = "higher" if higher_is_better(extra["metric"]) else "lower"
            rows.append({"title": f"{words(extra['metric'])}\n{better} is better", "field": extra["key"]})
    if data["diversity_metric"] and any(m["diversity"] is not None for m in data["models"]):
        title = words(data["diversity_metric"])
        rows.append({"title": title if title.startswith("output") else f"output {title}", "field": "diversity"})
    return rows


def _columns(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Unmitigated and mitigated lineages side by side when both exist, else one panel of all."""
    by_name = {m["name"]: m for m in data["models"]}
    series = [_series(lin, i, by_name) for i, lin in enumerate(data["lineages"])]
    kinds = {lin["kind"] for lin in data["lineages"]}
    if {"mitigated", "unmitigated"} <= kinds:
        return [
            {"title": "unmitigated", "lineages": [s for s in series if s["kind"] != "mitigated"]},
            {"title": "mitigated (real data kept)", "lineages": [s for s in series if s["kind"] == "mitigated"]},
        ]
    return [{"title": "all lineages", "lineages": series}]


def _series(lineage: dict[str, Any], i: int, by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    models = [by_name[n] for n in lineage["models"]]
    return {
        "name": lineage["name"],
        "kind": lineage["kind"],
        "colour": colour(i),
        "x": list(range(1, len(models) + 1)),
        "metric": [m["metric"] for m in models],
        "diversity": [m["diversity"] for m in models],
        **{key: [m["extra"].get(key) for m in models] for key in (models[0]["extra"] if models else {})},
    }
