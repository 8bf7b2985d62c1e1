"""Timing shared by the GPU benchmark scripts (imported as a sibling module: the scripts run as
``python3 benchmarks/gpu/<script>.py``, which puts this folder first on sys.path)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def median_ms(fn: Callable[[], object], rep_ms: int = 60) -> float:
    """Median milliseconds of fn() after warm-up: CUDA events via triton.testing.do_bench on a GPU,
    three wall-clock calls elsewhere (smoke runs)."""
    if DEV == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=rep_ms, return_mode="median"))
    fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
