"""Evaluation of one configuration: compress -> fine-tune -> score.

base.py (the evaluator protocol, results, the replay-to-pruner rule), evaluator.py (the training
evaluator), pretrained.py (the dense model), store.py (the checkpoint store), cached.py (the caching
evaluator), table.py (``table:`` problems answered from the store), factory.py (which evaluator a
problem gets).
"""
from .base import EvalResult, EvaluationFailed, EvaluatorLike, Reporter
from .cached import CachingEvaluator
from .evaluator import Evaluator
from .factory import make_evaluator
from .store import CheckpointStore
from .table import load_problem

__all__ = ["CachingEvaluator", "CheckpointStore", "EvalResult", "EvaluationFailed", "Evaluator", "EvaluatorLike",
           "Reporter", "load_problem", "make_evaluator"]
