"""A comparison's summary as text: the headline table, the pairwise table, a one-line description.

The same text everywhere a comparison is shown: ``hpo-bench compare``, ``hpo-bench suite``,
``hpo-bench report`` and report.md.
"""
from __future__ import annotations

from typing import Any

from ..._text import table

__all__ = ["describe", "headline", "pairwise_table", "value_columns"]


def _hv(summary: dict[str, Any]) -> str:
    """The prefix of the value columns: ``HV `` where the value is a hypervolume (multi-objective)."""
    return "HV " if summary["metric"].startswith("hypervolume") else ""


def value_columns(summary: dict[str, Any]) -> list[str]:
    """The headline table's value columns (median and quartiles over seeds)."""
    return [_hv(summary) + c for c in ("median", "q25", "q75")]


def headline(summary: dict[str, Any]) -> str:
    """The headline table: one row per method, over seeds (text, aligned)."""
    rows = []
    for m in summary["methods"]:
        s = summary["summary"][m]
        rows.append([m, s["median"], s["q25"], s["q75"], s["mean_rank"], s["credited_trials"], s["credited_epochs"],
                     s["pruned"], s["no_result"]])
    return table(["method", *value_columns(summary), "rank", "trials", "epochs", "pruned", "none"], rows)


def pairwise_table(summary: dict[str, Any]) -> str:
    rows = [[f"{p['a']} vs {p['b']}", f"{p['wins']}/{p['ties']}/{p['losses']}", p["p"], p["rank_biserial"],
             p["p_a_beats_b"]] for p in summary["pairwise"]]
    hv = bool(_hv(summary))
    return table(["pair (a vs b)", "a win/tie/loss (HV)" if hv else "a win/tie/loss", "wilcoxon p", "rank-biserial",
                  "P(HV(a) > HV(b))" if hv else "P(a > b)"], rows)


def describe(summary: dict[str, Any]) -> str:
    b = summary["budget"]
    budget = " / ".join(x for x in (f"{b['trials']} trials" if b.get("trials") else "",
                                    f"{b['epochs']} nominal epochs" if b.get("epochs") else "") if x)
    return (f"{summary['problem']}: {', '.join(summary['methods'])} at {budget} x "
            f"{len(summary['seeds'])} seeds; {summary['metric']} per seed ({summary['metric_direction']})")
