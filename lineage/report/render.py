"""Render report data as HTML (one self-contained file), Markdown or JSON.

HTML: jinja2 with autoescape on, so every sample text and user-supplied name is escaped; charts are
matplotlib SVG inlined as markup. Markdown: the same templates' content as tables and lists; every value is
escaped for Markdown (HTML-significant characters, table pipes, link brackets, newlines) by `finalize`.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

if TYPE_CHECKING:
    import jinja2

_MD_SPECIAL = re.compile(r"[\\`|\[\]]")
_MD_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def plain(value: Any) -> Any:
    """JSON for values DuckDB hands back (timestamps)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, default=plain, ensure_ascii=False, indent=2) + "\n"


def num(value: Any, digits: int = 4) -> str:
    """Counts with thousands separators, measurements to `digits` significant digits, a dash for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}g}"
    return str(value)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def reading(coef: float | None, low: float | None, high: float | None, higher_is_better: bool) -> str:
    """A regression coefficient in words: does more of this group go with a better or worse metric?"""
    if coef is None or low is None or high is None:
        return "–"
    better = (coef > 0) == higher_is_better
    sure = low > 0 or high < 0  # the interval excludes 0
    return ("better" if better else "worse") + " with more" + ("" if sure else " (interval includes 0)")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=plain)


def code_spans(value: Any) -> Markup:
    """Messages name things in `backticks`: escape everything, then show those spans as <code>."""
    return Markup(re.sub(r"`([^`<>]+)`", r"<code>\1</code>", str(escape(value))))


def compact(value: Any) -> Any:
    """The spec without its unset fields (nulls, empty lists and mappings): what the user actually chose."""
    if isinstance(value, dict):
        kept = {k: compact(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def md_escape(value: Any) -> str:
    """A value as Markdown text that cannot open HTML, links or code, nor break a table row."""
    if isinstance(value, Markup):
        return str(value)  # already Markdown, made by a filter below
    text = "" if value is None else str(value)
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    text = "".join(_MD_HTML.get(c, c) for c in text)
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def md_code(value: str) -> Markup:
    """A fenced code block, its fence longer than any backtick run inside (code is shown, not rendered)."""
    runs = [len(r) for r in re.findall(r"`+", value)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return Markup(f"{fence}json\n{value}\n{fence}")


def environment(fmt: str) -> jinja2.Environment:
    import jinja2

    options: dict[str, Any] = {"autoescape": True}
    if fmt == "md":
        options = {"autoescape": False, "finalize": md_escape}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lineage.report", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **options,
    )
    env.filters.update(num=num, pct=pct, signed=signed, reading=reading, pretty=pretty, compact=compact,
                       md_code=md_code, code_spans=code_spans)
    return env


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return to_json(data)
    context = {"data": data, "charts": charts(data) if fmt == "html" else {}}
    return environment(fmt).get_template(f"{data['kind']}.{fmt}.j2").render(context)


def charts(data: dict[str, Any]) -> dict[str, Markup]:
    from lineage.report import charts

    return charts.build_charts(data) if data["kind"] == "build" else charts.models_charts(data)
