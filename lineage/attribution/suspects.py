"""Rank groups as suspects for a falling metric, each with the evidence that put it on the list.

Points are a rough weighing, not a probability: model-side evidence (the regression, the share trend)
counts more than data-side symptoms, which only say a group looks like collapsed data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lineage.attribution.regression import Regression

LOW_DIVERSITY = 0.85  # distinct_2 below 85% of real's
FAR_FROM_REAL = 1.3  # js_divergence 30% above real's (real's own value is the sampling floor)
LOST_TAIL = 0.7  # tail coverage below 70% of real's
HIGH_DROP = 0.2
HIGH_NEAR_DUP = 0.2
STRONG_TREND = -0.5


def rank(
    groups: list[str],
    shares: np.ndarray,
    effect: np.ndarray,
    regression: Regression,
    health: dict[str, dict[str, Any]],
    reference: dict[str, float],
    sign: float,
) -> list[dict[str, Any]]:
    """Suspects, most suspect first. `effect` is the metric turned so that higher is better (`sign`)."""
    out = []
    for i, g in enumerate(groups):
        evidence = _model_side(g, shares[:, i], effect, regression, sign) + _data_side(health[g], reference)
        points = sum(p for p, _ in evidence)
        if points > 0:
            out.append({"group": g, "points": round(points, 2), "evidence": [text for _, text in evidence]})
    return sorted(out, key=lambda s: (-s["points"], s["group"]))


def _model_side(g: str, share: np.ndarray, effect: np.ndarray, reg: Regression, sign: float) -> list[tuple]:
    found: list[tuple[float, str]] = []
    coef, low, high = reg.coefficient(g)
    if coef is not None and sign * coef < 0:
        sure = (sign * high < 0) if high is not None and low is not None else False
        interval = f" ({low:+.3f} .. {high:+.3f})" if low is not None else ""
        found.append(
            (
                3.0 if sure else 1.5,
                f"regression coefficient {coef:+.3f} per unit share{interval}"
                + ("" if sure else f": interval includes 0, not distinguishable from no effect with "
                   f"{reg.n_models} models"),
            )
        )
    if len(effect) >= 3 and np.ptp(share) > 1e-9 and np.ptp(effect) > 0:
        r = float(np.corrcoef(share, effect)[0, 1])  # with the metric turned so that higher is better
        if r <= STRONG_TREND:
            # Print the correlation with the metric itself (r_metric = sign * r), so its sign matches the words.
            direction = "higher" if sign < 0 else "lower"
            found.append(
                (
                    2 * -r,
                    f"share {share.min():.0%}..{share.max():.0%} across models, higher where the metric is worse "
                    f"(correlation with the metric r = {sign * r:+.2f}; {direction} metric is worse)",
                )
            )
    return found


def _data_side(h: dict[str, Any], ref: dict[str, float]) -> list[tuple[float, str]]:
    found: list[tuple[float, str]] = []
    if h.get("real"):
        return found  # real data is the reference these symptoms are measured against
    found += _ratio(h, ref, "distinct_2", LOW_DIVERSITY, below=True, text="low diversity: distinct_2")
    found += _ratio(h, ref, "js_divergence", FAR_FROM_REAL, below=False, text="far from real: js_divergence")
    found += _ratio(h, ref, "tail_coverage", LOST_TAIL, below=True, text="lost tail: tail_coverage", points=0.5)
    if (h.get("drop_rate") or 0) >= HIGH_DROP:
        found.append((1.0, f"filters dropped {h['drop_rate']:.0%} of its samples"))
    if (h.get("near_dup_rate") or 0) >= HIGH_NEAR_DUP:
        found.append((0.5, f"near-duplicate rate {h['near_dup_rate']:.0%}"))
    depth = h.get("mean_generation")
    if depth is not None and depth >= 2:
        found.append((min(0.5 * (depth - 1), 1.5), f"deep generation: mean depth {depth:.1f}"))
    return found


def _ratio(h: dict, ref: dict, metric: str, factor: float, *, below: bool, text: str, points: float = 1.0) -> list:
    value, real = h.get(metric), ref.get(metric)
    if value is None or not real:
        return []
    bad = value < factor * real if below else value > factor * real
    return [(points, f"{text} {value:.3f} vs real {real:.3f}")] if bad else []
