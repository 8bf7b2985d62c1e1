"""Running methods at equal budgets, and what their results say.

budget.py (the budget), results.py (the shared result types), storage.py (the trial ledger's
storage), runner.py (one study: ``search``), compare.py (method x seed), suite.py (comparisons as
data), timing.py (where wall time went), stats.py (the math), report/ (summary, text, plots,
report.md).
"""
from .budget import DEFAULT_TRIALS, Budget
from .compare import compare
from .results import CompareResult, RunResult, TrialRecord
from .runner import search

__all__ = ["DEFAULT_TRIALS", "Budget", "CompareResult", "RunResult", "TrialRecord", "compare", "search"]
