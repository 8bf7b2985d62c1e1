"""The evaluator of a problem: the one place that decides how a config gets its result."""
from __future__ import annotations

from typing import Any

from ..problems import Problem
from .cached import CachingEvaluator
from .evaluator import Evaluator
from .store import CheckpointStore

__all__ = ["make_evaluator"]


def make_evaluator(problem: Problem, device: str = "cpu", seed: int = 0,
                   store: CheckpointStore | None = None) -> Any:
    """The problem's own evaluator where it has one (a ``table:`` problem answers from its cache);
    else an ``Evaluator`` on ``device`` with evaluation seed ``seed``, wrapped in a
    ``CachingEvaluator`` over ``store`` when one is given."""
    if problem.evaluator_factory is not None:
        return problem.evaluator_factory(device, seed)
    inner = Evaluator(problem, device=device, seed=seed)
    return inner if store is None else CachingEvaluator(inner, store)
