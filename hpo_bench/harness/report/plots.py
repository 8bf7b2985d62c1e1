"""A comparison's plots, each answering one question: how fast does each method get there (best so
far, or hypervolume, median over seeds with the IQR band, against trials and against nominal
fine-tuning epochs: one row of panels per method, the others' medians faint behind it); which method
gets close to the best first (time to target: the share of seeds that reached it against epochs
spent, and each seed's epochs); where does each end up (final result per seed, box plots with every
seed drawn); what trade-offs did each find (Pareto fronts, one per seed, multi-objective only)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._text import fmt
from .text import describe

__all__ = ["plot_anytime", "plot_cd", "plot_finals", "plot_iqm", "plot_pareto", "plot_time_to_target",
           "plot_trajectories"]


def _wrap(text: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _colors(methods: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


_STYLES = ["-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2))]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def _points(x: list[float], band: dict[str, list[Any]]) -> tuple[list[Any], ...] | None:
    pts = [(xi, m, lo, hi) for xi, m, lo, hi in zip(x, band["median"], band["q25"], band["q75"]) if m is not None]
    if not pts:
        return None
    xs, med, lo, hi = (list(v) for v in zip(*pts))
    lo = [float("nan") if v is None else v for v in lo]  # a quartile on a seed with no result yet
    hi = [float("nan") if v is None else v for v in hi]
    return xs, med, lo, hi


def _target_label(ttt: dict[str, Any]) -> str:
    return f"target: {ttt['fraction']:g} of the best final ({fmt(ttt['target'])})"


def plot_trajectories(summary: dict[str, Any], path: Path) -> Path:
    """Small multiples: one row per method (left against trials, right against nominal epochs), the
    row's method strong with its light IQR band, every other method's median faint behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    methods, colors = summary["methods"], _colors(summary["methods"])
    n = len(methods)
    fig, axes = plt.subplots(n, 2, figsize=(12, 1.25 + 2.15 * n), sharex="col", sharey=True,
                             constrained_layout=True, squeeze=False)
    curves = {}
    for m in methods:
        tr = summary["trajectories"][m]
        curves[m] = (_points(list(range(1, len(tr["trials"]["median"]) + 1)), tr["trials"]),
                     _points(tr["epochs"]["x"], tr["epochs"]))
    ttt = summary.get("time_to_target") or {}
    for row, m in zip(axes, methods):
        for col, ax in enumerate(row):
            for other in methods:  # the others first, faint, so the row's method is drawn on top
                c = curves[other][col]
                if other != m and c:
                    ax.step(c[0], c[1], where="post", color="0.55", lw=1.0, alpha=0.7)
            c = curves[m][col]
            if c:
                ax.fill_between(c[0], c[2], c[3], step="post", color=colors[m], alpha=0.22, lw=0)
                ax.step(c[0], c[1], where="post", color=colors[m], lw=2.4)
            if ttt.get("target") is not None:
                ax.axhline(ttt["target"], color="black", ls=":", lw=1.1)
            ax.grid(alpha=0.3)
        s = summary["summary"][m]
        what = "hypervolume " if summary["metric"].startswith("hypervolume") else ""
        row[0].set_title(f"{m}: final median {what}{fmt(s['median'])} (IQR {fmt(s['q25'])} to {fmt(s['q75'])})",
                         loc="left", fontsize=10, color=colors[m], fontweight="bold")
    ylabel = summary["metric"] + " so far" if not summary["metric"].startswith("hypervolume") else summary["metric"]
    axes[-1][0].set_xlabel("trials spent")
    axes[-1][1].set_xlabel("nominal fine-tuning epochs spent")
    fig.supylabel(ylabel, fontsize=10)
    _zoom(list(axes.flat), summary)
    handles = [Line2D([], [], color="black", lw=2.4, label="the row's method: median over seeds"),
               Patch(color="black", alpha=0.22, label="its IQR (25th-75th percentile over seeds)"),
               Line2D([], [], color="0.55", lw=1.0, label="the other methods' medians")]
    if ttt.get("target") is not None:
        handles.append(Line2D([], [], color="black", ls=":", lw=1.1, label=_target_label(ttt)))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    fig.suptitle(_wrap(describe(summary)), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _epoch_span(summary: dict[str, Any]) -> float:
    """The x range of the time-to-target axes: the epoch budget, else the most epochs any method
    was credited."""
    return max((float(summary["trajectories"][m]["epochs"]["x"][-1]) for m in summary["methods"]
                if summary["trajectories"][m]["epochs"]["x"]), default=1.0) or 1.0


def plot_time_to_target(summary: dict[str, Any], path: Path) -> Path:
    """Per target (a fraction of the best final any run reached): top, the share of each method's
    seeds whose best so far had reached it against nominal epochs spent (an ECDF; higher and further
    left is better); bottom, each seed's epochs (x at the right: never reached), the median a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = summary["methods"], _colors(summary["methods"])
    ttt = summary["time_to_target"]
    levels = ttt.get("levels") or [ttt]
    span = _epoch_span(summary)
    never = span * 1.08
    fig, axes = plt.subplots(2, len(levels), figsize=(4.6 * len(levels) + 0.6, 4.0 + 0.45 * len(methods)),
                             sharex=True, constrained_layout=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 0.6 + 0.4 * len(methods)]})
    for j, lev in enumerate(levels):
        top, bottom = axes[0][j], axes[1][j]
        for k, m in enumerate(methods):
            d = lev["methods"][m]
            total = len(d["epochs"])
            hits = sorted(e for e in d["epochs"] if e is not None)
            xs = [0.0, *hits, span]
            ys = [0.0, *[(i + 1) / total for i in range(len(hits))], len(hits) / max(total, 1)]
            top.step(xs, ys, where="post", color=colors[m], lw=2.5 - 0.3 * (k % 5), ls=_STYLES[k % 5],
                     label=m if j == 0 else None)
            y = len(methods) - 1 - k
            for i, e in enumerate(d["epochs"]):
                off = ((i % 5) - 2) * 0.07  # seeds side by side where they tie
                bottom.scatter(e if e is not None else never, y + off, color=colors[m], s=26, zorder=3,
                               marker="o" if e is not None else "x")
            if d["median_epochs"] is not None:
                bottom.plot([d["median_epochs"]] * 2, [y - 0.35, y + 0.35], color="black", lw=2)
        top.set_title(f"target {lev['fraction']:g} of the best final: {fmt(lev['target'])}", fontsize=10)
        top.set_ylim(-0.03, 1.05)
        top.grid(alpha=0.3)
        bottom.axvspan(span * 1.02, span * 1.14, color="0.9", lw=0)
        bottom.text(never, len(methods) - 0.45, "never", ha="center", va="bottom", fontsize=8)
        bottom.set_yticks(range(len(methods)), list(reversed(methods)) if j == 0 else [""] * len(methods))
        bottom.set_ylim(-0.6, len(methods) - 0.1)
        bottom.set_xlim(0, span * 1.14)
        bottom.grid(axis="x", alpha=0.3)
        bottom.set_xlabel("nominal fine-tuning epochs spent")
    axes[0][0].set_ylabel("share of seeds that reached it")
    fig.legend(loc="outside lower center", ncols=min(len(methods), 6), fontsize=9, frameon=False)
    fig.suptitle(f"{_wrap(describe(summary))}\ntime to target: epochs until the best so far first reached "
                 f"the target (top: share of seeds by then; bottom: dots = seeds, x = never, bar = median "
                 f"over seeds)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _zoom(axes: Any, summary: dict[str, Any]) -> None:
    """Focus the y axis on where the methods end up (from the worst method's quartile of final
    results), so the differences that matter are visible; never beyond the plotted data. Early
    values below it are clipped: the axis label says 'so far'."""
    rows = [summary["summary"][m] for m in summary["methods"]]
    quart = [r["q25" if summary["metric_direction"] == "maximize" else "q75"] for r in rows]
    best = [v for r in rows for v in r["finals"] if v is not None]
    data = [v for m in summary["methods"] for kind in ("trials", "epochs")
            for key in ("q25", "q75", "median") for v in summary["trajectories"][m][kind][key] if v is not None]
    quart = [q for q in quart if q is not None]
    if not quart or not data:
        return
    if summary["metric_direction"] == "maximize":
        lo, hi = min(quart), max(best)
        span = max(hi - lo, 1e-3 * max(abs(hi), 1e-9))
        limits = (max(min(data), lo - 0.6 * span), min(max(data), hi) + 0.1 * span)
    else:
        lo, hi = min(best), max(quart)
        span = max(hi - lo, 1e-3 * max(abs(hi), 1e-9))
        limits = (max(min(data), lo) - 0.1 * span, min(max(data), hi + 0.6 * span))
    for ax in axes:
        ax.set_ylim(*limits)


def plot_finals(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = summary["methods"], _colors(summary["methods"])
    data = [[v for v in summary["summary"][m]["finals"] if v is not None] for m in methods]
    fig, ax = plt.subplots(figsize=(1.6 * len(methods) + 3, 4.4), constrained_layout=True)
    ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "black", "lw": 2})
    ax.set_xticks(range(1, len(methods) + 1), methods)
    for i, (m, vals) in enumerate(zip(methods, data), start=1):
        offs = [((k % 7) - 3) * 0.04 for k in range(len(vals))]  # deterministic jitter
        ax.scatter([i + o for o in offs], vals, color=colors[m], s=22, zorder=3, alpha=0.85)
    ax.set_ylabel(f"final {summary['metric']} per seed")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{_wrap(describe(summary))}\nbox = median and IQR, whiskers 1.5 IQR, dots = seeds", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _shade(color: Any, i: int, n: int) -> tuple[float, float, float]:
    """The ``i``-th of ``n`` shades of ``color``: from darker to lighter."""
    from matplotlib.colors import to_rgb

    t = 0.0 if n <= 1 else -0.45 + 0.9 * i / (n - 1)  # < 0: towards black, > 0: towards white
    return tuple(c * (1 + t) if t < 0 else c + (1 - c) * t for c in to_rgb(color))  # type: ignore[return-value]


def plot_pareto(summary: dict[str, Any], path: Path) -> Path:
    """One panel per method, one front per seed: each seed its own marker and shade of the method's
    colour, its hypervolume in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = summary["methods"], _colors(summary["methods"])
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.6), sharex=True, sharey=True,
                             constrained_layout=True, squeeze=False)
    o = summary["objectives"]
    hvs = summary.get("front_hypervolumes") or {}
    # the staircase bounding the dominated region: with x maximised, x_{i+1}'s y holds on (x_i, x_{i+1}]
    where = "pre" if summary["directions"][0] == "maximize" else "post"
    for ax, m in zip(axes[0], methods):
        seeds = sorted(summary["fronts"][m], key=int)
        for i, seed in enumerate(seeds):
            front = summary["fronts"][m][seed]
            shade, marker = _shade(colors[m], i, len(seeds)), _MARKERS[i % len(_MARKERS)]
            hv = hvs.get(m, {}).get(seed)
            label = f"seed {seed}" + (f": hypervolume {fmt(hv)}" if hv is not None else "")
            if front:
                xs, ys = [p[0] for p in front], [p[1] for p in front]
                ax.step(xs, ys, where=where, color=shade, alpha=0.7, lw=1.2)
                ax.scatter(xs, ys, color=shade, marker=marker, s=30, edgecolors="black", linewidths=0.4,
                           label=label, zorder=3)
            else:
                ax.scatter([], [], color=shade, marker=marker, label=label + " (no front)")
        s = summary["summary"][m]
        ax.set_title(f"{m}: median hypervolume {fmt(s['median'])}", fontsize=10, color=colors[m], fontweight="bold")
        ax.set_xlabel(f"{o[0]} ({summary['directions'][0]})")
        ax.grid(alpha=0.3)
        ax.legend(title="one front per seed (marker, shade)", fontsize=8, title_fontsize=8, loc="best")
    axes[0][0].set_ylabel(f"{o[1]} ({summary['directions'][1]})")
    ref = summary.get("hv_reference") or []
    ref_text = ", ".join(f"{name} {fmt(v)}" for name, v in zip(o, ref))
    fig.suptitle(f"Pareto fronts of the credited trials ({summary['problem']}); hypervolume: the area they "
                 f"dominate, bounded by the reference point ({ref_text})", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- a suite across problems
def _suite_title(agg: dict[str, Any]) -> str:
    probs = [p["name"] for p in agg["problems"] if p["included"]]
    return f"{len(probs)} problem{'s' * (len(probs) != 1)} ({', '.join(probs)}), {agg['blocks']} (problem, seed) blocks"


def plot_cd(agg: dict[str, Any], path: Path) -> Path:
    """Critical-difference diagram: the methods on their mean-rank axis (1 = best, on the left), a
    bar joining each group that the Holm-adjusted Wilcoxon tests do not separate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rk = agg["ranking"]
    order, ranks, groups = rk["order"], rk["mean_rank"], rk["groups"]
    k = len(order)
    colors = _colors(agg["methods"])
    half = (k + 1) // 2
    n_rows = max(half, k - half)
    fig, ax = plt.subplots(figsize=(9, 2.2 + 0.42 * n_rows + 0.25 * len(groups)), constrained_layout=True)
    ax.set_xlim(0.95 - 0.35 * k, k + 0.05 + 0.35 * k)   # rank 1 (best) on the left; room for the labels
    ax.set_ylim(-(n_rows + 0.8) - 0.3 * len(groups), 0.6)
    ax.axhline(0, color="black", lw=1.2)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.12], color="black", lw=1)
        ax.text(r, 0.2, str(r), ha="center", va="bottom", fontsize=9)
    for sub in [x / 2 for x in range(3, 2 * k, 2)]:
        ax.plot([sub, sub], [0, 0.06], color="black", lw=0.8)
    for i, m in enumerate(order):   # the better half labelled on the left, the rest on the right
        left = i < half
        row = i if left else k - 1 - i
        y = -(row + 1) * 0.9 - 0.3 * len(groups)
        xr = ranks[m]
        xt = 0.9 if left else k + 0.1
        ax.plot([xr, xr, xt], [0, y, y], color=colors[m], lw=1.6)
        ax.text(xt, y, f" {m} ({xr:.2f}) " if left else f" ({xr:.2f}) {m} ",
                ha="right" if left else "left", va="center", fontsize=10, color=colors[m], fontweight="bold",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    for g, members in enumerate(groups):
        xs = [ranks[m] for m in members]
        y = -0.28 - 0.3 * g
        ax.plot([min(xs) - 0.03, max(xs) + 0.03], [y, y], color="black", lw=4, solid_capstyle="round")
    ax.axis("off")
    pw = rk["power"]
    fr = rk.get("friedman") or {}
    fried = f" Friedman test over the blocks: p = {fmt(fr['p'])}." if fr.get("p") is not None else ""
    fig.suptitle(_wrap(f"Mean rank of final normalized regret over {_suite_title(agg)} (1 = best). A bar joins "
                       f"methods no pair of which the Wilcoxon signed-rank tests (Holm-adjusted over {pw['pairs']} "
                       f"pairs) separate at {pw['alpha']:g}.{fried}", 110), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_iqm(agg: dict[str, Any], path: Path) -> Path:
    """Per method: the IQM of final normalized regret over all blocks with its 95% stratified
    bootstrap interval (horizontal), every block's regret as a faint dot behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = agg["ranking"]["order"] or agg["methods"]
    colors = _colors(agg["methods"])
    stats = agg["iqm"]["methods"]
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.55 * len(methods)), constrained_layout=True)
    probs = [p["name"] for p in agg["problems"] if p["included"]]
    for i, m in enumerate(methods):
        y = len(methods) - 1 - i
        vals = [(p, v) for p in probs for v in agg["regret"][m][p] if v is not None]
        for k, (p, v) in enumerate(vals):
            ax.scatter(v, y + 0.22 + 0.05 * probs.index(p), s=12, color="0.45", alpha=0.45,
                       marker=_MARKERS[probs.index(p) % len(_MARKERS)], lw=0)
        s = stats[m]
        lo, hi = s["ci95"]
        if lo is not None:
            ax.plot([lo, hi], [y, y], color=colors[m], lw=7, alpha=0.55, solid_capstyle="butt")
            ax.plot([s["iqm"]] * 2, [y - 0.22, y + 0.22], color="black", lw=2)
            ax.text(hi, y, f"  {fmt(s['iqm'])} [{fmt(lo)}, {fmt(hi)}]", va="center", fontsize=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(1, color="black", ls=":", lw=1)
    ax.text(0, len(methods) - 0.35, " best known", fontsize=8, va="bottom")
    ax.text(1, len(methods) - 0.35, " untuned default", fontsize=8, va="bottom")
    ax.set_yticks(range(len(methods)), list(reversed(methods)))
    ax.set_ylim(-0.6, len(methods) - 0.1)
    ax.set_xlabel("final normalized regret (0 = best known, 1 = untuned default; lower is better)")
    ax.grid(axis="x", alpha=0.3)
    markers = ", ".join(f"{_MARKERS[i % len(_MARKERS)]} {p}" for i, p in enumerate(probs))
    fig.suptitle(_wrap(f"IQM of final normalized regret, bar = 95% stratified bootstrap interval "
                       f"({agg['iqm']['bootstrap']['resamples']} resamples, seeds within problems); dots = blocks "
                       f"({markers}); {_suite_title(agg)}", 110), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_anytime(agg: dict[str, Any], path: Path) -> Path:
    """Against the spent budget fraction: left, each method's mean rank over blocks (1 = best);
    right, the IQM over blocks of its best-so-far normalized regret, its AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = agg["methods"], _colors(agg["methods"])
    at = agg["anytime"]
    grid = [0.0, *at["grid"]]   # at 0 nobody has a result: every method the untuned default, tied
    tied = (len(methods) + 1) / 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for k, m in enumerate(methods):
        st = dict(color=colors[m], lw=2.3 - 0.25 * (k % 5), ls=_STYLES[k % 5], drawstyle="steps-post")
        left.plot(grid, [tied, *at["mean_rank"][m]], label=m, **st)
        a = agg["iqm"]["methods"][m]["auc_mean"]
        right.plot(grid, [agg["no_result_regret"], *at["iqm_regret"][m]], label=f"{m} (mean AUC {fmt(a)})", **st)
    left.set_ylim(len(methods) + 0.2, 0.8)  # rank 1 at the top
    left.set_ylabel("mean rank over blocks (1 = best)")
    right.set_ylabel("IQM of best-so-far normalized regret")
    right.axhline(1, color="black", ls=":", lw=1)
    right.axhline(0, color="black", lw=0.8)
    for ax in (left, right):
        ax.set_xlabel("spent fraction of the budget")
        ax.set_xlim(0, 1.0)
        ax.grid(alpha=0.3)
    left.legend(fontsize=9, frameon=False)
    right.legend(fontsize=9, frameon=False)
    fig.suptitle(_wrap(f"Anytime performance, {_suite_title(agg)}: a method with no result yet counts as the "
                       f"untuned default (regret {fmt(agg['no_result_regret'])}); AUC = area under its "
                       "best-so-far regret over the fraction [0, 1]", 120), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
