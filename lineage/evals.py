"""Evaluations of registered models: recorded by hand, imported from lm-evaluation-harness, or measured on
the model's own outputs (output diversity falls as a model collapses, before benchmarks do).

lm-evaluation-harness keys are `"METRIC,FILTER"`; an eval row gets `benchmark` = the task and `metric` =
METRIC when FILTER is `none` (the harness's default filter), else `METRIC,FILTER`, so the usual
`--metric acc` works while `exact_match,strict-match` and `exact_match,flexible-extract` stay apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lineage.core.ids import uuid7
from lineage.errors import LineageError
from lineage.models import require_model
from lineage.progress import Progress, stepper
from lineage.schemas import EVALS

if TYPE_CHECKING:
    import polars as pl

    from lineage.core.handle import StoreCore

OUTPUTS_BENCHMARK = "outputs"
OUTPUT_METRICS = "text"  # distinct-n, entropy, compression, self-BLEU, tail coverage, JS divergence to real


@dataclass(frozen=True)
class EvalResult:
    """The rows one command recorded, and warnings for the user (one line each)."""

    rows: list[dict[str, Any]]
    version: int
    warnings: list[str] = field(default_factory=list)


def eval_set_warning(store: StoreCore, eval_set: str | None) -> str | None:
    """A held-out set that is not protected may leak into builds: say so (None when all is well)."""
    from lineage.sets import set_info

    if eval_set is None:
        return None
    info = set_info(store, eval_set)
    if info is None:
        return f"eval set `{eval_set}` does not exist, so nothing keeps its items out of training builds"
    if not info["protected"]:
        return f"eval set `{eval_set}` is not protected: its items may enter training builds"
    return None


def record_evals(
    store: StoreCore, model: str, values: list[dict[str, Any]], *, eval_set: str | None = None, source: str = "cli"
) -> EvalResult:
    """Record eval rows (dicts with metric, value, and optional stderr, benchmark) for `model`, one commit."""
    if not values:
        raise LineageError("no metric to record")
    warning = eval_set_warning(store, eval_set)
    with store.transaction("eval", model, {"model": model, "evals": len(values)}) as txn:
        require_model(store, model)
        now = datetime.now(UTC)
        rows = [_row(model, v, eval_set, source, now, txn.version) for v in values]
        txn.add_rows("evals", pa.Table.from_pylist(rows, schema=EVALS))
    return EvalResult(rows, txn.version, [warning] if warning else [])


def _row(model: str, v: dict[str, Any], eval_set: str | None, source: str, now: datetime, version: int) -> dict:
    return {
        "eval_id": uuid7(),
        "model": model,
        "metric": v["metric"],
        "value": _finite(v["value"], f"metric `{v['metric']}`"),
        "stderr": None if v.get("stderr") is None else _finite(v["stderr"], f"stderr of `{v['metric']}`"),
        "benchmark": v.get("benchmark"),
        "eval_set": eval_set,
        "source": source,
        "recorded_at": now,
        "version": version,
    }


def _finite(value: Any, what: str) -> float:
    """NaN or an infinity would poison every mean, regression and chart that reads the evals."""
    number = float(value)
    if not math.isfinite(number):
        raise LineageError(f"{what}: `{value}` is not a finite number; nothing was recorded")
    return number


def record_eval(
    store: StoreCore,
    model: str,
    metrics: dict[str, float],
    *,
    stderr: dict[str, float] | None = None,
    benchmark: str | None = None,
    eval_set: str | None = None,
) -> EvalResult:
    """Record metric values (NAME -> value) for `model`; `stderr` by the same names."""
    unknown = sorted(set(stderr or {}) - set(metrics))
    if unknown:
        raise LineageError(f"--stderr {unknown[0]} has no --metric {unknown[0]}=VALUE")
    values = [
        {"metric": name, "value": value, "stderr": (stderr or {}).get(name), "benchmark": benchmark}
        for name, value in metrics.items()
    ]
    return record_evals(store, model, values, eval_set=eval_set)



# -- lm-evaluation-harness ---------------------------------------------------------------------------


def parse_lm_eval(path: str | Path) -> list[dict[str, Any]]:
    """One row per task and metric of an lm-evaluation-harness results file (its `results` mapping)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LineageError(f"cannot read `{path}`: {exc}") from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        raise LineageError(f"`{path}` is not an lm-evaluation-harness results file: no `results` mapping")
    rows = [row for task, values in results.items() if isinstance(values, dict) for row in _task_rows(task, values)]
    for row in rows:
        for key in ("value", "stderr"):
            if row[key] is not None and not math.isfinite(row[key]):
                raise LineageError(
                    f"`{path}`: results.{row['benchmark']}.{row['metric']}: {key} is {row[key]}, not a finite number; "
                    "nothing was recorded"
                )
    if not rows:
        raise LineageError(f"`{path}`: no numeric metric in `results`")
    return rows


