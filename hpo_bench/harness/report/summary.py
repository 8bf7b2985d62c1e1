"""The summary of a comparison: every number the report shows, as JSON-able data.

``summarize(result)`` is a pure function of the finished trials (so a resumed comparison summarises
exactly as an uninterrupted one; wall times are kept apart). It is the one summary of a comparison:
``compare`` and ``suite`` print it, ``summary.json`` holds it, ``compare.json`` carries its rows.

* ``within_budget(run)``: the trials credited to a run. Under an epoch budget only trials that
  finished within it count (the trial that crosses the budget runs to its end, as in runner.py, but
  what it found is not credited), so no method gets more nominal epochs than another.
* ``final(run)``: the best primary value among the credited trials.
* per method: median and IQR of the finals over seeds, mean rank, credited trials and epochs;
  per pair of methods: wins/ties/losses, Wilcoxon, rank-biserial, P(a > b) (stats.py); best-so-far
  (or hypervolume) trajectories against trials and against nominal epochs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..budget import Budget
from ..results import CompareResult, RunResult, TrialRecord
from ..stats import average_ranks, hypervolume_2d, median_iqr, pareto_front, prob_beats, wilcoxon

__all__ = ["HV_REFERENCE", "final", "hv_reference", "summarize", "within_budget"]

# Hypervolume reference point per objective (in the objective's own units): the worst value that
# still counts. Objectives without one take the worst value seen anywhere in the comparison.
HV_REFERENCE: dict[str, float] = {"accuracy": 0.0, "sparsity": 0.0}


def within_budget(run: RunResult) -> list[TrialRecord]:
    """The trials credited to a run (``Budget.credited``: under an epoch budget, those finished
    within it)."""
    budget = Budget(trials=run.budget.get("trials"), epochs=run.budget.get("epochs"))
    return run.trials[: budget.credited([t.nominal_epochs for t in run.trials])]


def _goodness(run: RunResult, value: float) -> float:
    return value if run.directions[0] == "maximize" else -value


def final(run: RunResult) -> float | None:
    """Best primary value among the trials credited within the budget (None if none completed)."""
    vals = [t.values[0] for t in within_budget(run) if t.state == "COMPLETE" and t.values]
    return max(vals, key=lambda v: _goodness(run, v)) if vals else None


def _trajectory(run: RunResult, metric: Any) -> tuple[list[float | None], list[int]]:
    """Metric after each credited trial, and the cumulative nominal epochs at that point."""
    trials = within_budget(run)
    ys, xs, spent = [], [], 0
    for i, t in enumerate(trials):
        spent += t.nominal_epochs
        ys.append(metric(trials[: i + 1]))
        xs.append(spent)
    return ys, xs


def _best_metric(run: RunResult):
    def best(trials: list[TrialRecord]) -> float | None:
        vals = [t.values[0] for t in trials if t.state == "COMPLETE" and t.values]
        return max(vals, key=lambda v: _goodness(run, v)) if vals else None
    return best


def _hv_metric(run: RunResult, reference: Sequence[float]):
    def hv(trials: list[TrialRecord]) -> float:
        pts = [t.values[:2] for t in trials if t.state == "COMPLETE" and t.values]
        return hypervolume_2d(pts, reference, run.directions[:2])  # type: ignore[arg-type]
    return hv


def hv_reference(result: CompareResult) -> list[float]:
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
def summarize(result: CompareResult) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data, a pure function of the finished trials (so a
    resumed comparison summarises exactly as an uninterrupted one; wall times are kept apart)."""
    multi = len(result.objectives) > 1
    by_method = result.by_method()
    methods = list(by_method)
    ref = hv_reference(result) if multi else None
    metric_name = f"hypervolume({result.objectives[0]}, {result.objectives[1]})" if multi else f"best {result.objectives[0]}"
    direction = "maximize" if multi else result.directions[0]

    def metric_of(run: RunResult):
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


def _front(run: RunResult) -> list[TrialRecord]:
    """The Pareto front of the credited complete trials, sorted by the first objective."""
    done = [t for t in within_budget(run) if t.state == "COMPLETE" and t.values]
    front = [done[i] for i in pareto_front([t.values for t in done], run.directions)]  # type: ignore[misc]
    return sorted(front, key=lambda t: t.values)  # type: ignore[arg-type, return-value]
