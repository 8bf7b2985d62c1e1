"""What the trial ledger says about a trial: the one rule for which trials count.

A process killed mid-trial leaves that trial RUNNING in the study. The runner marks such a trial
``interrupted`` (and FAIL) when the study is opened again: it holds no result, is not charged to the
budget, and must not shift anything that depends on how many trials came before (the per-trial seeds
of ``ReseedingSampler``, the GP's random state). Every place that counts trials asks here.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FINISHED", "INTERRUPTED", "counted", "is_interrupted"]

#: The user attribute that marks a trial a killed process left behind.
INTERRUPTED = "interrupted"
#: Trial states that end a trial (Optuna's ``TrialState`` names).
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def is_interrupted(trial: Any) -> bool:
    """Whether ``trial`` (an Optuna ``FrozenTrial``) was left behind by a killed process."""
    return bool(trial.user_attrs.get(INTERRUPTED, False))


def counted(trial: Any) -> bool:
    """Whether ``trial`` is spent: finished (complete, pruned or failed) and not interrupted."""
    return trial.state.name in FINISHED and not is_interrupted(trial)
