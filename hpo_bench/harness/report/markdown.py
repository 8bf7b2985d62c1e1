"""A comparison's report on disk: ``summary.json`` (summary.py), the plots (plots.py) and
``report.md``.

    write_report(out_dir)          reads out_dir/compare.json (written by ``compare``), writes
                                   summary.json, report.md, trajectories.png, time_to_target.png,
                                   finals.png and, for a multi-objective problem, a table of each
                                   seed's Pareto front in report.md (and, with two objectives,
                                   pareto.png). summary.json ends with ``provenance``
                                   (provenance.py): compare.json's when the report is written
                                   from it, else this process's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..._io import write_json_atomic, write_text_atomic
from ..._text import fmt, table
from ..provenance import provenance
from ..results import CompareResult, load_compare
from .plots import plot_finals, plot_pareto, plot_time_to_target, plot_trajectories
from .summary import summarize
from .text import describe, headline, pairwise_note, pairwise_table, value_columns

__all__ = ["aggregate_markdown", "write_report"]


def write_report(out_dir: str | Path, result: CompareResult | None = None) -> dict[str, Any]:
    """Write summary.json, the plots and report.md into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    recorded = None
    if result is None:
        result = load_compare(out)
        recorded = _recorded_provenance(out / "compare.json")
    if not result.runs:
        raise ValueError(f"{str(out)!r}: the comparison has no finished run yet")
    summary = summarize(result)
    summary["provenance"] = recorded if recorded is not None else provenance(result)
    plots = {"trajectories": plot_trajectories(summary, out / "trajectories.png"),
             "time_to_target": plot_time_to_target(summary, out / "time_to_target.png"),
             "finals": plot_finals(summary, out / "finals.png")}
    if len(result.objectives) == 2:  # a plane: with more objectives, the Pareto tables alone
        plots["pareto"] = plot_pareto(summary, out / "pareto.png")
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "report.md", _markdown(summary, plots))
    return summary


def _recorded_provenance(path: Path) -> dict[str, Any] | None:
    """The ``provenance`` compare.json recorded when its comparison ran (None: none recorded)."""
    try:
        got = json.loads(path.read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        return None
    return got if isinstance(got, dict) else None


def _multi(summary: dict[str, Any]) -> bool:
    return len(summary["objectives"]) > 1


def _what(summary: dict[str, Any]) -> str:
    """What each seed's number is, in words."""
    if not _multi(summary):
        return f"each seed's {summary['metric']} ({summary['metric_direction']})"
    o = summary["objectives"]
    ref = ", ".join(f"{name} {fmt(v)}" for name, v in zip(o, summary.get("hv_reference") or []))
    what = "area" if len(o) == 2 else "volume"
    return (f"each seed's hypervolume: the {what} its Pareto front of ({', '.join(o)}) dominates, bounded by "
            f"the reference point ({ref}); higher is better")


def _markdown(summary: dict[str, Any], plots: dict[str, Path]) -> str:
    b = summary["budget"]
    multi = _multi(summary)
    value = "hypervolume" if multi else summary["metric"]
    lines = [f"# {summary['problem']}: {', '.join(summary['methods'])}", "",
             describe(summary) + ".", "",
             "Every method gets the same budget. "
             + ("Under an epoch budget the trial that crosses it runs to its end, but only trials "
                "finished within the budget are credited (`trials`, `epochs`: credited, mean per seed). "
                if b.get("epochs") else "")
             + ", ".join(f"`{c}`" for c in value_columns(summary)) + f": over seeds, of {_what(summary)}. "
             + "`rank`: mean rank over seeds (1 = best, ties share); `none`: seeds with no completed trial.",
             "", "```", headline(summary), "```", "",
             f"Paired over seeds, on each seed's {value} (Wilcoxon signed-rank, two-sided, zero differences "
             "dropped; all ties -> p = 1; each pair on its own, no correction for the number of pairs). "
             "Rank-biserial > 0: a better. "
             + ("P(HV(a) > HV(b))" if multi else "P(a > b)") + ": over all seed pairs, ties count half.", "",
             "```", pairwise_table(summary, note=False), "```", ""]
    if note := pairwise_note(summary):
        lines += [note[0].upper() + note[1:] + ".", ""]
    if summary.get("baseline"):
        vals = summary["baseline"]["values"]
        if multi:
            pts = ", ".join(f"{o} {fmt(vals.get(o))}" for o in summary["objectives"])
            hv = summary.get("baseline_hypervolume")
            lines += [f"Untuned default: {pts}" + (f" (hypervolume of that one point: {fmt(hv)})" if hv is not None
                                                   else "") + ".", ""]
        else:
            obj = summary["objectives"][0]
            cfg = ", ".join(f"{k}={fmt(v)}" for k, v in summary["baseline"].get("config", {}).items())
            lines += [f"Untuned default: {obj} {fmt(vals.get(obj))} ({cfg}).", ""]
    if (best := summary.get("best_found")) is not None:
        obj = summary["objectives"][0]
        cfg = ", ".join(f"{k}={fmt(v)}" for k, v in best["params"].items())
        lines += [f"Best found: {obj} {fmt(best['values'][obj])} by {best['method']} seed {best['seed']} "
                  f"(trial {best['trial']}: {cfg}).", ""]
    lines += [f"![{'hypervolume' if multi else 'best'} so far]({plots['trajectories'].name})", "",
              f"![final results]({plots['finals'].name})", ""]
    lines += _time_to_target(summary, plots)
    if "pareto" in plots:
        lines += [f"![Pareto fronts, one per seed]({plots['pareto'].name})", ""]
    if multi:
        lines += _pareto_tables(summary)
    lines += ["Numbers: `summary.json`; every trial: `compare.json`.", ""]
    return "\n".join(lines)


def _time_to_target_table(summary: dict[str, Any]) -> str:
    """Per method and target: how many seeds reached it, the median nominal epochs they took."""
    ttt = summary["time_to_target"]
    levels = ttt.get("levels") or [ttt]
    headers, rows = ["method"], []
    for lev in levels:
        headers += [f"{lev['fraction']:g}: seeds", f"{lev['fraction']:g}: epochs"]
    for m in summary["methods"]:
        row: list[Any] = [m]
        for lev in levels:
            d = lev["methods"][m]
            row += [f"{d['reached']}/{len(d['epochs'])}", d["median_epochs"]]
        rows.append(row)
    return table(headers, rows)


def _time_to_target(summary: dict[str, Any], plots: dict[str, Path]) -> list[str]:
    ttt = summary.get("time_to_target")
    if not ttt or ttt.get("best") is None:
        return []
    value = "hypervolume" if _multi(summary) else summary["objectives"][0]
    lines = ["## Time to target", "",
             f"Which method gets there first: the target is a fraction of the best {value} any seed of any "
             f"method reached ({fmt(ttt['best'])}; for {ttt['fraction']:g}: {fmt(ttt['target'])}). `seeds`: how many "
             "seeds' best so far reached it within the budget; `epochs`: the median over seeds of the nominal "
             "fine-tuning epochs spent when it first did (a seed that never did counts as later than any; "
             "`-`: the median seed never did). Per seed: `time_to_target` in `summary.json`.", "",
             "```", _time_to_target_table(summary), "```", ""]
    if "time_to_target" in plots:
        lines += [f"![time to target]({plots['time_to_target'].name})", ""]
    return lines


def _and(names: list[str]) -> str:
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]


