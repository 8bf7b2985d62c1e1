"""A comparison's report on disk: ``summary.json`` (summary.py), the plots (plots.py) and
``report.md``.

    write_report(out_dir)          reads out_dir/compare.json (written by ``compare``), writes
                                   summary.json, report.md, trajectories.png, time_to_target.png,
                                   finals.png and, for a multi-objective problem, pareto.png (and
                                   a table of each seed's Pareto front in report.md)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._io import write_json_atomic, write_text_atomic
from ..._text import fmt, table
from ..results import CompareResult, load_compare
from .plots import plot_finals, plot_pareto, plot_time_to_target, plot_trajectories
from .summary import summarize
from .text import describe, headline, pairwise_table, value_columns

__all__ = ["write_report"]


def write_report(out_dir: str | Path, result: CompareResult | None = None) -> dict[str, Any]:
    """Write summary.json, the plots and report.md into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    result = result if result is not None else load_compare(out)
    if not result.runs:
        raise ValueError(f"{str(out)!r}: the comparison has no finished run yet")
    summary = summarize(result)
    plots = {"trajectories": plot_trajectories(summary, out / "trajectories.png"),
             "time_to_target": plot_time_to_target(summary, out / "time_to_target.png"),
             "finals": plot_finals(summary, out / "finals.png")}
    if len(result.objectives) > 1:
        plots["pareto"] = plot_pareto(summary, out / "pareto.png")
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "report.md", _markdown(summary, plots))
    return summary


def _multi(summary: dict[str, Any]) -> bool:
    return len(summary["objectives"]) > 1


def _what(summary: dict[str, Any]) -> str:
    """What each seed's number is, in words."""
    if not _multi(summary):
        return f"each seed's {summary['metric']} ({summary['metric_direction']})"
    o = summary["objectives"]
    ref = ", ".join(f"{name} {fmt(v)}" for name, v in zip(o, summary.get("hv_reference") or []))
    return (f"each seed's hypervolume: the area its Pareto front of ({o[0]}, {o[1]}) dominates, bounded by "
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
             "dropped; all ties -> p = 1). Rank-biserial > 0: a better. "
             + ("P(HV(a) > HV(b))" if multi else "P(a > b)") + ": over all seed pairs, ties count half.", "",
             "```", pairwise_table(summary), "```", ""]
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


def _pareto_tables(summary: dict[str, Any]) -> list[str]:
    """Per method, every seed's Pareto front of the credited trials: one row per point, sorted by
    the first objective (``trial``: its number in the seed's study, as in compare.json)."""
    o = summary["objectives"]
    lines = ["## Pareto fronts", "",
             f"Per method and seed, the credited trials no other credited trial beats on both {o[0]} and "
             f"{o[1]}, sorted by {o[0]}; the seed's hypervolume is that of these points.", ""]
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
