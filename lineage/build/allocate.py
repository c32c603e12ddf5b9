"""Allocation: an integer program over the cells of all quota dimensions, solved by HiGHS (scipy `milp`).

Variables: x_c, the samples taken from cell c (0 <= x_c <= available_c). Constraints: sum x = size; for
every quota q, ceil(min_q * size) <= sum_{c in q} x_c <= floor(max_q * size). Objective: closest to the
quota targets (L1, weighted), then closest to the pool's own proportions (L1, and among equally close ones the
smallest largest relative deviation of a cell), so a spec without targets samples like a random draw from the pool
and what quotas leave over is spread over the other cells in proportion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from lineage.build.pool import Pool
from lineage.build.spec import BuildSpec, Share
from lineage.errors import InfeasibleSpec

TARGET_WEIGHT = 1000.0
PROPORTION_WEIGHT = 1e-3  # of the largest relative under- and over-fill (each at most ~1): a tie-break


@dataclass(frozen=True)
class Quota:
    label: str  # e.g. "origin=real", "source=synthetic-*", "expr long"
    share: Share
    cells: tuple[int, ...]
    available: int

    def bounds(self, size: int) -> tuple[int, int]:
        if self.share.hard and self.share.target is not None:
            return (round(self.share.target * size),) * 2  # a hard target binds like min = max
        lo = math.ceil((self.share.min or 0.0) * size - 1e-9)
        hi = math.floor((self.share.max if self.share.max is not None else 1.0) * size + 1e-9)
        return lo, hi


@dataclass(frozen=True)
class Allocation:
    takes: list[int]  # per pool cell
    quotas: list[Quota]

    @property
    def size(self) -> int:
        return sum(self.takes)

    def rows(self, pool: Pool, size: int) -> list[dict[str, Any]]:
        """The allocation table: per cell and per quota, target, min, max, available, chosen."""
        out = []
        for (values, available), take in zip(pool.cells, self.takes, strict=True):
            label = ", ".join(f"{k}={_text(v)}" for k, v in values.items()) or "all"
            out.append(
                {
                    "kind": "cell",
                    "name": label,
                    "target": None,
                    "min": None,
                    "max": None,
                    "available": available,
                    "chosen": take,
                }
            )
        for q in self.quotas:
            lo, hi = q.bounds(size)
            target = round(q.share.target * size) if q.share.target is not None else None
            chosen = sum(self.takes[c] for c in q.cells)
            out.append(
                {
                    "kind": "quota",
                    "name": q.label,
                    "target": target,
                    "min": lo,
                    "max": hi,
                    "available": q.available,
                    "chosen": chosen,
                    "hard": q.share.hard,
                    **_against_target(target, chosen, q.available, lo, hi),
                }
            )
        return out


def _against_target(target: int | None, chosen: int, available: int, lo: int, hi: int) -> dict[str, Any]:
    """The status of a quota (bounds first, then target) and, for a missed target, a note saying why."""
    if not lo <= chosen <= hi:
        return {"status": "out of bounds", "shortfall": None, "note": None}
    if target is None or chosen == target:
        return {"status": "on target" if target is not None else "within bounds", "shortfall": None, "note": None}
    why = f"the pool has {available:,}" if available < target else "the size and the other quotas allow no closer"
    status = "below target" if chosen < target else "above target"
    return {"status": status, "shortfall": target - chosen, "note": f"target {target:,}, chosen {chosen:,}: {why}"}


def _text(value: object) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def quotas(spec: BuildSpec, pool: Pool) -> list[Quota]:
    out = []
    for dim, shares in spec.quotas.items():
        for pattern, share in shares.items():
            cells = tuple(i for i, (v, _) in enumerate(pool.cells) if fnmatchcase(_text(v[dim]), pattern))
            out.append(Quota(f"{dim}={pattern}", share, cells, sum(pool.cells[i][1] for i in cells)))
    for q in spec.expr:
        cells = tuple(i for i, (v, _) in enumerate(pool.cells) if v[q.name])
        out.append(Quota(f"expr {q.name}", q, cells, sum(pool.cells[i][1] for i in cells)))
    return out


def allocate(spec: BuildSpec, pool: Pool) -> Allocation:
    spec = resolve_size(spec, pool)
    assert isinstance(spec.size, int)  # resolved: for the type checker
    qs = quotas(spec, pool)
    _precheck(spec, pool, qs)
    takes = _solve(spec.size, pool, qs)
    if takes is None:
        raise InfeasibleSpec(_diagnose(spec.size, pool, qs))
    return Allocation(takes, qs)


def resolve_size(spec: BuildSpec, pool: Pool) -> BuildSpec:
    """The spec with `size: max` made the number it means: the largest build the pool and the quotas allow."""
    if spec.size != "max":
        return spec
    qs = quotas(spec, pool)
    for q in qs:  # a share the pool cannot give one sample of: say which, not "no sample"
        lo = q.share.target if q.share.hard else q.share.min
        if lo and not q.available:
            what = f"hard target {_pct(lo)}" if q.share.hard else f"min {_pct(lo)}"
            raise InfeasibleSpec(f"size max: quota {q.label} {what} needs samples; the pool has 0 "
                                 f"{q.label.split('=', 1)[-1]} samples after filters")
    size = _max_size(pool, qs)
    if size == 0:
        what = "the pool is empty" if pool.size == 0 else "the quotas allow no sample of the pool"
        raise InfeasibleSpec(f"size max: {what} ({pool.size:,} samples after filters, protected sets and the "
                             f"pool's limits; {pool.matched:,} match the pool's `where`)")
    return spec.model_copy(update={"size": size})


def _max_size(pool: Pool, qs: list[Quota]) -> int:
    """The most samples the cells hold with every quota within its bounds: an integer program over the cells
    (the quota bounds round as `Quota.bounds` does: a count of at least min * size is at least its ceiling)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, avail = len(pool.cells), np.array([a for _, a in pool.cells], dtype=float)
    if not n:
        return 0
    rows, lb, ub = [], [], []
    for q in qs:
        inside = np.zeros(n)
        inside[list(q.cells)] = 1.0
        lo = q.share.target if q.share.hard else q.share.min or 0.0
        hi = q.share.target if q.share.hard else q.share.max if q.share.max is not None else 1.0
        # round(target * size) for a hard target: within half a sample of it.
        slack = 0.5 if q.share.hard else 1e-9
        rows += [inside - lo, inside - hi]  # count - lo * size >= 0, count - hi * size <= 0
        lb += [-slack, -np.inf]
        ub += [np.inf, slack]
        if q.share.hard and lo > 0:  # a positive target takes a sample: not a build so small it rounds to none
            rows.append(inside)
            lb.append(1.0)
            ub.append(np.inf)
    constraints = [LinearConstraint(np.array(rows), lb, ub)] if rows else []
    res = milp(-np.ones(n), constraints=constraints, integrality=np.ones(n), bounds=Bounds(np.zeros(n), avail))
    size = round(-res.fun) if res.status == 0 else 0
    # The allocation itself must exist at that size (a hard target's rounding tie can differ): step down if not.
    while size > 0 and _solve(size, pool, qs) is None:
        size -= 1
    return size


