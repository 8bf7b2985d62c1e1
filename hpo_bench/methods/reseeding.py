"""Make any Optuna sampler resume-exact: a fresh inner sampler per trial, seeded by (seed, trial).

Optuna's samplers keep their random state in memory, so a study continued in a new process draws
different points than the same study run without interruption. Every sampler we use keeps all other
state in the study's storage (TPE, NSGA-II and the grid read past trials; the skopt GP rebuilds its
model from them), so building the inner sampler anew for each trial, with a seed derived from the
method's seed and the trial's index, makes trial n's suggestion a function of (seed, n, the trials
before it) alone: an interrupted-and-resumed search equals an uninterrupted one. The index counts
the trials before it that were not interrupted (a trial a killed process left behind is marked
``interrupted`` by the runner and holds no result: methods/ledger.py), so a hard kill mid-trial
shifts nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from .indexed import trial_index

__all__ = ["ReseedingSampler", "trial_seed"]


def trial_seed(seed: int, number: int) -> int:
    return (int(seed) * 1_000_003 + int(number) * 7_919 + 1) % (2**31 - 1)


class ReseedingSampler(BaseSampler):
    """Delegates every call to ``factory(trial_seed(seed, trial.number))``."""

    def __init__(self, factory: Callable[[int], BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = int(seed)
        self._current: tuple[int, BaseSampler] | None = None

    def _for(self, study: Study, trial: FrozenTrial) -> BaseSampler:
        number = trial.number
        if self._current is None or self._current[0] != number:
            self._current = (number, self._factory(trial_seed(self._seed, trial_index(study, number))))
        return self._current[1]

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
        self._for(study, trial).after_trial(study, trial, state, values)