def _pareto_tables(summary: dict[str, Any]) -> list[str]:
    """Per method, every seed's Pareto front of the credited trials: one row per point, sorted by
    the first objective (``trial``: its number in the seed's study, as in compare.json)."""
    o = summary["objectives"]
    lines = ["## Pareto fronts", "",
             f"Per method and seed, the credited trials no other credited trial dominates (at least as good on "
             f"{_and(o)}, better on one), sorted by {o[0]}; the seed's hypervolume is that of these points.", ""]
    numbers = summary.get("front_trials") or {}
    hvs = summary.get("front_hypervolumes") or {}
    for m in summary["methods"]:
        seeds = sorted(summary["fronts"][m], key=int)
        rows = []
        for seed in seeds:
            nums = numbers.get(m, {}).get(seed) or [None] * len(summary["fronts"][m][seed])
            rows += [[seed, n, *p] for n, p in zip(nums, summary["fronts"][m][seed])]
        hv = ", ".join(f"seed {seed} {fmt(hvs.get(m, {}).get(seed))}" for seed in seeds)
        lines += [f"### {m}", "", f"Hypervolume: {hv}.", "",
                  "```", table(["seed", "trial", *o], rows), "```", ""]
    return lines


# ---------------------------------------------------------------------- a suite across problems
def power_line(agg: dict[str, Any]) -> str:
    """What "not significant" can and cannot mean with this many blocks."""
    pw = agg["ranking"]["power"]
    n, k, alpha = pw["blocks"], pw["pairs"], pw["alpha"]
    if not k:
        return f"With n = {n} blocks and one method there is nothing to test."
    line = (f"With n = {n} blocks, the smallest p a pair can reach is 2 / 2^{n} = {fmt(pw['min_p'])} (every block "
            f"favouring one method), {fmt(pw['min_p_holm'])} after Holm over {k} pairs. ")
    if pw["needs_one_side_holm"] is None:
        return line + (f"So no difference can reach adjusted p < {alpha:g} with this many blocks, however large: "
                       "\"not significant\" here says nothing about \"equal\"; add seeds or problems.")
    return line + (f"No difference can reach adjusted p < {alpha:g} unless at least {pw['needs_one_side_holm']} of "
                   f"the {n} blocks (that differ) favour the same method (unadjusted: {pw['needs_one_side']}); "
                   "\"not significant\" is not \"equal\".")


