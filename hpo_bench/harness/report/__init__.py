"""A comparison's report: the summary (summary.py: every number, as data), its text (text.py), its
plots (plots.py) and report.md with summary.json on disk (markdown.py)."""
from ..results import load_compare
from .markdown import write_report
from .summary import final, summarize, within_budget
from .text import describe, headline, pairwise_table

__all__ = ["describe", "final", "headline", "load_compare", "pairwise_table", "summarize", "within_budget",
           "write_report"]
