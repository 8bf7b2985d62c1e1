"""Evaluation of one configuration: compress -> fine-tune -> score (evaluator.py)."""
from .evaluator import EvalResult, EvaluationFailed, Evaluator, Reporter

__all__ = ["EvalResult", "EvaluationFailed", "Evaluator", "Reporter"]
