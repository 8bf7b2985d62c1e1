"""A comparison's plots, each answering one question: how fast does each method get there (best so
far, or hypervolume, median over seeds with the IQR band, against trials and against nominal
fine-tuning epochs); where does each end up (final result per seed, box plots with every seed drawn);
what trade-offs did each find (Pareto fronts, multi-objective only)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .text import describe

__all__ = ["plot_finals", "plot_pareto", "plot_trajectories"]


def _wrap(text: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _colors(methods: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


_STYLES = ["-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2))]


def _band(ax: Any, x: list[float], band: dict[str, list[Any]], color: Any, label: str, k: int) -> None:
    pts = [(xi, m, lo, hi) for xi, m, lo, hi in zip(x, band["median"], band["q25"], band["q75"]) if m is not None]
    if not pts:
        return
    xs, med, lo, hi = (list(v) for v in zip(*pts))
    lo = [float("nan") if v is None else v for v in lo]  # a quartile on a seed with no result yet
    hi = [float("nan") if v is None else v for v in hi]
    # distinct dashes and widths, so methods that coincide (same start-up trials) stay visible
    ax.step(xs, med, where="post", color=color, lw=2.6 - 0.3 * (k % 5), ls=_STYLES[k % 5], label=label)
    ax.fill_between(xs, lo, hi, step="post", color=color, alpha=0.18, lw=0)


def plot_trajectories(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = summary["methods"], _colors(summary["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for k, m in enumerate(methods):
        tr = summary["trajectories"][m]
        _band(axes[0], list(range(1, len(tr["trials"]["median"]) + 1)), tr["trials"], colors[m], m, k)
        _band(axes[1], tr["epochs"]["x"], tr["epochs"], colors[m], m, k)
    ylabel = summary["metric"] + " so far" if not summary["metric"].startswith("hypervolume") else summary["metric"]
    axes[0].set_xlabel("trials spent")
    axes[1].set_xlabel("nominal fine-tuning epochs spent")
    for ax in axes:
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _zoom(axes, summary)
    axes[0].legend(loc="lower right", fontsize=9)
    fig.suptitle(f"{_wrap(describe(summary))}\nmedian over seeds, band = IQR (25th-75th percentile)", fontsize=10)
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


def plot_pareto(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, colors = summary["methods"], _colors(summary["methods"])
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), sharex=True, sharey=True,
                             constrained_layout=True, squeeze=False)
    o = summary["objectives"]
    # the staircase bounding the dominated region: with x maximised, x_{i+1}'s y holds on (x_i, x_{i+1}]
    where = "pre" if summary["directions"][0] == "maximize" else "post"
    for ax, m in zip(axes[0], methods):
        for seed, front in summary["fronts"][m].items():
            if front:
                xs, ys = [p[0] for p in front], [p[1] for p in front]
                ax.step(xs, ys, where=where, color=colors[m], alpha=0.45, lw=1)
                ax.scatter(xs, ys, color=colors[m], s=10)
        ax.set_title(f"{m}: one front per seed", fontsize=10)
        ax.set_xlabel(o[0])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(o[1])
    fig.suptitle(f"Pareto fronts within the budget ({summary['problem']}); hypervolume reference "
                 f"{summary.get('hv_reference')}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
