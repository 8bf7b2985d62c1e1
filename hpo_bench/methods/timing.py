"""How long a search method itself takes to choose its trials, apart from evaluating them.

A comparison's wall time is evaluation, the method's own suggestion work (a GP fit and acquisition
search per trial, TPE's density estimates) and the harness (the trial ledger, statistics, plots).
The second is part of what a method costs a user, so it is measured and reported per method
rather than folded into "overhead": ``TimedSampler`` wraps any Optuna sampler and adds up the
seconds spent in its calls (reading the study's history through the storage included).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

__all__ = ["TimedSampler"]


class TimedSampler(BaseSampler):
    """Delegates every call to ``inner``; ``seconds`` is the total time spent in those calls."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.seconds = 0.0
        self._lock = threading.Lock()  # trials may run in several threads (search's n_workers)

    def _timed(self, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds += dt

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._timed(self.inner.before_trial, study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._timed(self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._timed(self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._timed(self.inner.sample_independent, study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._timed(self.inner.after_trial, study, trial, state, values)