def _precheck(spec: BuildSpec, pool: Pool, qs: list[Quota]) -> None:
    if pool.size < spec.size:
        limits = [f"licenses {', '.join(spec.pool.licenses)}"] if spec.pool.licenses is not None else []
        if spec.pool.max_generation is not None:
            limits.append(f"max_generation {spec.pool.max_generation}")
        also = f" ({', '.join(limits)})" if limits else ""  # what else the pool's own settings exclude
        raise InfeasibleSpec(
            f"size {spec.size:,} needs {spec.size:,} samples; the pool has {pool.size:,} after filters, "
            f"protected sets and the pool's limits{also} ({pool.matched:,} match the pool's `where`)"
        )
    for q in qs:
        lo = q.bounds(spec.size)[0]
        if q.share.hard and lo > q.available:
            raise InfeasibleSpec(
                f"quota {q.label} hard target {_pct(q.share.target)} of {spec.size:,} needs {lo:,}; "
                f"the pool has {q.available:,} {q.label.split('=', 1)[-1]} samples after filters"
            )
        if lo > q.available:
            raise InfeasibleSpec(
                f"quota {q.label} min {_pct(q.share.min)} of {spec.size:,} needs {lo:,}; "
                f"the pool has {q.available:,} {q.label.split('=', 1)[-1]} samples after filters"
            )


