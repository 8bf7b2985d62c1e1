"""The ``METHODS`` registry: name -> how to build that method's Optuna sampler and pruner.

A method is data (a ``Method``), as in Syne Tune's baselines: one loop in harness/ runs any of them.
Every factory receives the search space, the seed, the trial budget and the problem's maximum
fine-tuning epochs, so budget-aware methods (grid, Hyperband) are built for the budget they get.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..space import SearchSpace

__all__ = ["METHODS", "Method", "MethodContext", "check_method", "get_method", "n_initial"]


@dataclass(frozen=True)
class MethodContext:
    space: SearchSpace
    seed: int
    budget_trials: int
    max_epochs: int
    memo: Any | None = None  # a CheckpointStore where pure, costly suggestions may be kept
    n_workers: int = 1       # trials evaluated at once in the study (samplers then see pending trials)


@dataclass(frozen=True)
class Method:
    name: str
    objectives: str  # "single" | "multi" | "any"
    description: str
    build: Callable[[MethodContext], tuple[Any, Any]]  # -> (sampler, pruner or None)
    # Keeps its random state in memory -> rebuild per trial (methods/reseeding.py). The grid sampler
    # must not be: its seed fixes the grid's permutation, and trial n takes grid point n.
    reseed_per_trial: bool = True
    # Built for its budget as a whole: a fixed set of points that fits it (``Budget.trials_for``),
    # every one evaluated and none truncated; the search stops when the points are done.
    budget_matched: bool = False

    def supports(self, multi_objective: bool) -> bool:
        return self.objectives == "any" or (self.objectives == "multi") == multi_objective


def check_method(name: str, problem: Any) -> Method:
    """The method called ``name``, if it can run on ``problem`` (anything with ``name`` and
    ``multi_objective``); else a ValueError that says why. Every entry point asks here before it
    spends a trial."""
    method = get_method(name)
    if not method.supports(problem.multi_objective):
        kind = "multi" if problem.multi_objective else "single"
        raise ValueError(f"method {name!r} ({method.objectives}-objective) cannot run on {problem.name!r}, "
                         f"a {kind}-objective problem")
    return method


def n_initial(budget_trials: int) -> int:
    """Random start-up trials of model-based methods: a quarter of the budget, between 3 and 10
    (Optuna's and skopt's default of 10 would leave a 12-trial budget nearly all random)."""
    return max(3, min(10, budget_trials // 4))


def _grid(c: MethodContext):
    from .indexed import IndexedGridSampler

    return IndexedGridSampler(c.space.grid_levels(c.budget_trials), seed=c.seed), None


def _random(c: MethodContext):
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=c.seed), None


def _gp(c: MethodContext):
    from .skopt_sampler import SkoptGPSampler

    return SkoptGPSampler(c.space, seed=c.seed, n_initial_points=n_initial(c.budget_trials), memo=c.memo), None


def _gp_optuna(c: MethodContext):
    from .skopt_sampler import OptunaGPSampler

    return OptunaGPSampler(seed=c.seed, n_startup_trials=n_initial(c.budget_trials)), None


def _tpe(c: MethodContext):
    from optuna.samplers import TPESampler

    # several trials at once: a running trial counts as a poor one, so they spread (Optuna's advice)
    return TPESampler(seed=c.seed, n_startup_trials=n_initial(c.budget_trials), multivariate=True,
                      constant_liar=c.n_workers > 1)


def _tpe_plain(c: MethodContext):
    return _tpe(c), None


def _tpe_median(c: MethodContext):
    from optuna.pruners import MedianPruner

    return _tpe(c), MedianPruner(n_startup_trials=n_initial(c.budget_trials), n_warmup_steps=1)


def _tpe_hyperband(c: MethodContext):
    from .indexed import IndexedHyperbandPruner

    return _tpe(c), IndexedHyperbandPruner(min_resource=1, max_resource=max(c.max_epochs, 2), reduction_factor=3)


def _nsga2(c: MethodContext):
    from optuna.samplers import NSGAIISampler

    return NSGAIISampler(seed=c.seed, population_size=max(4, min(50, c.budget_trials // 3))), None


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("grid", "any", "the best-covering full grid of at most `budget` points", _grid,
               reseed_per_trial=False, budget_matched=True),
        Method("random", "any", "uniform random search (log-uniform where the space says log)", _random),
        Method("gp", "single", "Bayesian optimization: scikit-optimize's GP as gp_minimize runs it (Hedge over "
               "EI/LCB/PI, its gains kept across trials)", _gp),
        Method("gp-optuna", "single", "Bayesian optimization: Optuna's GPSampler (log EI; a point it would "
               "repeat is replaced by a random one)", _gp_optuna),
        Method("tpe", "single", "Optuna's multivariate TPE", _tpe_plain),
        Method("tpe-median", "single", "TPE + MedianPruner on per-epoch validation accuracy", _tpe_median),
        Method("tpe-hyperband", "single", "TPE + HyperbandPruner (resource = fine-tuning epochs)", _tpe_hyperband),
        Method("random-mo", "multi", "random search, Pareto front of all objectives", _random),
        Method("nsga2", "multi", "Optuna's NSGA-II", _nsga2),
        Method("tpe-mo", "multi", "Optuna's multi-objective TPE", _tpe_plain),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
