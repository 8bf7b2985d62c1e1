"""Timing shared by the GPU benchmark scripts (imported as a sibling module: the scripts run as
``python3 benchmarks/gpu/<script>.py``, which puts this folder first on sys.path).

Three clocks, because at small sizes they disagree:

* ``median_ms``: what a caller sees, eager (triton.testing.do_bench: L2 flushed before each call;
  if the Python launch takes longer than the flush, the GPU waits for it and that wait is counted);
* ``graph_ms``: the GPU's time alone: ``n`` calls, each after an L2 flush, captured in one CUDA graph
  and replayed, minus a graph of the flushes alone (no Python launch cost at all);
* ``host_us``: the CPU's time to issue one call (200 calls back to back, synchronised once).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

DEV = "cuda" if torch.cuda.is_available() else "cpu"
FLUSH_BYTES = 256 << 20  # larger than any L2 (H100/H200: 50 MB)


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


def graph_ms(fn: Callable[[], object], n: int = 20, replays: int = 7) -> float:
    """Median GPU milliseconds of one fn() with a cold L2 and no launch overhead (see the module
    docstring). Off a GPU: ``median_ms``. Raises if fn cannot be captured in a CUDA graph."""
    if DEV != "cuda":
        return median_ms(fn)
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=DEV)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compilation, allocator) outside the capture
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    with_fn, flush_only = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(with_fn):
        for _ in range(n):
            flush.zero_()
            fn()
    with torch.cuda.graph(flush_only):
        for _ in range(n):
            flush.zero_()
    timings: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(replays):
        for i, g in enumerate((with_fn, flush_only)):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            g.replay()
            end.record()
            end.synchronize()
            timings[i].append(start.elapsed_time(end))
    del with_fn, flush_only
    return max(0.0, (statistics.median(timings[0]) - statistics.median(timings[1])) / n)


def host_us(fn: Callable[[], object], calls: int = 200) -> float:
    """Microseconds of CPU time to issue one fn() (the GPU keeps up, so this is the launch cost).
    Off a GPU (smoke runs, where a call takes ~0.2 s in the interpreter): 3 calls."""
    if DEV != "cuda":
        calls = min(calls, 3)
    fn()
    if DEV == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    if DEV == "cuda":
        torch.cuda.synchronize()
    return (t1 - t0) / calls * 1e6
