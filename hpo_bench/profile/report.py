"""What the profile shows: a progress line per point, the table, the plot."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from .._text import table

__all__ = ["format_table", "plot", "point_label", "progress_line"]


def _pct(spread: float | None) -> str:
    return "-" if spread is None else f"{spread:.0%}"


def point_label(p: dict[str, Any]) -> str:
    return f"{p['shape'][0]}x{p['shape'][1]} {p['pattern']} sparsity {p['sparsity']:g} batch {p['batch']}"


def progress_line(p: dict[str, Any], index: int, total: int, elapsed: float) -> str:
    """One line per finished point, e.g. ``[   12.3 s] point 4/30  1024x4096 unstructured sparsity
    0.9 batch 8: choice csr 3.10x dense (spread 4%, 3 rounds)``."""
    return (f"[{elapsed:7.1f} s] point {index}/{total}  {point_label(p)}: choice {p['choice']} "
            f"{p['speedup_choice']:.2f}x dense (spread {_pct(p['spread']['dense'])}, {p['rounds']} rounds)")


TABLE_HEADERS = ["shape", "pattern", "sparsity", "batch", "dense ms", "spread", "torch best", "x dense",
                 "ours best", "x dense", "choice", "x dense", "x torch"]


def table_row(p: dict[str, Any]) -> list[Any]:
    spread = _pct(p["spread"]["dense"]) + (" !" if p.get("warnings") else "")
    return [f"{p['shape'][0]}x{p['shape'][1]}", p["pattern"], p["sparsity"], p["batch"], 1e3 * p["seconds"]["dense"],
            spread, p["torch_best"] or "-", p["speedup_torch"], p["ours"], p["speedup_ours"], p["choice"],
            p["speedup_choice"], p["vs_torch"]]


def format_table(result: dict[str, Any]) -> str:
    head = (f"{result['device']}, {result['dtype']}; speedups are dense time / path time (medians over rounds); "
            f"spread = relative IQR of dense's time over rounds (! = a warning below)")
    lines = [head, "", table(TABLE_HEADERS, [table_row(p) for p in result["points"]])]
    if result.get("warnings"):
        lines += ["", *(f"warning: {w}" for w in result["warnings"])]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Speedup over dense vs sparsity: one panel per (shape, pattern), one colour per batch size;
    solid = sparsify's choice, dashed = torch's best sparse path, gray line at 1 = dense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = result["points"]
    panels = list(dict.fromkeys((tuple(p["shape"]), p["pattern"]) for p in points))
    batches = sorted({p["batch"] for p in points})
    ncols = min(3, max(1, len(panels)))
    nrows = math.ceil(max(1, len(panels)) / ncols)
    width = max(7.0, 4.5 * ncols + 1.2)  # + the batch legend on the right
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.6 * nrows + 1.6), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (shape, pattern) in zip(axes.flat, panels):
        pts = [p for p in points if tuple(p["shape"]) == shape and p["pattern"] == pattern]
        for b in batches:
            line = sorted((p for p in pts if p["batch"] == b), key=lambda p: p["sparsity"])
            if not line:
                continue
            xs = [p["sparsity"] for p in line]
            color = f"C{batches.index(b)}"
            ax.plot(xs, [p["speedup_choice"] for p in line], "o-", color=color)
            if all(p["speedup_torch"] is not None for p in line):
                ax.plot(xs, [p["speedup_torch"] for p in line], "x--", color=color, alpha=0.6)
            odd = [p for p in line if p.get("warnings")]
            ax.plot([p["sparsity"] for p in odd], [p["speedup_choice"] for p in odd], "o", ls="none",
                    color=color, markerfacecolor="white")
        ax.axhline(1.0, color="gray", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("sparsity (fraction of weights zero)")
        ax.set_ylabel("speedup over dense F.linear (x)")
        ax.set_title(f"W {shape[0]}x{shape[1]}, {pattern}", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    batch_keys = [Line2D([], [], color=f"C{i}", lw=2, label=str(b)) for i, b in enumerate(batches)]
    style_keys = [Line2D([], [], color="k", marker="o", label="solid: sparsify's choice (ours or dense)"),
                  Line2D([], [], color="k", marker="x", ls="--", alpha=0.6, label="dashed: torch's best sparse path"),
                  Line2D([], [], color="gray", lw=1, label="gray: 1 = dense"),
                  Line2D([], [], color="k", marker="o", ls="none", markerfacecolor="white",
                         label="open: timing suspect (warning)")]
    fig.legend(handles=batch_keys, loc="outside right upper", title="batch size", fontsize=8, frameon=False)
    fig.legend(handles=style_keys, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    title = (f"Sparse vs dense inference on {result['device']}, {result['dtype']}: "
             f"speedup over dense (higher is better, above the gray line sparse wins)")
    fig.suptitle(textwrap.fill(title, width=int(10 * width)), fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
