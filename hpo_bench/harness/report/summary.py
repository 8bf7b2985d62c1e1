"""The summary of a comparison: every number the report shows, as JSON-able data.

``summarize(result)`` is a pure function of the finished trials (so a resumed comparison summarises
exactly as an uninterrupted one; wall times are kept apart). It is the one summary of a comparison:
``compare`` and ``suite`` print it, ``summary.json`` holds it, ``compare.json`` carries its rows.

* ``within_budget(run)``: the trials credited to a run. Under an epoch budget only trials that
  finished within it count (the trial that crosses the budget runs to its end, as in runner.py, but
  what it found is not credited), so no method gets more nominal epochs than another.
* ``final(run)``: the best primary value among the credited trials.
* per method: median and IQR of the finals over seeds, mean rank, credited trials and epochs;
  per pair of methods: wins/ties/losses, Wilcoxon (with what test it is, its n and the smallest p
  that n allows), rank-biserial, P(a > b) (stats.py); best-so-far (or hypervolume, over every
  objective) trajectories against trials and against nominal epochs.
* ``time_to_target(result, fraction)``: per method and seed, the nominal epochs (and trials) its
  best so far (or hypervolume) took to come within ``fraction`` of the best final any run reached.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..budget import Budget
from ..results import CompareResult, RunResult, TrialRecord
from ..stats import (
    WILCOXON, average_ranks, hypervolume, median_iqr, pareto_front, prob_beats, wilcoxon, wilcoxon_min_p,
)

__all__ = ["HV_REFERENCE", "TARGET_FRACTION", "TARGET_FRACTIONS", "best_found", "final", "hv_reference", "summarize",
           "target_value", "time_to_target", "within_budget"]

# Hypervolume reference point per objective (in the objective's own units): the worst value that
# still counts. Objectives without one take the worst value seen anywhere in the comparison.
HV_REFERENCE: dict[str, float] = {"accuracy": 0.0, "sparsity": 0.0}

# Time to target: the target is this fraction of the best final any run reached (the headline
# figure), and the figure and table also show these easier ones.
TARGET_FRACTION = 0.99
TARGET_FRACTIONS = (0.9, 0.95, 0.99)


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
        pts = [t.values for t in trials if t.state == "COMPLETE" and t.values]
        return hypervolume(pts, reference, run.directions)  # type: ignore[arg-type]
    return hv


def hv_reference(result: CompareResult) -> list[float]:
    """The comparison's fixed reference point: ``HV_REFERENCE`` per objective, else the worst
    value any run saw (the same for every method and seed); one value per objective."""
    ref = []
    for i, (obj, d) in enumerate(zip(result.objectives, result.directions)):
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


def _metric(result: CompareResult) -> tuple[str, str, Any]:
    """The comparison's metric: its name, its direction and, per run, the function of a prefix of
    credited trials (the best primary value; with several objectives, the hypervolume of all of them)."""
    if len(result.objectives) > 1:
        ref = hv_reference(result)
        return (f"hypervolume({', '.join(result.objectives)})", "maximize", lambda run: _hv_metric(run, ref))
    return f"best {result.objectives[0]}", result.directions[0], _best_metric


# ---------------------------------------------------------------------- time to target
def target_value(best: float, fraction: float, direction: str) -> float:
    """The value ``(1 - fraction) * |best|`` worse than ``best``: ``fraction * best`` for a positive
    maximised metric (accuracy, hypervolume), ``(2 - fraction) * best`` for a positive minimised one."""
    slack = (1.0 - fraction) * abs(best)
    return best - slack if direction == "maximize" else best + slack


def _median_or_none(xs: list[float | None]) -> float | None:
    """Median, a None (never) counting as later than anything: None where the median lands on one."""
    if not xs:
        return None
    s = sorted(xs, key=lambda v: (v is None, v if v is not None else 0.0))
    n = len(s)
    a, b = s[(n - 1) // 2], s[n // 2]
    return None if a is None or b is None else (a + b) / 2


def time_to_target(result: CompareResult, fraction: float = TARGET_FRACTION) -> dict[str, Any]:
    """How long each method takes to get close to the best anyone got, a pure function of the
    finished trials.

    ``best``: the best final (``final``, or the final hypervolume) of any method and seed;
    ``target``: ``target_value(best, fraction, direction)``. Per method, seeds ascending: the
    cumulative nominal epochs (``epochs``) and the number of credited trials (``trials``) after
    which the run's best so far first reached the target (None: never, within the budget);
    ``reached``: how many seeds did; ``median_epochs``/``median_trials``: over all seeds, a seed
    that never reached it counting as later than any (None where the median lands on one)."""
    name, direction, metric_of = _metric(result)

    def good(v: float) -> float:
        return v if direction == "maximize" else -v

    curves: dict[str, list[tuple[int, list[float | None], list[int]]]] = {}
    for m, runs in result.by_method().items():
        curves[m] = [(r.seed, *_trajectory(r, metric_of(r))) for r in sorted(runs, key=lambda r: r.seed)]
    finals = [ys[-1] for per in curves.values() for _, ys, _ in per if ys and ys[-1] is not None]
    best = max(finals, key=good) if finals else None
    target = target_value(best, fraction, direction) if best is not None else None
    methods: dict[str, Any] = {}
    for m, per in curves.items():
        epochs: list[int | None] = []
        trials: list[int | None] = []
        for _, ys, xs in per:
            hit = next((i for i, y in enumerate(ys) if y is not None and target is not None
                        and good(y) >= good(target)), None)
            epochs.append(xs[hit] if hit is not None else None)
            trials.append(hit + 1 if hit is not None else None)
        methods[m] = {"seeds": [s for s, _, _ in per], "epochs": epochs, "trials": trials,
                      "reached": sum(e is not None for e in epochs),
                      "median_epochs": _median_or_none(epochs),  # type: ignore[arg-type]
                      "median_trials": _median_or_none(trials)}  # type: ignore[arg-type]
    return {"fraction": fraction, "metric": name, "direction": direction, "best": best, "target": target,
            "methods": methods}


# ---------------------------------------------------------------------- a comparison
def summarize(result: CompareResult) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data, a pure function of the finished trials (so a
    resumed comparison summarises exactly as an uninterrupted one; wall times are kept apart)."""
    multi = len(result.objectives) > 1
    by_method = result.by_method()
    methods = list(by_method)
    ref = hv_reference(result) if multi else None
    metric_name, direction, metric_of = _metric(result)

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
                # keys added later: what the p is, and how small this many seeds lets it get
                **WILCOXON, "correction": "none", "n": w["n"] if w else None,
                "n_nonzero": w["n_nonzero"] if w else None, "min_p": wilcoxon_min_p(w["n"]) if w else None,
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
    # keys added later (every key above keeps its value)
    out["time_to_target"] = {**time_to_target(result, TARGET_FRACTION),
                             "levels": [time_to_target(result, f) for f in TARGET_FRACTIONS]}
    if multi:
        out["front_trials"] = {m: {str(r.seed): [t.number for t in _front(r)] for r in by_method[m]}
                               for m in methods}
        out["front_hypervolumes"] = {m: {str(r.seed): _hv_metric(r, ref)(within_budget(r))  # type: ignore[arg-type]
                                         for r in by_method[m]} for m in methods}
        base = (result.baseline or {}).get("values") or {}
        if all(isinstance(base.get(o), (int, float)) for o in result.objectives):
            out["baseline_hypervolume"] = hypervolume([[base[o] for o in result.objectives]], ref,
                                                      result.directions)  # type: ignore[arg-type]
    if not multi:
        out["best_found"] = best_found(result)
    return out


def best_found(result: CompareResult) -> dict[str, Any] | None:
    """The best credited trial of any method and seed (primary objective; earliest on ties): what
    the search bought, beside the untuned default."""
    best: tuple[RunResult, TrialRecord] | None = None
    for r in result.runs:
        for t in within_budget(r):
            if t.state == "COMPLETE" and t.values and (
                    best is None or _goodness(r, t.values[0]) > _goodness(best[0], best[1].values[0])):  # type: ignore[index]
                best = (r, t)
    if best is None:
        return None
    r, t = best
    return {"method": r.method, "seed": r.seed, "trial": t.number, "values": dict(zip(result.objectives, t.values)),
            "params": dict(t.params)}


def _front(run: RunResult) -> list[TrialRecord]:
    """The Pareto front of the credited complete trials, sorted by the first objective."""
    done = [t for t in within_budget(run) if t.state == "COMPLETE" and t.values]
    front = [done[i] for i in pareto_front([t.values for t in done], run.directions)]  # type: ignore[misc]
    return sorted(front, key=lambda t: t.values)  # type: ignore[arg-type, return-value]
