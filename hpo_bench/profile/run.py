"""The profile of a grid: every point in turn, each saved as soon as it is measured.

With ``out`` (a JSON path), the result so far is written there (atomically) after every point. A
later call with the same grid, device, dtype and timing finds it and measures only the points it
lacks; a file measured any other way is moved aside to ``*.previous.json``, never mixed in.

A busy machine is reported three ways: the load average against the core count at the start, a
point whose dense timing still varies after the last round, and a point that disagrees with the
others (a load that hits every round alike leaves no spread, but dense's time does not depend on
the sparsity, and more zeros never make our fastest format slower).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._io import write_json_atomic
from ..compression.sparsify import device_name
from .measure import MARGIN, TIMING, profile_point, pruned_weight
from .report import point_label, progress_line

__all__ = ["GRIDS", "busy_note", "check_points", "profile_kernels"]

# quick: a setup check (seconds); default: a few minutes on a 2-core CPU; full: the big sweep
# (hours on 2 cores, mostly the 4096 x 4096 layers at batch 256).
GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"shapes": [(512, 1024)], "sparsities": [0.5, 0.9, 0.99], "batches": [1, 16],
              "patterns": ["unstructured"], **TIMING, "repeats": 3, "max_rounds": 5, "max_seconds": 5.0},
    "default": {"shapes": [(1024, 4096)], "sparsities": [0.5, 0.8, 0.9, 0.95, 0.99], "batches": [1, 8, 64],
                "patterns": ["unstructured", "block16"], **TIMING},
    "full": {"shapes": [(4096, 4096), (1024, 4096), (4096, 1024)], "sparsities": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
             "batches": [1, 8, 64, 256], "patterns": ["unstructured", "block16"], **TIMING},
}
BUSY = 0.25  # a 1-minute load average above this fraction of the cores: other work competes for them
ODD = 1.5  # a point's dense (or our fastest) time this far from the other points' is suspect

Key = tuple[tuple[int, ...], str, float, int]  # shape, pattern, sparsity, batch


def busy_note() -> tuple[str, bool]:
    """The 1-minute load average against the core count, and whether the machine looks busy."""
    cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return f"load average unknown, {cpus} cores", False
    busy = load > BUSY * cpus
    return (f"load average {load:.2f} (1 min) on {cpus} cores"
            + (": machine busy? other work competes for the cores, timings will vary" if busy else ""), busy)


def _grid(grid: str | dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
        grid = GRIDS[grid]
    g = {**GRIDS["default"], **grid, **{k: v for k, v in overrides.items() if v is not None}}
    for s in g["sparsities"]:
        if not 0.0 <= float(s) < 1.0:
            raise ValueError(f"sparsities must be in [0, 1), got {s}")
    return json.loads(json.dumps(g))  # as it is saved (tuples become lists), so a reread compares equal


def _key(p: dict[str, Any]) -> Key:
    return tuple(int(d) for d in p["shape"]), p["pattern"], float(p["sparsity"]), int(p["batch"])


def _earlier(path: Path | None, head: dict[str, Any], fresh: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """The result saved at ``path`` if it was measured with the same ``head`` (else {}: a file
    measured another way is moved aside, not overwritten)."""
    if path is None or not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        same = all(saved.get(k) == v for k, v in head.items())
    except (OSError, ValueError, AttributeError):
        saved, same = {}, False
    if same and not fresh:
        return saved
    aside = path.with_name(f"{path.stem}.previous{path.suffix}")
    os.replace(path, aside)
    why = "asked to measure afresh" if same else "measured with another grid, device, dtype or timing"
    say(f"{path} was {why}: moved to {aside.name}, measuring every point")
    return {}


def profile_kernels(device: str = "cpu", grid: str | dict[str, Any] = "default", *,
                    shapes: Sequence[tuple[int, int]] | None = None, sparsities: Sequence[float] | None = None,
                    batches: Sequence[int] | None = None, patterns: Sequence[str] | None = None,
                    repeats: int | None = None, out: str | Path | None = None, fresh: bool = False,
                    on_point: Callable[[dict[str, Any]], None] | None = None,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time every point of ``grid`` ("quick", "default", "full" or a dict like them; any axis can
    be overridden). ``out``: a JSON file, written after every point and continued from (``fresh``:
    measure every point again). ``on_point(point)`` after each newly measured point; ``log(line)``
    gets the load note, one progress line per point and the warnings."""
    say = log or (lambda line: None)
    g = _grid(grid, {"shapes": shapes, "sparsities": sparsities, "batches": batches, "patterns": patterns,
                     "repeats": repeats})
    dev = torch.device(device)
    head = {"device": device_name(dev), "threads": torch.get_num_threads(), "dtype": "float32",
            "margin": MARGIN, "grid": g}
    path = None if out is None else Path(out)
    earlier = _earlier(path, head, fresh, say)
    todo: list[Key] = [(tuple(shape), pattern, float(s), int(b)) for shape in g["shapes"] for pattern in g["patterns"]
                       for s in g["sparsities"] for b in g["batches"]]
    measured = {k: p for p in earlier.get("points", []) if (k := _key(p)) in set(todo)}
    note, busy = busy_note()
    say(f"warning: {note}" if busy else note)
    if measured:
        say(f"{len(measured)} of {len(todo)} points already measured, continuing")
    result = {**head, "loads": [*earlier.get("loads", []), note], "points": [], "warnings": [note] if busy else [],
              "complete": False, "measured_seconds": float(earlier.get("measured_seconds", 0.0))}

    def save(complete: bool) -> list[str]:
        result["points"] = [measured[k] for k in todo if k in measured]
        result["complete"] = complete
        found = check_points(result["points"], g["target"])
        if path is not None:
            write_json_atomic(path, {**result, "warnings": result["warnings"] + found})
        return found

    said: set[str] = set()
    t0 = time.perf_counter()
    w, w_key = None, None  # one weight at a time: a 4096 x 4096 one is 64 MB
    for i, key in enumerate(todo, 1):
        if key in measured:
            continue
        shape, pattern, s, b = key
        if w_key != key[:3]:
            w = None  # free the last one before building the next
            w, w_key = pruned_weight(shape, s, pattern, dev), key[:3]
        t1 = time.perf_counter()
        point = {"shape": list(shape), "pattern": pattern, "sparsity": s, "batch": b,
                 **profile_point(w, b, **{k: g[k] for k in TIMING})}
        point["wall_seconds"] = time.perf_counter() - t1
        result["measured_seconds"] += point["wall_seconds"]
        measured[key] = point
        save(complete=False)
        say(progress_line(point, i, len(todo), time.perf_counter() - t0))
        if (spread := spread_warning(point, g["target"])) is not None:
            said.add(spread)
            say(f"warning: {spread}")
        if on_point is not None:
            on_point(point)
    found = save(complete=True)
    for line in found:
        if line not in said:
            say(f"warning: {line}")
    result["warnings"] += found
    return result