def aggregate_markdown(agg: dict[str, Any], plots: dict[str, Path]) -> list[str]:
    """The suite report's section on the methods across problems."""
    lines = ["## Across problems", ""]
    inc = [p for p in agg["problems"] if p["included"]]
    for p in agg["problems"]:
        if not p["included"]:
            lines += [f"Left out: {p['name']} ({p['reason']}).", ""]
    if not inc or not agg["methods"]:
        return lines + ["No comparison could be put on the common scale.", ""]
    rk, iq = agg["ranking"], agg["iqm"]
    lines += [
        "Each run's result on one scale, **normalized regret** = (best found within budget - best known) / "
        "(untuned default - best known) on the problem's objective: 0 = the best known, 1 = no better than the "
        "untuned default, above 1 worse than it (nothing is clipped). Best known: the best any method and seed "
        "reached in this suite, unless the suite file gives `best_known`. A **block** is one (problem, seed); "
        f"{agg['blocks']} blocks. Methods: {', '.join(agg['methods'])}"
        + (f" (left out, not run on every problem: {', '.join(agg['methods_dropped'])})" if agg["methods_dropped"]
           else "") + ".", "",
        "```", table(["problem", "objective", "direction", "untuned default", "best known", "source", "seeds"],
                     [[p["name"], p["objective"], p["direction"], p["default"], p["best_known"],
                       p["best_known_source"], len(p["seeds"])] for p in inc]), "```", ""]
    rows = []
    for m in rk["order"]:
        s = iq["methods"][m]
        lo, hi = s["ci95"]
        rows.append([m, rk["mean_rank"][m], s["iqm"], f"[{fmt(lo)}, {fmt(hi)}]", s["median"], s["mean"],
                     f"{s['worse_than_default']}/{s['n']}", s["auc_mean"]])
    lines += ["`rank`: mean rank of final regret over blocks (1 = best, ties share); `IQM`: interquartile mean of "
              f"final regret over blocks, `95% CI`: stratified bootstrap ({iq['bootstrap']['resamples']} resamples of "
              f"the seeds within each problem, seed {iq['bootstrap']['seed']}, percentile); `>1`: blocks worse than "
              "the untuned default; `AUC`: mean area under the best-so-far regret over the budget fraction (0 to 1; "
              "regret 1 before a first result).", "",
              "```", table(["method", "rank", "IQM", "95% CI", "median", "mean", ">1", "AUC"], rows), "```", ""]
    fr = rk.get("friedman") or {}
    if fr.get("p") is not None:
        lines += [f"Friedman test over the {fr['blocks']} blocks (rows = blocks, {fr['methods']} methods): "
                  f"chi2 = {fmt(fr['statistic'])}, df = {fr['df']}, p = {fmt(fr['p'])}.", ""]
    elif fr:
        lines += [f"Friedman test: not run ({fr.get('note')}).", ""]
    prs = rk["pairwise"]
    if prs:
        zero = prs[0]["zero_method"]
        lines += [f"Pairs: Wilcoxon signed-rank on the per-block regret differences, two-sided, zero differences "
                  f"{'dropped' if zero.startswith('wilcox') else zero}, Holm-adjusted over {len(prs)} pairs "
                  "(`p holm`); `r`: matched-pairs rank-biserial (> 0: a has the lower regret); `a/tie/b`: blocks "
                  "where a is better / equal / b is better.", "",
                  "```", table(["pair (a vs b)", "a/tie/b", "n", "p", "p holm", "r"],
                               [[f"{p['a']} vs {p['b']}", f"{p['a_better']}/{p['ties']}/{p['b_better']}",
                                 p["nonzero"], p["p"], p["p_holm"], p["rank_biserial"]] for p in prs]), "```", "",
                  power_line(agg), ""]
        groups = rk["groups"]
        lines += [("Not separated by the adjusted tests (bars in the diagram): "
                   + "; ".join("{" + ", ".join(g) + "}" for g in groups) + ".") if groups else
                  "Every pair of methods is separated by the adjusted tests.", ""]
    for key, alt in (("cd", "critical difference diagram"), ("iqm", "IQM of normalized regret"),
                     ("anytime", "anytime performance")):
        if key in plots:
            lines += [f"![{alt}]({plots[key].name})", ""]
    lines += ["Numbers: `aggregate` in `suite.json`.", ""]
    return lines
