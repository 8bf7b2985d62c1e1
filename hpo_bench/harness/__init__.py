"""Running methods at equal budgets: one study (runner.py), method x seed (compare.py)."""
from .budget import Budget
from .compare import CompareResult, compare
from .runner import RunResult, search

__all__ = ["Budget", "CompareResult", "RunResult", "compare", "search"]