def spread_warning(point: dict[str, Any], target: float) -> str | None:
    spread = point["spread"]["dense"]
    if spread is None or spread <= target:
        return None
    return (f"{point_label(point)}: machine busy? timings of this point vary by {spread:.0%} "
            f"(relative IQR of dense over {point['rounds']} rounds, target {target:.0%})")


def _disagreements(points: list[dict[str, Any]]) -> list[list[str]]:
    """Per point: dense slower than the median of the points of the same shape and batch, or our
    fastest format slower than at a lower sparsity (same shape, pattern and batch), by ``ODD``."""
    dense: dict[tuple, list[float]] = {}
    for p in points:
        dense.setdefault((tuple(p["shape"]), p["batch"]), []).append(p["seconds"]["dense"])
    found: list[list[str]] = []
    for p in points:
        here, lines = p["seconds"]["dense"], []
        others = dense[(tuple(p["shape"]), p["batch"])]
        med = statistics.median(others)
        if len(others) >= 3 and here > ODD * med:
            lines.append(f"{point_label(p)}: machine busy? dense took {1e3 * here:.3g} ms here, "
                         f"{1e3 * med:.3g} ms (median) at the other sparsities of this shape and batch")
        ours = p["seconds"][p["ours"]]
        denser = [q["seconds"][q["ours"]] for q in points if q["sparsity"] < p["sparsity"]
                  and (tuple(q["shape"]), q["pattern"], q["batch"]) == (tuple(p["shape"]), p["pattern"], p["batch"])]
        if denser and ours > ODD * min(denser):
            lines.append(f"{point_label(p)}: machine busy? our fastest format took {1e3 * ours:.3g} ms here, "
                         f"{1e3 * min(denser):.3g} ms at a lower sparsity")
        found.append(lines)
    return found


def check_points(points: list[dict[str, Any]], target: float) -> list[str]:
    """Sets each point's "warnings" (its spread above ``target``, its disagreements with the other
    points) and returns all of them."""
    for p, odd in zip(points, _disagreements(points)):
        p["warnings"] = [w for w in [spread_warning(p, target)] if w] + odd
    return [w for p in points for w in p["warnings"]]
