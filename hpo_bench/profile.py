"""``hpo-bench profile-kernels``: where does sparse inference beat dense, on this machine?

For each weight shape, sparsity, pruning pattern and batch size, times side by side (interleaved,
median): dense ``F.linear``; torch's own sparse paths (``F.linear`` on a CSR / BSR weight where torch
supports it, ``torch.sparse.mm`` on the CSR weight times the transposed input); and our formats
through ``ops.sparse_linear``. ``choice`` is what ``sparsify`` would run: our fastest format if it
beats dense by the margin, else dense. The answer is a table, a JSON file and a plot of speedup over
dense versus sparsity (one line per batch size).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import ops
from ._text import table
from .compression.sparsify import device_name, time_interleaved

__all__ = ["GRID", "QUICK_GRID", "format_table", "plot", "profile_kernels"]

GRID = {
    "shapes": [(4096, 4096), (1024, 4096), (4096, 1024)],
    "sparsities": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
    "batches": [1, 8, 64, 256],
    "patterns": ["unstructured", "block16"],
    "repeats": 7,
}
QUICK_GRID = {
    "shapes": [(512, 1024)],
    "sparsities": [0.5, 0.9, 0.99],
    "batches": [1, 16],
    "patterns": ["unstructured"],
    "repeats": 3,
}
OURS = ("csr", "bsr", "bitmask")
MARGIN = 1.1  # as sparsify(): a sparse format must beat dense by 10%


def pruned_weight(shape: tuple[int, int], sparsity: float, pattern: str, device: torch.device,
                  seed: int = 0) -> torch.Tensor:
    """A random weight with ``sparsity`` zeros: anywhere (unstructured) or in 16 x 16 tiles."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    if pattern == "unstructured":
        keep = torch.rand(shape, generator=g) >= sparsity
    elif pattern == "block16":
        tiles = torch.rand(-(-shape[0] // 16), -(-shape[1] // 16), generator=g) >= sparsity
        keep = tiles.repeat_interleave(16, 0).repeat_interleave(16, 1)[: shape[0], : shape[1]]
    else:
        raise ValueError(f"unknown pattern {pattern!r}; choose unstructured or block16")
    return (w * keep).to(device)


def _torch_paths(w: torch.Tensor, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """torch's own sparse products that run here (each is tried once; unsupported ones are left out)."""
    csr = w.to_sparse_csr()
    paths = {"torch-csr": lambda: F.linear(x, csr), "torch-sparse.mm": lambda: torch.sparse.mm(csr, x.t()).t()}
    if w.shape[0] % 16 == 0 and w.shape[1] % 16 == 0:
        bsr = w.to_sparse_bsr((16, 16))
        paths["torch-bsr"] = lambda: F.linear(x, bsr)
    ok = {}
    for name, fn in paths.items():
        try:
            fn()
            ok[name] = fn
        except (RuntimeError, NotImplementedError):
            pass
    return ok


def profile_point(w: torch.Tensor, batch: int, repeats: int) -> dict[str, Any]:
    """Median seconds of every path on one (weight, batch); speedups over dense and over torch."""
    import warnings

    x = torch.randn(batch, w.shape[1], device=w.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        fns: dict[str, Callable[[], Any]] = {"dense": lambda: F.linear(x, w)}
        fns.update(_torch_paths(w, x))
    for fmt in OURS:
        sw = ops.to_sparse(w, fmt, block=16)
        fns[fmt] = lambda sw=sw: ops.sparse_linear(x, sw)
    with torch.no_grad():
        sec = time_interleaved(fns, repeats, w.device)
    dense = sec["dense"]
    ours = min(OURS, key=lambda f: sec[f])
    torch_best = min((k for k in sec if k.startswith("torch-")), key=lambda k: sec[k], default=None)
    choice = ours if sec[ours] * MARGIN < dense else "dense"
    return {
        "seconds": sec, "ours": ours, "torch_best": torch_best, "choice": choice,
        "speedup_ours": dense / sec[ours], "speedup_choice": dense / sec[choice],
        "speedup_torch": dense / sec[torch_best] if torch_best else None,
        "vs_torch": sec[torch_best] / sec[choice] if torch_best else None,
    }


def profile_kernels(device: str = "cpu", quick: bool = False, *, shapes: Sequence[tuple[int, int]] | None = None,
                    sparsities: Sequence[float] | None = None, batches: Sequence[int] | None = None,
                    patterns: Sequence[str] | None = None, repeats: int | None = None,
                    on_point: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Time the grid (``QUICK_GRID`` if ``quick``, else ``GRID``; any axis can be overridden)."""
    grid = dict(QUICK_GRID if quick else GRID)
    for name, value in (("shapes", shapes), ("sparsities", sparsities), ("batches", batches),
                        ("patterns", patterns), ("repeats", repeats)):
        if value is not None:
            grid[name] = value
    for s in grid["sparsities"]:
        if not 0.0 <= float(s) < 1.0:
            raise ValueError(f"sparsities must be in [0, 1), got {s}")
    dev = torch.device(device)
    points = []
    for shape in grid["shapes"]:
        for pattern in grid["patterns"]:
            for s in grid["sparsities"]:
                w = pruned_weight(tuple(shape), float(s), pattern, dev)
                for b in grid["batches"]:
                    point = {"shape": list(shape), "pattern": pattern, "sparsity": float(s), "batch": int(b),
                             **profile_point(w, int(b), int(grid["repeats"]))}
                    points.append(point)
                    if on_point is not None:
                        on_point(point)
    return {"device": device_name(dev), "threads": torch.get_num_threads(), "dtype": "float32",
            "margin": MARGIN, "grid": {k: v for k, v in grid.items()}, "points": points}


TABLE_HEADERS = ["shape", "pattern", "sparsity", "batch", "dense ms", "torch best", "x dense",
                 "ours best", "x dense", "choice", "x dense", "x torch"]


def table_row(p: dict[str, Any]) -> list[Any]:
    return [f"{p['shape'][0]}x{p['shape'][1]}", p["pattern"], p["sparsity"], p["batch"],
            1e3 * p["seconds"]["dense"], p["torch_best"] or "-", p["speedup_torch"], p["ours"],
            p["speedup_ours"], p["choice"], p["speedup_choice"], p["vs_torch"]]


def format_table(result: dict[str, Any]) -> str:
    head = f"{result['device']}, {result['dtype']}; speedups are dense time / path time (medians)"
    return head + "\n\n" + table(TABLE_HEADERS, [table_row(p) for p in result["points"]])


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Speedup over dense vs sparsity: one panel per (shape, pattern), one line per batch size;
    solid = the chosen path, dashed = torch's best sparse path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((tuple(p["shape"]), p["pattern"]) for p in result["points"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (shape, pattern) in zip(axes[0], panels):
        pts = [p for p in result["points"] if tuple(p["shape"]) == shape and p["pattern"] == pattern]
        for i, b in enumerate(sorted({p["batch"] for p in pts})):
            line = sorted((p for p in pts if p["batch"] == b), key=lambda p: p["sparsity"])
            xs = [p["sparsity"] for p in line]
            color = f"C{i}"
            ax.plot(xs, [p["speedup_choice"] for p in line], "o-", color=color, label=f"batch {b}")
            if all(p["speedup_torch"] is not None for p in line):
                ax.plot(xs, [p["speedup_torch"] for p in line], "x--", color=color, alpha=0.6)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("sparsity")
        ax.set_ylabel("speedup over dense F.linear")
        ax.set_title(f"{shape[0]}x{shape[1]} {pattern}")
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['device']} (solid: sparsify's choice, dashed: best torch sparse path)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
