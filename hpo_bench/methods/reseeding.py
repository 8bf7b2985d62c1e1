"""Make any Optuna sampler resume-exact: a fresh inner sampler per trial, seeded by (seed, trial).

Optuna's samplers keep their random state in memory, so a study continued in a new process draws
different points than the same study run without interruption. Every sampler we use keeps all other
state in the study's storage (TPE, NSGA-II and the grid read past trials; the skopt GP rebuilds its
model from them and keeps its Hedge gains on the trials), so building the inner sampler anew for
each trial, with a seed derived from the method's seed and the trial's index, makes trial n's
suggestion a function of (seed, n, the trials before it) alone: an interrupted-and-resumed search
equals an uninterrupted one. The index counts the trials before it that were not interrupted (a
trial a killed process left behind is marked ``interrupted`` by the runner and holds no result:
methods/ledger.py), so a hard kill mid-trial shifts nothing.

Thread-safe: with ``study.optimize(n_jobs > 1)`` several trials run at once, each in its own thread,
so the inner samplers are kept per trial (keyed by study and trial number, under a lock) and
dropped when the trial ends; a trial's inner sampler is built once, whichever thread asks, and never
rebuilt in the middle of the trial (which would repeat its first draw).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from .indexed import trial_index

__all__ = ["ReseedingSampler", "trial_seed"]

#: Inner samplers kept for trials that have not ended. A trial normally ends (``after_trial``) and
#: its entry goes; this bound only matters to callers that start trials and never finish them (the
#: oldest are dropped first, long after any real trial that old would have ended).
MAX_OPEN_TRIALS = 4096


def trial_seed(seed: int, number: int) -> int:
    return (int(seed) * 1_000_003 + int(number) * 7_919 + 1) % (2**31 - 1)


class ReseedingSampler(BaseSampler):
    """Delegates every call for a trial to ``factory(trial_seed(seed, index of the trial))``, built
    once per trial."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = int(seed)
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int, int], BaseSampler] = {}  # insertion order = age

    @staticmethod
    def _key(study: Study, trial: FrozenTrial) -> tuple[int, int, int]:
        return id(study._storage), study._study_id, trial.number

    def _for(self, study: Study, trial: FrozenTrial) -> BaseSampler:
        key = self._key(study, trial)
        with self._lock:
            inner = self._open.get(key)
            if inner is None:
                inner = self._factory(trial_seed(self._seed, trial_index(study, trial.number)))
                self._open[key] = inner
                while len(self._open) > MAX_OPEN_TRIALS:
                    del self._open[next(iter(self._open))]
            return inner

    def reseed_rng(self) -> None:  # per-trial seeds already differ; nothing to reseed
        pass

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._for(study, trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        try:
            self._for(study, trial).after_trial(study, trial, state, values)
        finally:
            with self._lock:
                self._open.pop(self._key(study, trial), None)
