"""The statistics of comparisons, as math on plain numbers: small, exact, and checked against scipy,
numpy and Optuna (tests/test_stats.py). No harness types here: report/summary.py applies these to a
``CompareResult``.

Callers pass *goodness* (a value, negated for a minimised objective) wherever "better" matters, so
"a beats b" always means "a is better" whatever the direction.

* ``quantile``, ``median_iqr``; ``wilcoxon`` (paired over seeds: scipy's p-value, the matched-pairs
  rank-biserial correlation as effect size, all-zero differences -> p = 1, r = 0);
  ``average_ranks`` (1 = best, ties share their mean rank); ``prob_beats`` (P(a's final > b's final)
  over all seed pairs, ties count half: the common-language effect size, = Mann-Whitney U / (n m)).
* ``hypervolume``: exact hypervolume of a set of points against a reference point, any number of
  objectives (Optuna's own ``compute_hypervolume``, on minimisation: maximised objectives negated).
  ``hypervolume_2d``: the hand-written 2-D staircase it replaced in the summary, kept as a check.
* ``wilcoxon_min_p``: the smallest two-sided p the signed-rank test can give with n pairs.
* ``pareto_front``: which points no other point dominates, under each objective's direction.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "WILCOXON", "average_ranks", "dominates", "hypervolume", "hypervolume_2d", "median_iqr", "pareto_front",
    "prob_beats", "quantile", "wilcoxon", "wilcoxon_min_p",
]

#: What ``wilcoxon`` computes, in words (summary.json's pairwise rows carry these beside each p).
WILCOXON: dict[str, str] = {
    "test": "Wilcoxon signed-rank",
    "alternative": "two-sided",
    "zero_differences": "dropped before ranking (scipy zero_method='wilcox'); all differences zero -> p = 1",
}


# ---------------------------------------------------------------------- basic statistics
def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default)."""
    s = sorted(xs)
    if not s:
        raise ValueError("quantile of no values")
    pos = q * (len(s) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median_iqr(xs: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile)."""
    return quantile(xs, 0.5), quantile(xs, 0.25), quantile(xs, 0.75)


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``xs`` ascending, ties sharing their mean rank (scipy's ``rankdata``)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of the paired differences a - b (two-sided, zero differences
    dropped). ``rank_biserial`` = (W+ - W-) / (W+ + W-) in [-1, 1]: +1 when a is better on every
    seed that differs. All differences zero (or no pairs) -> p = 1, r = 0."""
    if len(a) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b) if x - y != 0]
    out: dict[str, Any] = {"n": len(a), "n_nonzero": len(d), "w_plus": 0.0, "w_minus": 0.0,
                           "statistic": 0.0, "p": 1.0, "rank_biserial": 0.0}
    if not d:
        return out
    r = _ranks([abs(x) for x in d])
    w_plus = sum(rk for rk, x in zip(r, d) if x > 0)
    w_minus = sum(rk for rk, x in zip(r, d) if x < 0)
    from scipy.stats import wilcoxon as _scipy_wilcoxon

    res = _scipy_wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    p = float(res.pvalue)
    out.update(w_plus=w_plus, w_minus=w_minus, statistic=min(w_plus, w_minus),
               p=1.0 if math.isnan(p) else min(1.0, p), rank_biserial=(w_plus - w_minus) / (w_plus + w_minus))
    return out


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p the signed-rank test can reach with ``n`` paired differences: all of
    one sign, no ties (exact null distribution: 2 / 2**n; 1 for n = 0). Differences of zero are
    dropped first, so a seed where both tie lowers the n that counts."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return min(1.0, 2.0 / 2.0 ** n)


def prob_beats(a: Sequence[float], b: Sequence[float]) -> float:
    """P(a_i > b_j) over all pairs (i, j) of seeds, ties counting half."""
    if not a or not b:
        return float("nan")
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def average_ranks(table: Sequence[Sequence[float]]) -> list[float]:
    """``table[m][s]``: goodness of method m on seed s. Rank the methods on each seed (1 = best,
    ties share their mean rank) and average over seeds."""
    n_methods = len(table)
    if n_methods == 0:
        return []
    n_seeds = len(table[0])
    if any(len(row) != n_seeds for row in table):
        raise ValueError("every method needs one value per seed")
    totals = [0.0] * n_methods
    for s in range(n_seeds):
        for m, rk in enumerate(_ranks([-row[s] for row in table])):
            totals[m] += rk
    return [t / n_seeds for t in totals] if n_seeds else [float("nan")] * n_methods


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float],
                   directions: Sequence[str] = ("minimize", "minimize")) -> float:
    """Exact area dominated by ``points`` and bounded by ``reference`` (2 objectives). Points that
    do not strictly beat the reference on both objectives add nothing."""
    if len(reference) != 2:
        raise ValueError("hypervolume_2d needs 2 objectives")
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    rx, ry = sign[0] * reference[0], sign[1] * reference[1]
    pts = sorted((sign[0] * p[0], sign[1] * p[1]) for p in points)
    pts = [(x, y) for x, y in pts if x < rx and y < ry]
    area, best_y = 0.0, ry
    for x, y in pts:  # x ascending: each point adds the strip below the lowest y seen so far
        if y < best_y:
            area += (rx - x) * (best_y - y)
            best_y = y
    return area


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float],
                directions: Sequence[str] | None = None) -> float:
    """Exact volume dominated by ``points`` and bounded by ``reference``, any number of objectives
    (``directions``: per objective, default all "minimize"). Optuna's ``compute_hypervolume`` (WFG;
    2-D and 3-D sweeps) on the points as losses: maximised objectives negated. Points that do not
    strictly beat the reference on every objective add nothing (they are left out: Optuna refuses
    them)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    k = len(reference)
    if k < 1:
        raise ValueError("hypervolume needs at least one objective")
    directions = list(directions) if directions is not None else ["minimize"] * k
    if len(directions) != k:
        raise ValueError(f"{k} reference values but {len(directions)} directions")
    if bad := [d for d in directions if d not in ("minimize", "maximize")]:
        raise ValueError(f"direction {bad[0]!r} is neither 'minimize' nor 'maximize'")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    ref = sign * np.asarray(reference, dtype=float)
    rows = [list(p) for p in points]
    if any(len(r) != k for r in rows):
        raise ValueError(f"every point needs {k} values (one per objective of the reference)")
    pts = np.asarray(rows, dtype=float).reshape(len(rows), k) * sign
    pts = pts[np.all(pts < ref, axis=1)]  # NaN compares False: left out too
    if len(pts) == 0:
        return 0.0
    return float(compute_hypervolume(pts, ref))


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether point ``a`` is at least as good as ``b`` on every objective and better on one."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    av = [s * v for s, v in zip(signs, a)]
    bv = [s * v for s, v in zip(signs, b)]
    return all(x >= y for x, y in zip(av, bv)) and any(x > y for x, y in zip(av, bv))


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices (ascending) of the points that no other point dominates."""
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)]
