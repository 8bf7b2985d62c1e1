"""Statistics of a comparison over seeds: small, exact, and checked against scipy (tests/test_stats.py).

Every statistic is computed on *goodness* (the value, negated for a minimised objective), so "a
beats b" always means "a is better" whatever the direction.

* ``final(run)``: the best primary value within the budget. Under an epoch budget only trials that
  finished within it count (the trial that crosses the budget runs to its end, as in runner.py, but
  what it found is not credited), so no method gets more nominal epochs than another.
* ``median_iqr``; ``wilcoxon`` (paired over seeds: scipy's p-value, the matched-pairs rank-biserial
  correlation as effect size, all-zero differences -> p = 1, r = 0); ``average_ranks`` (1 = best,
  ties share their mean rank); ``prob_beats`` (P(a's final > b's final) over all seed pairs, ties
  count half: the common-language effect size, = Mann-Whitney U / (n m)).
* ``hypervolume_2d``: exact 2-D hypervolume of a set of points against a reference point.
* ``summarize(result)``: all of the above for a ``CompareResult`` as plain JSON-able data.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import CompareResult
    from .runner import RunResult, TrialRecord

__all__ = [
    "HV_REFERENCE", "average_ranks", "final", "hypervolume_2d", "median_iqr", "prob_beats",
    "quantile", "summarize", "within_budget", "wilcoxon",
]

# Hypervolume reference point per objective (in the objective's own units): the worst value that
# still counts. Objectives without one take the worst value seen anywhere in the comparison.
HV_REFERENCE: dict[str, float] = {"accuracy": 0.0, "sparsity": 0.0}


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


# ---------------------------------------------------------------------- per run
def within_budget(run: "RunResult") -> list["TrialRecord"]:
    """The trials credited to a run: under an epoch budget, those finished within it."""
    cap = run.budget.get("epochs")
    if cap is None:
        return list(run.trials)
    out, spent = [], 0
    for t in run.trials:
        spent += t.nominal_epochs
        if spent > cap:
            break
        out.append(t)
    return out


def _goodness(run: "RunResult", value: float) -> float:
    return value if run.directions[0] == "maximize" else -value


def final(run: "RunResult") -> float | None:
    """Best primary value among the trials credited within the budget (None if none completed)."""
    vals = [t.values[0] for t in within_budget(run) if t.state == "COMPLETE" and t.values]
    return max(vals, key=lambda v: _goodness(run, v)) if vals else None


def _trajectory(run: "RunResult", metric: Any) -> tuple[list[float | None], list[int]]:
    """Metric after each credited trial, and the cumulative nominal epochs at that point."""
    trials = within_budget(run)
    ys, xs, spent = [], [], 0
    for i, t in enumerate(trials):
        spent += t.nominal_epochs
        ys.append(metric(trials[: i + 1]))
        xs.append(spent)
    return ys, xs


def _best_metric(run: "RunResult"):
    def best(trials: list["TrialRecord"]) -> float | None:
        vals = [t.values[0] for t in trials if t.state == "COMPLETE" and t.values]
        return max(vals, key=lambda v: _goodness(run, v)) if vals else None
    return best


def _hv_metric(run: "RunResult", reference: Sequence[float]):
    def hv(trials: list["TrialRecord"]) -> float:
        pts = [t.values[:2] for t in trials if t.state == "COMPLETE" and t.values]
        return hypervolume_2d(pts, reference, run.directions[:2])  # type: ignore[arg-type]
    return hv


def hv_reference(result: "CompareResult") -> list[float]:
    """The comparison's fixed reference point: ``HV_REFERENCE`` per objective, else the worst
    value any run saw (the same for every method and seed)."""
    ref = []
    for i, (obj, d) in enumerate(zip(result.objectives[:2], result.directions[:2])):
        if obj in HV_REFERENCE:
            ref.append(HV_REFERENCE[obj])
            continue
        seen = [t.values[i] for r in result.runs for t in r.trials if t.state == "COMPLETE" and t.values]
        ref.append((max(seen) if d == "minimize" else min(seen)) if seen else 0.0)
    return ref


def _band(curves: list[list[float | None]], direction: str = "maximize") -> dict[str, list[float | None]]:
    """Median and IQR over seeds at each step. A seed with no result yet counts as the worst (so
    the median never goes down as results arrive); a statistic that lands on it is None."""
    worst = -math.inf if direction == "maximize" else math.inf
    n = max((len(c) for c in curves), default=0)
    med, lo, hi = [], [], []
    for i in range(n):
        vals = [c[i] if i < len(c) and c[i] is not None else worst for c in curves]
        m = median_iqr(vals)
        med.append(m[0] if math.isfinite(m[0]) else None)
        lo.append(m[1] if math.isfinite(m[1]) else None)
        hi.append(m[2] if math.isfinite(m[2]) else None)
    return {"median": med, "q25": lo, "q75": hi}


def _step_at(ys: list[float | None], xs: list[int], grid: list[int]) -> list[float | None]:
    """Value of the step function (ys at cumulative epochs xs) at each point of ``grid``."""
    out, j, cur = [], 0, None
    for g in grid:
        while j < len(xs) and xs[j] <= g:
            cur = ys[j]
            j += 1
        out.append(cur)
    return out


# ---------------------------------------------------------------------- a comparison
def summarize(result: "CompareResult") -> dict[str, Any]:
    """Everything the report shows, as JSON-able data, a pure function of the finished trials (so a
    resumed comparison summarises exactly as an uninterrupted one; wall times are kept apart)."""
    multi = len(result.objectives) > 1
    by_method = result.by_method()
    methods = list(by_method)
    ref = hv_reference(result) if multi else None
    metric_name = f"hypervolume({result.objectives[0]}, {result.objectives[1]})" if multi else f"best {result.objectives[0]}"
    direction = "maximize" if multi else result.directions[0]

    def metric_of(run: "RunResult"):
        return _hv_metric(run, ref) if multi else _best_metric(run)  # type: ignore[arg-type]

    def good(v: float | None) -> float:
        if v is None:
            return -math.inf  # no completed trial: worse than any result
        return v if direction == "maximize" else -v

    finals: dict[str, list[float | None]] = {}
    traj: dict[str, Any] = {}
    cap = result.budget.get("epochs")
    for m, runs in by_method.items():
        runs = sorted(runs, key=lambda r: r.seed)
        curves, epoch_curves = [], []
        for r in runs:
            ys, xs = _trajectory(r, metric_of(r))
            curves.append(ys)
            epoch_curves.append((ys, xs))
        finals[m] = [c[-1] if c else None for c in curves]
        n = max((len(c) for c in curves), default=0)
        curves = [c + [c[-1]] * (n - len(c)) if c else c for c in curves]  # a finished seed holds its final
        top = cap if cap is not None else max((xs[-1] for _, xs in epoch_curves if xs), default=0)
        grid = list(range(0, int(top) + 1))
        traj[m] = {"trials": _band(curves, direction),
                   "epochs": {"x": grid, **_band([_step_at(ys, xs, grid) for ys, xs in epoch_curves], direction)}}

    rows = {}
    goods = {m: [good(v) for v in finals[m]] for m in methods}
    same_seeds = len({len(v) for v in goods.values()}) == 1
    ranks = average_ranks([goods[m] for m in methods]) if same_seeds else [None] * len(methods)
    for m, rank in zip(methods, ranks):
        runs = by_method[m]
        vals = [v for v in finals[m] if v is not None]
        med = median_iqr(vals) if vals else (None, None, None)
        credited = [within_budget(r) for r in runs]
        rows[m] = {
            "finals": finals[m], "median": med[0], "q25": med[1], "q75": med[2],
            "mean": sum(vals) / len(vals) if vals else None, "mean_rank": rank,
            "trials": sum(len(r.trials) for r in runs) / len(runs),
            "nominal_epochs": sum(r.nominal_epochs for r in runs) / len(runs),
            "credited_trials": sum(len(c) for c in credited) / len(runs),
            "credited_epochs": sum(sum(t.nominal_epochs for t in c) for c in credited) / len(runs),
            "actual_epochs": sum(r.actual_epochs for r in runs) / len(runs),
            "pruned": sum(t.state == "PRUNED" for r in runs for t in r.trials),
            "failed": sum(t.state == "FAIL" for r in runs for t in r.trials),
            "no_result": sum(v is None for v in finals[m]),
        }
    pairs = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            ga, gb = goods[a], goods[b]
            paired = [(x, y) for x, y in zip(ga, gb) if math.isfinite(x) and math.isfinite(y)]
            w = wilcoxon([x for x, _ in paired], [y for _, y in paired]) if same_seeds else None
            pairs.append({
                "a": a, "b": b,
                "wins": sum(x > y for x, y in zip(ga, gb)), "losses": sum(x < y for x, y in zip(ga, gb)),
                "ties": sum(x == y for x, y in zip(ga, gb)),
                "p": w["p"] if w else None, "rank_biserial": w["rank_biserial"] if w else None,
                "statistic": w["statistic"] if w else None, "p_a_beats_b": prob_beats(ga, gb),
            })
    out: dict[str, Any] = {
        "problem": result.problem, "objectives": result.objectives, "directions": result.directions,
        "budget": result.budget, "seeds": result.seeds, "methods": methods,
        "metric": metric_name, "metric_direction": direction,
        "summary": rows, "pairwise": pairs, "trajectories": traj, "baseline": result.baseline,
    }
    if multi:
        out["hv_reference"] = ref
        out["fronts"] = {m: {str(r.seed): [t.values for t in _front(r)] for r in by_method[m]} for m in methods}
    return out


def _front(run: "RunResult") -> list["TrialRecord"]:
    """The Pareto front of the credited complete trials, sorted by the first objective."""
    done = [t for t in within_budget(run) if t.state == "COMPLETE" and t.values]
    signs = [1.0 if d == "maximize" else -1.0 for d in run.directions]

    def dominates(a: "TrialRecord", b: "TrialRecord") -> bool:
        av = [s * v for s, v in zip(signs, a.values)]  # type: ignore[arg-type]
        bv = [s * v for s, v in zip(signs, b.values)]  # type: ignore[arg-type]
        return all(x >= y for x, y in zip(av, bv)) and any(x > y for x, y in zip(av, bv))

    front = [t for t in done if not any(dominates(o, t) for o in done if o is not t)]
    return sorted(front, key=lambda t: t.values)  # type: ignore[arg-type, return-value]
