"""Mixture regression: a model metric on the shares of groups in its training build (in the spirit of
RegMix, Liu et al. 2024, with a linear model small enough for a handful of models).

Shares sum to 1, so an intercept and one coefficient per group are not identifiable together: adding c
to every coefficient and subtracting c from the intercept predicts the same. Ridge with an unpenalised
intercept picks the solution whose coefficients sum to 0, so each coefficient reads as "the metric's
change per unit of share moved to this group from the average mix". Intervals come from a seeded
bootstrap over models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ALPHA = 1e-3  # shares vary by ~0.1, so X'X is ~0.01 n per group: this only settles the sum-to-0 direction
BOOTSTRAP = 1000
LEVEL = 0.90


@dataclass
class Regression:
    identified: bool
    message: str
    groups: list[str]
    coefficients: list[float | None] = field(default_factory=list)
    low: list[float | None] = field(default_factory=list)
    high: list[float | None] = field(default_factory=list)
    r2: float | None = None
    n_models: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def coefficient(self, group: str) -> tuple[float | None, float | None, float | None]:
        if not self.identified:
            return None, None, None
        i = self.groups.index(group)
        return self.coefficients[i], self.low[i], self.high[i]


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge coefficients of centred y on centred x (the intercept is left unpenalised)."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    return np.linalg.solve(xc.T @ xc + ALPHA * np.eye(x.shape[1]), xc.T @ yc)


def mixture_regression(shares: np.ndarray, y: np.ndarray, groups: list[str], *, seed: int = 0) -> Regression:
    """Coefficients with bootstrap intervals, or `identified=False` with the reason in plain words."""
    n, k = shares.shape
    if n < k + 1:
        reason = (
            f"{n} models with a metric for {k} groups: a mixture regression needs at least {k + 1} "
            "(groups + 1) to identify anything; see the timeline and the data-side evidence instead"
        )
        return Regression(False, reason, groups, n_models=n)
    fixed = [g for g, s in zip(groups, shares.T, strict=True) if np.ptp(s) < 1e-9]
    beta = fit(shares, y)
    low, high = _bootstrap(shares, y, seed)
    message = f"ridge on shares over {n} models, {BOOTSTRAP} bootstrap resamples, {LEVEL:.0%} intervals"
    if fixed:
        message += f"; share never varies for {', '.join(fixed)}: its coefficient is not identified"
    coefs: list[float | None] = [None if g in fixed else float(b) for g, b in zip(groups, beta, strict=True)]
    return Regression(
        True, message, groups, coefs, _opt(low, groups, fixed), _opt(high, groups, fixed), _r2(shares, y, beta), n
    )


def _opt(values: np.ndarray, groups: list[str], fixed: list[str]) -> list[float | None]:
    return [None if g in fixed else float(v) for g, v in zip(groups, values, strict=True)]


def _bootstrap(shares: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = [fit(shares[idx], y[idx]) for idx in (rng.integers(0, n, n) for _ in range(BOOTSTRAP))]
    tail = (1 - LEVEL) / 2 * 100
    return np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)


def _r2(shares: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float | None:
    pred = y.mean() + (shares - shares.mean(axis=0)) @ beta
    total = float(((y - y.mean()) ** 2).sum())
    return None if total == 0 else 1 - float(((y - pred) ** 2).sum()) / total
