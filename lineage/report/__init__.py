"""Reports: one self-contained file about a build or about the registered models.

`report(store, "build", "mix@v2", output="mix.html")` or `report(store, "models", output="models.md")`.
Three formats, chosen by `format` or by the output's extension: HTML (inline SVG charts, inline CSS, no
JavaScript, nothing fetched from the network), Markdown (the same content as tables and lists) and JSON
(the data the other two render).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineage.errors import LineageError, UsageError, option

if TYPE_CHECKING:
    from lineage.core.handle import StoreCore

__all__ = ["EXTENSIONS", "FORMATS", "KINDS", "report", "report_data", "report_format"]

KINDS = ("build", "models")
FORMATS = ("html", "md", "json")
EXTENSIONS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


def report_format(output: str | Path, fmt: str | None = None) -> str:
    """The format asked for, or the one the output's extension names; a one-line error otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError("format", fmt, message=f"unknown report format `{fmt}`; choose from {', '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix not in EXTENSIONS:
        raise LineageError(
            f"cannot tell the report format from `{Path(output).name}`: name it .html, .md or .json, "
            f"or pass {option('format', 'html|md|json')}"
        )
    return EXTENSIONS[suffix]


def report_data(
    store: StoreCore,
    kind: str,
    ref: str | None = None,
    *,
    metric: str | None = None,
    benchmark: str | None = None,
    by: str = "source",
) -> dict[str, Any]:
    """The report's content as plain data (what the JSON format writes)."""
    if kind not in KINDS:
        raise UsageError("kind", kind, message=f"unknown report `{kind}`; choose from {', '.join(KINDS)}")
    if kind == "build":
        from lineage.report.build_data import build_data

        if not ref:
            raise LineageError("a build report needs a build: NAME or NAME@vN")
        data = build_data(store, ref)
    else:
        from lineage.report.models_data import models_data

        data = models_data(store, metric, benchmark, by=by)
    return {**data, "store_version": store.version, "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "lineage_version": _version()}


def report(
    store: StoreCore,
    kind: str,
    ref: str | None = None,
    *,
    output: str | Path,
    format: str | None = None,  # noqa: A002 - the user-facing name, as in Build.export
    metric: str | None = None,
    benchmark: str | None = None,
    by: str = "source",
) -> Path:
    """Write the report of `kind` (`build` with ref NAME[@vN], or `models`: `metric` on `benchmark`,
    attributed to groups `by` of the training data) to `output`; returns its path."""
    from lineage.core.segments import atomic_write_bytes
    from lineage.report.render import render

    fmt = report_format(output, format)  # before any work: a wrong name fails at once
    path = store.output_path(output)
    data = report_data(store, kind, ref, metric=metric, benchmark=benchmark, by=by)
    text = render(data, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise LineageError(f"cannot write `{path}`: {exc.strerror or exc}") from None
    return path


def _version() -> str:
    from lineage._version import __version__

    return __version__
