"""One point of the profile: every path on one (weight, batch), timed until the timing is stable.

A *round* is one call of ``sparsify.time_interleaved`` (every path ``repeats`` times, round-robin,
median each). Rounds are repeated until the spread of dense's round medians -- their relative
interquartile range, (q75 - q25) / median -- is at most ``target`` (after at least ``min_rounds``),
or until ``max_rounds`` / ``max_seconds`` are spent. A path's time is the median of its round
medians; its spread is recorded beside it, so a point measured on a busy machine says so.
"""
from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .. import ops
from ..compression.sparsify import time_interleaved

__all__ = ["MARGIN", "OURS", "TIMING", "measure", "profile_point", "pruned_weight", "relative_iqr"]

OURS = ("csr", "bsr", "bitmask")
MARGIN = 1.1  # as sparsify(): a sparse format must beat dense by 10%
# How long to keep timing one point: rounds of ``repeats`` interleaved samples, until dense's
# relative IQR over rounds is <= target; never fewer than min_rounds, never more than max_rounds,
# and no new round once a point has taken max_seconds.
TIMING = {"repeats": 5, "min_rounds": 3, "max_rounds": 10, "target": 0.10, "max_seconds": 20.0}
# A torch path slower than SLOW times dense is no contender, and at batch 256 torch's CPU BSR
# product takes seconds per call: one that takes more than SLOW_ONCE seconds too in a single call is
# timed by that call alone; any other is dropped after the first round (its median there is kept).
SLOW = 10.0
SLOW_ONCE = 0.05


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


def _one_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of ``fn`` (called before, so warm)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def _no_contenders(fns: dict[str, Callable[[], Any]], device: torch.device) -> dict[str, float]:
    """The torch paths that one warm call shows to be no contender (slower than ``SLOW`` times
    dense and than ``SLOW_ONCE`` seconds), with that call's seconds."""
    with torch.no_grad():
        fns["dense"]()
        dense = _one_call(fns["dense"], device)
        return {k: t for k, fn in fns.items()
                if k.startswith("torch-") and (t := _one_call(fn, device)) > max(SLOW * dense, SLOW_ONCE)}


def relative_iqr(values: Sequence[float]) -> float | None:
    """(q75 - q25) / median of ``values``; None for fewer than two."""
    if len(values) < 2:
        return None
    q25, med, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return (q75 - q25) / med if med > 0 else 0.0


def measure(fns: dict[str, Callable[[], Any]], device: torch.device, *, repeats: int, min_rounds: int,
            max_rounds: int, target: float, max_seconds: float) -> dict[str, Any]:
    """Rounds of ``time_interleaved`` over ``fns`` (which holds "dense") until dense's relative IQR
    over rounds is <= ``target``: {"seconds": {path: median}, "spread": {path: relative IQR or
    None}, "rounds": n, "stable": bool}."""
    rounds: dict[str, list[float]] = {name: [] for name in fns}
    live = dict(fns)
    t0 = time.perf_counter()
    while True:
        with torch.no_grad():
            sec = time_interleaved(live, repeats, device)
        for name, s in sec.items():
            rounds[name].append(float(s))
        n = len(rounds["dense"])
        if n == 1:  # no contender, not worth more rounds
            live = {k: f for k, f in live.items() if not (k.startswith("torch-") and sec[k] > SLOW * sec["dense"])}
        spread = relative_iqr(rounds["dense"])
        stable = spread is not None and spread <= target
        if n >= max_rounds or (n >= min_rounds and (stable or time.perf_counter() - t0 >= max_seconds)):
            break
    return {"seconds": {k: statistics.median(v) for k, v in rounds.items()},
            "spread": {k: relative_iqr(v) for k, v in rounds.items()}, "rounds": n, "stable": stable}


def profile_point(w: torch.Tensor, batch: int, repeats: int | None = None, **timing: Any) -> dict[str, Any]:
    """Every path on one (weight, batch), timed by ``measure`` (``TIMING`` unless overridden; a
    torch path far slower than dense by one call alone): seconds and spread per path, the fastest of
    ours, torch's best, what sparsify would run (``choice``) and the speedups over dense and torch."""
    opts = {**TIMING, **timing, **({} if repeats is None else {"repeats": repeats})}
    x = torch.randn(batch, w.shape[1], device=w.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        fns: dict[str, Callable[[], Any]] = {"dense": lambda: F.linear(x, w)}
        fns.update(_torch_paths(w, x))
    once = _no_contenders(fns, w.device)
    fns = {k: fn for k, fn in fns.items() if k not in once}
    for fmt in OURS:
        sw = ops.to_sparse(w, fmt, block=16)
        fns[fmt] = lambda sw=sw: ops.sparse_linear(x, sw)
    m = measure(fns, w.device, **{k: opts[k] for k in TIMING})
    m["seconds"].update(once)
    m["spread"].update(dict.fromkeys(once))
    sec = m["seconds"]
    dense = sec["dense"]
    ours = min(OURS, key=lambda f: sec[f])
    torch_best = min((k for k in sec if k.startswith("torch-")), key=lambda k: sec[k], default=None)
    choice = ours if sec[ours] * MARGIN < dense else "dense"
    return {
        "seconds": sec, "spread": m["spread"], "rounds": m["rounds"], "stable": m["stable"],
        "timed_once": sorted(once),
        "ours": ours, "torch_best": torch_best, "choice": choice,
        "speedup_ours": dense / sec[ours], "speedup_choice": dense / sec[choice],
        "speedup_torch": dense / sec[torch_best] if torch_best else None,
        "vs_torch": sec[torch_best] / sec[choice] if torch_best else None,
    }
