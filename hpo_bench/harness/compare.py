"""Method x seed at an equal budget: the question users bring ("grid or random or GP or TPE?").

Every (method, seed) run is one study in one shared storage, so a comparison interrupted half-way
continues where it stopped when the same call is made again. One evaluator (one problem, device and
evaluation seed) serves every run, so the same config gets the same result whatever method asked.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import write_json_atomic
from ..problems import Problem, get_problem
from ..methods.registry import get_method
from .budget import Budget
from .runner import RunResult, TrialRecord, default_evaluator, default_storage, open_storage, search
from .stats import final

__all__ = ["CompareResult", "MethodSummary", "compare"]


def _quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class MethodSummary:
    method: str
    finals: list[float | None]          # best primary objective per seed
    median: float | None
    q25: float | None
    q75: float | None
    mean: float | None
    trials: float                       # mean trials spent per seed
    nominal_epochs: float               # mean nominal epochs per seed
    pruned: int
    failed: int
    seconds: float                      # mean wall time per seed
    suggest_seconds: float = 0.0        # of which the method choosing its trials (mean per seed)


@dataclass
class CompareResult:
    problem: str
    objectives: list[str]
    directions: list[str]
    budget: dict[str, int | None]
    seeds: list[int]
    runs: list[RunResult] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # the problem's untuned default config and its values
    wall_seconds: float = 0.0               # this call's wall time (a resumed call: its part only)
    baseline_seconds: float = 0.0           # of which evaluating the baseline

    def by_method(self) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {}
        for r in self.runs:
            out.setdefault(r.method, []).append(r)
        return out

    def summary(self) -> list[MethodSummary]:
        rows = []
        for method, runs in self.by_method().items():
            finals = [final(r) for r in runs]  # within the budget (stats.final)
            vals = [f for f in finals if f is not None]
            rows.append(MethodSummary(
                method=method,
                finals=finals,
                median=statistics.median(vals) if vals else None,
                q25=_quantile(vals, 0.25) if vals else None,
                q75=_quantile(vals, 0.75) if vals else None,
                mean=statistics.fmean(vals) if vals else None,
                trials=statistics.fmean(len(r.trials) for r in runs),
                nominal_epochs=statistics.fmean(r.nominal_epochs for r in runs),
                pruned=sum(t.state == "PRUNED" for r in runs for t in r.trials),
                failed=sum(t.state == "FAIL" for r in runs for t in r.trials),
                seconds=statistics.fmean(r.wall_seconds for r in runs),
                suggest_seconds=statistics.fmean(r.suggest_seconds for r in runs),
            ))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "objectives": self.objectives,
            "directions": self.directions,
            "budget": self.budget,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "wall_seconds": self.wall_seconds,
            "baseline_seconds": self.baseline_seconds,
            "summary": [s.__dict__ for s in self.summary()],
            "runs": [r.to_dict() for r in self.runs],
        }


def compare(
    problem: Problem | str,
    methods: Iterable[str] = ("grid", "random", "gp", "tpe"),
    budget: Budget | int = 16,
    seeds: Iterable[int] = range(5),
    storage: str | Any | None = None,
    *,
    out: str | Path | None = None,
    device: str = "cpu",
    eval_seed: int = 0,
    evaluator: Any | None = None,
    with_baseline: bool = True,
    on_trial: Callable[[str, int, TrialRecord], None] | None = None,
) -> CompareResult:
    """Run every method with every seed at the same budget and collect the trajectories.

    ``storage`` None -> ``out/studies.log`` (``runner.default_storage``) when ``out`` is given, else
    in memory. With ``out``, the result is also written to ``out/compare.json``.
    """
    if isinstance(problem, str):
        problem = get_problem(problem)
    if isinstance(budget, int):
        budget = Budget(trials=budget)
    methods, seeds = list(methods), [int(s) for s in seeds]
    if not methods:
        raise ValueError("compare needs at least one method")
    if not seeds:
        raise ValueError("compare needs at least one seed")
    for m in methods:  # fail before any trial is spent
        spec = get_method(m)
        if not spec.supports(problem.multi_objective):
            raise ValueError(f"method {m!r} cannot run on the {'multi' if problem.multi_objective else 'single'}-objective problem {problem.name!r}")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if not out_dir.parent.is_dir():
            raise ValueError(f"output directory's parent {str(out_dir.parent)!r} does not exist")
        out_dir.mkdir(exist_ok=True)
    if storage is None and out_dir is not None:
        storage = default_storage(out_dir)
    store = open_storage(storage) if storage is None or isinstance(storage, str) else storage
    evaluator = evaluator or default_evaluator(problem, device, eval_seed)

    result = CompareResult(
        problem=problem.name, objectives=list(problem.objectives), directions=problem.directions,
        budget={"trials": budget.trials, "epochs": budget.epochs}, seeds=seeds,
    )
    t0 = time.perf_counter()
    if with_baseline:
        base_cfg = problem.baseline_config()
        base = evaluator.evaluate(base_cfg)
        result.baseline = {"config": base_cfg, "values": base.values}
        result.baseline_seconds = time.perf_counter() - t0
    for method in methods:
        for seed in seeds:
            cb = (lambda rec, m=method, s=seed: on_trial(m, s, rec)) if on_trial else None
            result.runs.append(search(problem, method, budget, seed, store, evaluator=evaluator, on_trial=cb))
            result.wall_seconds = time.perf_counter() - t0
            if out_dir is not None:  # keep what is done on disk as we go
                write_json_atomic(out_dir / "compare.json", result.to_dict())
    return result
