"""Row-wise pruning by score (Wanda's comparison group) on CPU, side by side in one run: the native
kernel against the best way to get the same masks from each torch selection op.

    python benchmarks/score_prune_cpu.py [--out results.json] [--threads 2] [--repeats 15]
                                         [--slow-repeats 3] [--shapes 4096x4096,4096x14336]

For every shape (rows x cols) and dtype (float32, bfloat16) at sparsity 0.5: weights W ~ N(0, 1),
scores S = |W| * c_j with c_j > 0 a per-column activation norm (Wanda's |W| * ||X_j||_2), in the
weight's dtype. Each implementation zeroes, in every row, the weights of the k = round(0.5 * cols)
smallest scores (ties: lowest column first) in place and returns the kept mask; every mask is
checked against the native one (they must be equal). Implementations:

    native          ops.score_prune_(W, S, 0.5, "row")
    torch.kthvalue  t = S.kthvalue(k, dim=1); mask from t (below)
    torch.topk      t = S.topk(k, dim=1, largest=False, sorted=False).values.amax(1); mask from t
    torch.sort      the first k indices of S.sort(dim=1, stable=True) scattered into the mask

"mask from t": pruned = S <= t, which is exact in every row where exactly k scores are <= t; only
the other rows (ties at t) are redone with a cumulative count of the ties, lowest column first. The
table gives each implementation's median wall time, each torch implementation's time of its torch op
alone (the floor of anything built on that op), and the process CPU time of all threads (which other
processes' load does not inflate, unlike wall time: on a shared 2-core machine a ~10 ms op loses
whole scheduler ticks); native's speedup is given over all three. Prints a markdown table; --out
writes every figure as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from hpo_bench import ops

SPARSITY = 0.5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_case(rows: int, cols: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen)
    col_norm = torch.rand(cols, generator=gen) * 2 + 0.05  # ||X_j||_2 of each input feature
    return w.to(dtype), (w.abs() * col_norm).to(dtype)


def mask_from_threshold(s: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    """The kept mask for per-row k-th scores t: prune s <= t, then redo the rows where that is not
    exactly k (ties at t) by pruning s < t and the first k - #(s < t) ties."""
    pruned = s <= t[:, None]
    off = (pruned.sum(1) != k).nonzero().flatten()
    if off.numel():
        so, to = s[off], t[off, None]
        lt, eq = so < to, so == to
        need = k - lt.sum(1, keepdim=True)
        pruned[off] = lt | (eq & (eq.cumsum(1) <= need))
    return ~pruned


def torch_impls(k: int) -> dict[str, Callable]:
    """name -> fn(w, s, timing) that prunes w in place and returns the kept mask, recording the time
    of its torch selection op alone in timing['op']."""

    def kthvalue(w, s, timing):
        t0 = time.perf_counter()
        t = s.kthvalue(k, dim=1).values
        timing["op"] = time.perf_counter() - t0
        mask = mask_from_threshold(s, t, k)
        w.masked_fill_(~mask, 0)
        return mask

    def topk(w, s, timing):
        t0 = time.perf_counter()
        vals = s.topk(k, dim=1, largest=False, sorted=False).values
        timing["op"] = time.perf_counter() - t0
        mask = mask_from_threshold(s, vals.amax(1), k)
        w.masked_fill_(~mask, 0)
        return mask

    def sort(w, s, timing):
        t0 = time.perf_counter()
        idx = s.sort(dim=1, stable=True).indices
        timing["op"] = time.perf_counter() - t0
        mask = torch.ones(s.shape, dtype=torch.bool)
        mask.scatter_(1, idx[:, :k], False)
        w.masked_fill_(~mask, 0)
        return mask

    return {"torch.kthvalue": kthvalue, "torch.topk": topk, "torch.sort": sort}


def timed(fn: Callable[[dict], object], restore: Callable[[], None], repeats: int) -> dict:
    """Median wall time ("s"), median wall time of the torch op alone ("op_s"), median process CPU
    time of all threads ("cpu_s": what other processes' load does not inflate, unlike wall time)
    and the fastest wall time ("min_s") over `repeats` runs after one warm-up, and the last
    result ("out"); restore() runs untimed before each run (pruning zeroes the weights)."""
    totals, op_times, cpu, out = [], [], [], None
    for i in range(repeats + 1):
        restore()
        timing: dict = {}
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn(timing)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i:  # the first run warms caches, thread pools and page tables
            totals.append(dt)
            op_times.append(timing.get("op", dt))
            cpu.append(dc)
    return {"s": statistics.median(totals), "op_s": statistics.median(op_times),
            "cpu_s": statistics.median(cpu), "min_s": min(totals), "out": out}


