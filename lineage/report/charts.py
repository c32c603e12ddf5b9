"""Charts for the HTML reports: matplotlib figures rendered to SVG strings, cleaned up to be inlined.

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

INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
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


def label(value: object) -> str:
    """A user-supplied name as a plain matplotlib label: `$` would start mathtext, long names are cut."""
    text = str(value)
    text = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
    return text.replace("$", r"\$")


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
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', svg)
    head, rest = svg.split(">", 1)
    return Markup(f'{head} class="chart" role="img" aria-label="{escape(title)}">{rest}')


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
        ax.set_title(label(title), loc="left")
        _tidy(ax, categories="x")
        return to_svg(fig, key, title)


def quotas(key: str, rows: Sequence[dict[str, Any]]) -> Markup:
    """Per quota: the allowed range min..max as a pale band, the chosen count as a bar, the target as a tick."""
    title = "Quotas: chosen vs allowed range"
    with figure(8.0, _height(len(rows)) + 0.35) as fig:
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        lows = [r["min"] or 0 for r in rows]
        spans = [(r["max"] if r["max"] is not None else r["chosen"]) - lo for r, lo in zip(rows, lows, strict=True)]
        ax.barh(ys, spans, left=lows, height=0.74, color=RANGE, label="allowed (min … max)")
        bars = ax.barh(ys, [r["chosen"] for r in rows], height=0.34, color=ACCENT, label="chosen")
        ax.bar_label(bars, labels=[f"{r['chosen']:,}" for r in rows], padding=3, color=INK, fontsize=9)
        targets = [(y, r["target"]) for y, r in zip(ys, rows, strict=True) if r["target"] is not None]
        if targets:
            ax.scatter([t for _, t in targets], [y for y, _ in targets], marker="|", s=260, linewidths=2,
                       color=TARGET, label="target", zorder=3)
        ax.set_yticks(ys, [label(r["name"]) for r in rows])
        ax.set_xlabel("samples")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / _height(len(rows))), ncols=3)
        _tidy(ax, categories="y")
        return to_svg(fig, key, title)


def funnel(key: str, stages: Sequence[dict[str, Any]]) -> Markup:
    """Samples remaining after each step, from everything ingested down to the build."""
    colours = [MUTED] + [ACCENT] * (len(stages) - 2) + [ORIGIN_COLOURS["real"]]
    return hbars(key, "Filter funnel: samples remaining", [s["stage"] for s in stages],
                 [s["remaining"] for s in stages], xlabel="samples", colours=colours[: len(stages)])


def stacked(key: str, title: str, rows: Sequence[str], shares: Sequence[dict[str, float]],
            groups: Sequence[str]) -> Markup:
    """One 100% bar per row (a model's build), split into groups (origin or source shares)."""
    with figure(HALF, _height(len(rows)) + 0.25 + 0.18 * ((len(groups) + 3) // 4)) as fig:
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        left = [0.0] * len(rows)
        for i, g in enumerate(groups):
            widths = [s.get(g, 0.0) for s in shares]
            ax.barh(ys, widths, left=left, height=0.66, label=label(g), color=_group_colour(g, i))
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(ys, [label(r) for r in rows])
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter("{x:.0%}")
        ax.set_title(label(title), loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.25 / _height(len(rows))), ncols=4)
        _tidy(ax, categories="y")
        return to_svg(fig, key, title)


def _group_colour(group: str, i: int) -> str:
    return ORIGIN_COLOURS.get(group, colour(i))


def collapse(key: str, rows: Sequence[dict[str, Any]], cols: Sequence[dict[str, Any]]) -> Markup:
    """The model-collapse picture: one row per measure (the metric, output diversity), one column per kind
    of lineage (unmitigated, mitigated), a line per lineage over its generations. Rows share a y-axis so
    the columns compare at a glance."""
    title = " and ".join(r["title"] for r in rows) + " per generation"
    with figure(4.4 * len(cols) + 0.5, 3.0 * len(rows) + 0.6) as fig:
        fig.get_layout_engine().set(h_pad=0.12)  # room between the rows' axes
        axes = fig.subplots(len(rows), len(cols), squeeze=False, sharey="row", sharex=True)
        for r, row in enumerate(rows):
            for c, col in enumerate(cols):
                _lines(axes[r][c], row, col, first_row=r == 0, last_row=r == len(rows) - 1, first_col=c == 0)
        handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines()}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 4))
        return to_svg(fig, key, title)


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
        ax.set_ylabel(label(row["title"]))
    if last_row:
        ax.set_xlabel("generation (position in lineage)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", visible=False)
