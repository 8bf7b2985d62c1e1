"""A comparison's summary as text: the headline table, the pairwise table (and under it, how small a p
its number of seeds allows), a one-line description.

The same text everywhere a comparison is shown: ``hpo-bench compare``, ``hpo-bench suite``,
``hpo-bench report`` and report.md.
"""
from __future__ import annotations

from typing import Any

from ..._text import fmt, table

__all__ = ["aggregate_text", "describe", "headline", "pairwise_note", "pairwise_table", "value_columns"]


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


def pairwise_table(summary: dict[str, Any], note: bool = True) -> str:
    """One row per pair of methods; ``note``: with ``pairwise_note`` on the line under it."""
    rows = [[f"{p['a']} vs {p['b']}", f"{p['wins']}/{p['ties']}/{p['losses']}", p["p"], p["rank_biserial"],
             p["p_a_beats_b"]] for p in summary["pairwise"]]
    hv = bool(_hv(summary))
    text = table(["pair (a vs b)", "a win/tie/loss (HV)" if hv else "a win/tie/loss", "wilcoxon p", "rank-biserial",
                  "P(HV(a) > HV(b))" if hv else "P(a > b)"], rows)
    line = pairwise_note(summary) if note else ""
    return f"{text}\n{line}" if line else text


def pairwise_note(summary: dict[str, Any]) -> str:
    """What the pairs' number of seeds lets the Wilcoxon test say: the smallest two-sided p it can
    reach (one method better on every seed, no tie: 2 / 2**n), and so whether p < 0.05 is reachable
    at all ("" when no pair was tested)."""
    pairs = [p for p in summary.get("pairwise", []) if p.get("n") is not None]
    if not pairs:
        return ""
    by_n = {p["n"]: p["min_p"] if p.get("min_p") is not None else min(1.0, 2.0 / 2.0 ** p["n"]) for p in pairs}
    ns = sorted(by_n)
    if ns[-1] == 0:
        return "no pair has a seed where both methods have a result: no test was possible"
    floor = by_n[ns[0]]
    if len(ns) == 1:
        head = f"with {ns[0]} paired seeds the smallest possible p (Wilcoxon, two-sided) is {floor:.3g}"
    else:
        head = (f"with {ns[0]} to {ns[-1]} paired seeds per pair the smallest possible p (Wilcoxon, two-sided) "
                f"is {floor:.3g} at {ns[0]} seeds and {by_n[ns[-1]]:.3g} at {ns[-1]}")
    not_equal = "'not significant' means these seeds cannot tell the methods apart, not that they are equal"
    if floor >= 0.05 and by_n[ns[-1]] < 0.05:
        return (head + ": a pair with fewer than 6 paired seeds cannot reach p < 0.05 even when one method wins "
                "every seed; " + not_equal)
    if floor >= 0.05:
        return (head + ", even when one method wins every seed: no difference can reach p < 0.05 with so few "
                "seeds, so a large p here says nothing about whether the methods differ")
    return (head + ", reached only when one method wins every seed (a tied seed is dropped, which raises it): "
            + not_equal)


def describe(summary: dict[str, Any]) -> str:
    b = summary["budget"]
    budget = " / ".join(x for x in (f"{b['trials']} trials" if b.get("trials") else "",
                                    f"{b['epochs']} nominal epochs" if b.get("epochs") else "") if x)
    return (f"{summary['problem']}: {', '.join(summary['methods'])} at {budget} x "
            f"{len(summary['seeds'])} seeds; {summary['metric']} per seed ({summary['metric_direction']})")


def aggregate_text(agg: dict[str, Any] | None) -> str:
    """A suite's ranking across problems as the console shows it (``report/aggregate.py``): the
    method table, the Friedman test and the groups the adjusted tests do not separate."""
    if not agg or not agg.get("methods") or not agg.get("blocks"):
        return ""
    rk, iq = agg["ranking"], agg["iqm"]["methods"]
    rows = [[m, rk["mean_rank"][m], iq[m]["iqm"], f"[{fmt(iq[m]['ci95'][0])}, {fmt(iq[m]['ci95'][1])}]",
             iq[m]["auc_mean"]] for m in rk["order"]]
    names = ", ".join(p["name"] for p in agg["problems"] if p["included"])
    lines = [f"across problems ({names}; {agg['blocks']} blocks): normalized regret, 0 = best known, 1 = untuned "
             "default", table(["method", "rank", "IQM", "95% CI", "AUC"], rows)]
    fr = rk.get("friedman") or {}
    if fr.get("p") is not None:
        lines.append(f"Friedman p = {fmt(fr['p'])}; not separated by the Holm-adjusted Wilcoxon tests: "
                     + ("; ".join("{" + ", ".join(g) + "}" for g in rk["groups"]) or "none"))
    return "\n".join(lines)