def _number(value: Any) -> float | None:
    # The harness writes "N/A" for a stderr it did not compute; bools are flags, not scores.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _task_rows(task: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    scores, errors = {}, {}
    for key, raw in values.items():
        value = _number(raw)
        if key == "alias" or value is None:
            continue
        base, _, filt = key.partition(",")
        target = errors if base.endswith("_stderr") else scores
        target[(base.removesuffix("_stderr"), filt)] = value
    return [
        {
            "benchmark": task,
            "metric": base if filt in ("", "none") else f"{base},{filt}",
            "value": value,
            "stderr": errors.get((base, filt)),
        }
        for (base, filt), value in scores.items()
    ]


def import_lm_eval(store: StoreCore, model: str, path: str | Path, *, eval_set: str | None = None) -> EvalResult:
    """Record every task and metric of an lm-evaluation-harness results file as evals of `model`."""
    rows = parse_lm_eval(path)
    return record_evals(store, model, rows, eval_set=eval_set, source=f"lm-eval-harness:{Path(path).name}")


# -- output diversity ---------------------------------------------------------------------------------


def read_outputs(path: str | Path) -> list[str]:
    """Texts of a JSONL file (`text` field) or of a plain text file (one per non-empty line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LineageError(f"cannot read `{path}`: {exc}") from None
    if Path(path).suffix not in (".jsonl", ".ndjson"):
        return [line.strip() for line in lines if line.strip()]
    texts = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            texts.append(_jsonl_text(path, number, line))
    return texts


def _jsonl_text(path: str | Path, number: int, line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        raise LineageError(f"{path}:{number}: malformed JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise LineageError(f"{path}:{number}: field `text`: expected a string")
    return record["text"]


def eval_outputs(
    store: StoreCore,
    model: str,
    path: str | Path,
    *,
    metrics: str = OUTPUT_METRICS,
    sample_size: int = 1000,
    draws: int = 5,
    seed: int = 0,
    reference: str = "origin = 'real'",
    progress: Progress | None = None,
) -> EvalResult:
    """Diversity of the model's own generations, with the same formulas and subsampling as `lineage
    diversity` (reference: the store's real data), recorded as evals with benchmark `outputs`.
    `progress(done, total)` counts OUTPUT_STEPS: outputs read, reference read, tokens encoded, metrics, recorded."""
    step = stepper(progress, OUTPUT_STEPS)
    require_model(store, model)
    texts = read_outputs(path)
    if len(texts) < 2:
        raise LineageError(f"`{path}`: need at least 2 outputs to measure diversity, found {len(texts)}")
    step()
    values, n_samples = output_diversity(store, texts, metrics, sample_size, draws, seed, reference, step)
    rows = [{"metric": name, "value": v, "benchmark": OUTPUTS_BENCHMARK} for name, v in values.items() if v is not None]
    result = record_evals(store, model, rows, source=f"outputs:{Path(path).name} n_samples={n_samples}")
    step()
    return result


OUTPUT_STEPS = 5


def output_diversity(
    store: StoreCore, texts: list[str], metrics: str, sample_size: int, draws: int, seed: int, reference: str,
    step: Callable[[], None] = lambda: None,
) -> tuple[dict[str, float | None], int]:
    """Metric values (mean over draws) of `texts` and how many texts each draw saw."""
    from lineage.metrics import METRICS, resolve
    from lineage.metrics.compute import Params, Reference, compute_group, reference_of
    from lineage.metrics.text import encode_columns, token_expr

    names = [n for n in resolve(metrics) if METRICS[n].needs == "text"]
    if not names:
        raise LineageError("output diversity uses text metrics only (e.g. text, distinct, self_bleu)")
    params = Params(sample_size=sample_size, draws=draws, seed=seed)
    frame = _frame(texts).with_columns(tokens=token_expr("text"))
    ref_tokens = _reference_tokens(store, reference)
    step()
    columns, vocab = encode_columns(frame["tokens"], *([] if ref_tokens is None else [ref_tokens]))
    frame = frame.with_columns(ids=columns[0]).drop("tokens")
    ref = Reference.none() if ref_tokens is None else reference_of(columns[1], vocab, params)
    step()
    group = compute_group({"outputs": "model"}, frame, names, ref, params, None)
    step()
    return {name: group.values[name][0] for name in names}, group.n_samples


def _frame(texts: list[str]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame({"sample_id": [str(i) for i in range(len(texts))], "text": texts})


def _reference_tokens(store: StoreCore, reference: str) -> pl.Series | None:
    from lineage.core import readonly
    from lineage.metrics.text import token_expr

    with store.reader(locked=True) as con:
        table = readonly.run(con, f"SELECT text FROM samples WHERE ({reference}) ORDER BY sample_id")
    if table.num_rows == 0:
        return None
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(token_expr("text"))["text"]


def list_evals(store: StoreCore, model: str | None = None) -> pa.Table:
    return store.query(
        "SELECT model, benchmark, metric, value, stderr, eval_set, source, version FROM evals "
        "WHERE ? IS NULL OR model = ? ORDER BY version, model, benchmark, metric",
        params=[model, model],
    )
