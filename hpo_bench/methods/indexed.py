"""Optuna components keyed by trial number, made resume-exact.

Optuna's grid sampler gives trial n grid point n, and its Hyperband pruner puts trial n in a bracket
chosen from crc32(study name, n). A trial a killed or interrupted process left behind keeps its
number (ledger.py: it is marked ``interrupted`` and holds no result), so after a resume every later
trial would take another grid point or bracket than in an uninterrupted run. These subclasses key
the same choices by a trial's *index*: the number of trials before it that were not interrupted.
Without interruptions the index is the number, and they behave exactly as Optuna's own.
"""
from __future__ import annotations

from typing import Any

from optuna.pruners import HyperbandPruner
from optuna.samplers import GridSampler

from .ledger import is_interrupted

__all__ = ["IndexedGridSampler", "IndexedHyperbandPruner", "trial_index"]


def trial_index(study: Any, number: int) -> int:
    """How many trials before trial ``number`` were not interrupted (read from the storage, so a
    study view that filters trials, as Hyperband's bracket studies do, sees the same index)."""
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    return sum(1 for t in trials if t.number < number and not is_interrupted(t))


class IndexedGridSampler(GridSampler):
    """Optuna's ``GridSampler`` (same shuffled grid for a seed), trial index i taking point i."""

    def before_trial(self, study: Any, trial: Any) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        index = trial_index(study, trial.number)
        if index < self._n_min_trials:
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", index)
            return
        super().before_trial(study, trial)


class IndexedHyperbandPruner(HyperbandPruner):
    """Optuna's ``HyperbandPruner``, a trial's bracket drawn from its index instead of its number,
    and from the method's own identity (``PROBLEM/METHOD/seedS``, the first three parts of the
    study's name) rather than the whole name: the budget and the evaluation seed, also in the name
    (harness/storage.py), are not the pruner's randomness."""

    def _get_bracket_id(self, study: Any, trial: Any) -> int:
        index = trial_index(study, trial.number)
        return super()._get_bracket_id(_Named(study, "/".join(study.study_name.split("/")[:3])),
                                       _Renumbered(trial, index))


class _Renumbered:
    """A trial seen under another number (only ``number`` is read by the bracket choice)."""

    def __init__(self, trial: Any, number: int) -> None:
        self._trial, self.number = trial, number

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


class _Named:
    """A study seen under another name (only ``study_name`` is read by the bracket choice)."""

    def __init__(self, study: Any, name: str) -> None:
        self._study, self.study_name = study, name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
