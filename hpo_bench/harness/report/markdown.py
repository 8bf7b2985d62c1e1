"""A comparison's report on disk: ``summary.json`` (summary.py), the plots (plots.py) and
``report.md``.

    write_report(out_dir)          reads out_dir/compare.json (written by ``compare``), writes
                                   summary.json, report.md, trajectories.png, finals.png and, for a
                                   multi-objective problem, pareto.png
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._io import write_json_atomic, write_text_atomic
from ..._text import fmt
from ..results import CompareResult, load_compare
from .plots import plot_finals, plot_pareto, plot_trajectories
from .summary import summarize
from .text import describe, headline, pairwise_table

__all__ = ["write_report"]


def write_report(out_dir: str | Path, result: CompareResult | None = None) -> dict[str, Any]:
    """Write summary.json, the plots and report.md into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    result = result if result is not None else load_compare(out)
    if not result.runs:
        raise ValueError(f"{str(out)!r}: the comparison has no finished run yet")
    summary = summarize(result)
    plots = {"trajectories": plot_trajectories(summary, out / "trajectories.png"),
             "finals": plot_finals(summary, out / "finals.png")}
    if len(result.objectives) > 1:
        plots["pareto"] = plot_pareto(summary, out / "pareto.png")
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "report.md", _markdown(summary, plots))
    return summary


def _markdown(summary: dict[str, Any], plots: dict[str, Path]) -> str:
    b = summary["budget"]
    lines = [f"# {summary['problem']}: {', '.join(summary['methods'])}", "",
             describe(summary) + ".", "",
             "Every method gets the same budget. "
             + ("Under an epoch budget the trial that crosses it runs to its end, but only trials "
                "finished within the budget are credited (`trials`, `epochs`: credited, mean per seed). "
                if b.get("epochs") else "")
             + "`rank`: mean rank over seeds (1 = best, ties share); `none`: seeds with no completed trial.",
             "", "```", headline(summary), "```", "",
             "Paired over seeds (Wilcoxon signed-rank, two-sided, zero differences dropped; all ties -> p = 1). "
             "Rank-biserial > 0: a better. P(a > b): over all seed pairs, ties count half.", "",
             "```", pairwise_table(summary), "```", ""]
    if summary.get("baseline"):
        obj = summary["objectives"][0]
        lines += [f"Untuned default: {obj} {fmt(summary['baseline']['values'].get(obj))}.", ""]
    lines += [f"![best so far]({plots['trajectories'].name})", "", f"![final results]({plots['finals'].name})", ""]
    if "pareto" in plots:
        lines += [f"![Pareto fronts]({plots['pareto'].name})", ""]
    lines += ["Numbers: `summary.json`; every trial: `compare.json`.", ""]
    return "\n".join(lines)
