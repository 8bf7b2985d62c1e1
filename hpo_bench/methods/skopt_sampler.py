"""scikit-optimize's Gaussian-process Bayesian optimization, wrapped as an Optuna sampler.

Every method of hpo_bench runs as an Optuna study, so the GP gets the same ledger, storage, resume and
dashboard as TPE. The wrapper is stateless between trials: at each ``sample_relative`` it builds a
fresh ``skopt.Optimizer``, tells it every completed trial (one GP fit), and asks for one point. So a
study resumed in a new process continues exactly where it was, and the rebuilt optimizer's random
state is derived from (seed, number of finished trials), so initial random points differ from trial
to trial and the whole run is reproducible for a seed.

Pruned and failed trials carry no final value and are not told to the GP.

The suggestion is a pure function of (space, seed, finished trials, told points and values), and
fitting the GP is the costliest step of a search that is otherwise answered from the checkpoint
cache; so when a ``memo`` (the cache's ``CheckpointStore``) is given, suggestions are kept there too
and a rerun with a warm cache does not refit the GP.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..space import SearchSpace
from .ledger import counted

__all__ = ["SkoptGPSampler"]


class SkoptGPSampler(BaseSampler):
    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int | None = None,
        n_initial_points: int = 10,
        acq_func: str = "gp_hedge",
        acq_points: int = 2000,
        acq_restarts: int = 2,
        memo: Any | None = None,
    ) -> None:
        self._space = space
        self._distributions = space.to_optuna()
        self._seed = 0 if seed is None else int(seed)
        self._n_initial_points = int(n_initial_points)
        self._acq_func = acq_func
        # The acquisition search: skopt samples acq_points candidates and polishes the best
        # acq_restarts of them with L-BFGS. skopt's defaults (10,000 and 5) cost 0.49-0.76 s per
        # trial on a 2-core CPU with 15-40 told points, about as long as a digits fine-tune; these
        # cost 0.27-0.29 s, most of it the GP fit itself (benchmarks/harness_overhead.py). Pass
        # skopt's values for its exact behaviour.
        self._acq_kwargs = {"n_points": int(acq_points), "n_restarts_optimizer": int(acq_restarts)}
        self._fallback = RandomSampler(seed=seed)
        self._memo = memo

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if study._is_multi_objective():
            raise ValueError("the skopt GP sampler is single-objective")
        from skopt import Optimizer

        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0  # skopt minimises
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        xs = [self._space.to_skopt_point(t.params) for t in done if set(t.params) == set(self._space)]
        ys = [sign * float(t.value) for t in done if set(t.params) == set(self._space)]
        finished = sum(1 for t in study.get_trials(deepcopy=False) if counted(t))
        random_state = (self._seed * 1_000_003 + finished) % (2**31 - 1)
        key = None
        if self._memo is not None:
            text = json.dumps([self._space.describe(), random_state, self._n_initial_points, self._acq_func,
                               self._acq_kwargs, xs, ys], default=repr)
            key = "skopt-gp:" + hashlib.sha256(text.encode()).hexdigest()
            if (known := self._memo.get_memo(key)) is not None:
                return self._space.from_skopt(known)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skopt's duplicate-point and GP convergence chatter
            opt = Optimizer(
                self._space.to_skopt(),
                base_estimator="GP",
                n_initial_points=self._n_initial_points,
                acq_func=self._acq_func,
                acq_optimizer_kwargs=self._acq_kwargs,
                random_state=random_state,
            )
            if xs:
                opt.tell(xs, ys)
            point = [v.item() if hasattr(v, "item") else v for v in opt.ask()]
        if key is not None:
            self._memo.put_memo(key, point)
        return self._space.from_skopt(point)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