def _pct(x: float | None) -> str:
    return f"{(x or 0) * 100:g}%"


def _solve(size: int, pool: Pool, qs: list[Quota]) -> list[int] | None:
    """Solve the integer program; None when infeasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, avail = len(pool.cells), np.array([a for _, a in pool.cells], dtype=float)
    targeted = [q for q in qs if q.share.target is not None]
    under, over = 2 * n + len(targeted), 2 * n + len(targeted) + 1
    nv = over + 1  # x, cell deviations, quota-target deviations, the largest relative under- and over-fill
    rows, lb, ub = [], [], []

    def add(coefs: dict[int, float], lo: float, hi: float) -> None:
        row = np.zeros(nv)
        for i, v in coefs.items():
            row[i] += v
        rows.append(row), lb.append(lo), ub.append(hi)

    add(dict.fromkeys(range(n), 1.0), size, size)
    for q in qs:
        add(dict.fromkeys(q.cells, 1.0), *q.bounds(size))
    share = size * avail / max(avail.sum(), 1)
    for c in range(n):  # |x_c - share_c| <= d_c
        add({c: 1.0, n + c: -1.0}, -np.inf, share[c])
        add({c: -1.0, n + c: -1.0}, -np.inf, -share[c])
    # L1 alone is indifferent to how a shortfall (or a surplus) that quotas force on the other cells is spread:
    # 40 samples left over may all come from one cell. The largest relative under- and over-fill, at a weight
    # far below one sample's deviation, pick among equally close allocations the one in the pool's proportions.
    # One sample either way is rounding, not a choice: a cell whose share is 1.8 may hold 1 without setting the
    # largest deviation for all (its 45% would leave every other cell free up to 45%).
    for c in np.flatnonzero(share > 0):
        add({int(c): -1.0, under: -share[c]}, -np.inf, 1.0 - share[c])  # share_c - x_c <= under * share_c + 1
        add({int(c): 1.0, over: -share[c]}, -np.inf, share[c] + 1.0)  # x_c - share_c <= over * share_c + 1
    spread = float(max((avail[share > 0] / share[share > 0]).max(initial=1.0), 1.0))
    for k, q in enumerate(targeted):
        t = q.share.target * size  # type: ignore[operator]
        add({**dict.fromkeys(q.cells, 1.0), 2 * n + k: -1.0}, -np.inf, t)
        add({**dict.fromkeys(q.cells, -1.0), 2 * n + k: -1.0}, -np.inf, -t)
    proportions = [PROPORTION_WEIGHT, PROPORTION_WEIGHT / spread]
    cost = np.concatenate([np.zeros(n), np.ones(n), np.full(len(targeted), TARGET_WEIGHT), proportions])
    integrality = np.concatenate([np.ones(n), np.zeros(nv - n)])
    bounds = Bounds(np.zeros(nv), np.concatenate([avail, np.full(nv - n, np.inf)]))
    # A zero gap: HiGHS's default (1e-4 of the objective) would stop before the proportions' small weight counts.
    res = milp(cost, constraints=LinearConstraint(np.array(rows), lb, ub), integrality=integrality, bounds=bounds,
               options={"mip_rel_gap": 0.0})
    if res.status != 0 or res.x is None:
        return None
    return [round(v) for v in res.x[:n]]


def _diagnose(size: int, pool: Pool, qs: list[Quota]) -> str:
    """Find the quota whose removal makes the spec feasible, and say so with numbers."""
    for i, q in enumerate(qs):
        if _solve(size, pool, qs[:i] + qs[i + 1 :]) is not None:
            lo, hi = q.bounds(size)
            bound = f"hard target {lo:,}" if q.share.hard else f"min {lo:,}, max {hi:,}"
            return (
                f"quota {q.label} ({bound} of {size:,}; {q.available:,} available) cannot hold "
                "together with the other quotas; relax it or them"
            )
    return f"the quotas cannot all hold for size {size:,}: " + "; ".join(
        f"{q.label} in {q.bounds(size)[0]:,}..{q.bounds(size)[1]:,}" for q in qs
    )