def bench_case(rows: int, cols: int, dtype_name: str, repeats: int, slow_repeats: int) -> dict:
    dtype = DTYPES[dtype_name]
    w0, s = make_case(rows, cols, dtype)
    w = w0.clone()
    k = ops.prune_count(cols, SPARSITY)

    def restore():
        w.copy_(w0)

    nat = timed(lambda _t: ops.score_prune_(w, s, SPARSITY, "row", backend="native")[0], restore,
                repeats)
    native_mask = nat.pop("out")
    expected_w = torch.where(native_mask, w0, torch.zeros((), dtype=dtype))
    assert int((~native_mask).sum()) == rows * k
    thr = timed(lambda _t: ops.score_threshold(s, SPARSITY, "row", backend="native"), lambda: None,
                repeats)
    thr.pop("out")
    result = {"rows": rows, "cols": cols, "dtype": dtype_name, "k_per_row": k,
              "native": nat, "native_threshold": thr, "torch": {}}
    for name, impl in torch_impls(k).items():
        t = timed(lambda timing, impl=impl: impl(w, s, timing), restore, slow_repeats)
        mask = t.pop("out")
        t["masks_differing"] = int((mask != native_mask).sum())
        t["weights_differing"] = int((w != expected_w).sum())
        result["torch"][name] = t
    return result


def table(results: list[dict]) -> str:
    rows = ["| shape | dtype | implementation | wall (median) | torch op alone | CPU time | "
            "native speedup: wall / op alone / CPU |", "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        case = f"{r['rows']}x{r['cols']}"
        nat, thr = r["native"], r["native_threshold"]
        rows.append(f"| {case} | {r['dtype']} | ops.score_prune_ row (native) | {nat['s'] * 1e3:.1f} ms "
                    f"(min {nat['min_s'] * 1e3:.1f}) | | {nat['cpu_s'] * 1e3:.1f} ms | 1 |")
        rows.append(f"| {case} | {r['dtype']} | ops.score_threshold row (native) | {thr['s'] * 1e3:.1f} ms "
                    f"(min {thr['min_s'] * 1e3:.1f}) | | {thr['cpu_s'] * 1e3:.1f} ms | |")
        for name, t in r["torch"].items():
            rows.append(f"| {case} | {r['dtype']} | {name} | {t['s'] * 1e3:.0f} ms | {t['op_s'] * 1e3:.0f} ms | "
                        f"{t['cpu_s'] * 1e3:.0f} ms | {t['s'] / nat['s']:.1f}x / {t['op_s'] / nat['s']:.1f}x / "
                        f"{t['cpu_s'] / nat['cpu_s']:.1f}x |")
        best = min(r["torch"].values(), key=lambda t: t["s"])
        best_op = min(t["op_s"] for t in r["torch"].values())
        best_cpu = min(t["cpu_s"] for t in r["torch"].values())
        rows.append(f"| {case} | {r['dtype']} | **best torch** | {best['s'] * 1e3:.0f} ms | {best_op * 1e3:.0f} ms | "
                    f"{best_cpu * 1e3:.0f} ms | **{best['s'] / nat['s']:.1f}x / {best_op / nat['s']:.1f}x / "
                    f"{best_cpu / nat['cpu_s']:.1f}x** |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15, help="timed runs of the native ops")
    ap.add_argument("--slow-repeats", type=int, default=3, help="timed runs of each torch implementation")
    ap.add_argument("--shapes", default="4096x4096,4096x14336", help="comma-separated ROWSxCOLS")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    assert "native" in ops.available_backends(), ops.dispatch.load_error("native")
    started = time.perf_counter()
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        # Other processes on a 2-core machine distort every figure: record the load.
        "loadavg_1min_at_start": os.getloadavg()[0],
    }
    results = []
    for shape in args.shapes.split(","):
        rows, cols = (int(x) for x in shape.lower().split("x"))
        for dtype_name in args.dtypes.split(","):
            results.append(bench_case(rows, cols, dtype_name, args.repeats, args.slow_repeats))
            print(f"  {shape} {dtype_name} done ({time.perf_counter() - started:.0f} s)", flush=True)
    machine["loadavg_1min_at_end"] = os.getloadavg()[0]
    print(table(results))
    print(f"\n{machine['cores']} cores, torch threads {machine['torch_threads']}, load average (1 min) "
          f"{machine['loadavg_1min_at_start']:.2f} at start, {machine['loadavg_1min_at_end']:.2f} at end; "
          f"{time.perf_counter() - started:.0f} s in all")
    differing = {f"{r['rows']}x{r['cols']} {r['dtype']} {name}": t["masks_differing"] + t["weights_differing"]
                 for r in results for name, t in r["torch"].items()}
    print("masks or weights differing from native's:", sum(differing.values()) or "none")
    if any(differing.values()):
        print({k: v for k, v in differing.items() if v})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "config": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
