"""CPU magnitude pruning, side by side in one run: the native kernels against what a user would
otherwise call, and against the machine's floor (one torch.sum over the same data).

    python benchmarks/pruning_cpu.py [--out results.json] [--threads 2] [--log2n 26] [--repeats 7]
                                     [--floor-log2n 24,26] [--floor-repeats 11]

Threshold (float32, N = 2^log2n, in one tensor and split over 50 tensors, sparsity 0.9):
    ops.magnitude_threshold (native)  vs  torch.kthvalue on |w|  vs  numpy.partition on |w|
    vs  one torch.sum over the same tensors (reads memory once: the floor)
Prune (a stack of nn.Linear layers, >= 50M weights, sparsity 0.9):
    ops.magnitude_prune_ (native)  vs  torch.nn.utils.prune.global_unstructured(L1Unstructured)

Against the memory floor (float32, N = 2^24 and 2^26, 1 tensor and 50 tensors, sparsity 0.5 / 0.9 /
0.99; issue 17: threshold <= 1.5x one read pass, prune <= 2.5x one read-write pass):
    ops.magnitude_threshold  vs  one torch.sum over the tensors (read pass)
    ops.magnitude_prune_     vs  one w.mul_(1.0) in place over the tensors (read-write pass); the
                             prune is timed through the public op (which allocates fresh masks) and
                             as the kernel alone writing into masks allocated once
Each round runs every op of a case once, in turn, so load from other processes hits them alike;
ratios are of medians over the rounds.

Prints markdown tables of median times and ratios, with the targets of the issue.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.utils.prune as tprune

from hpo_bench import ops

SPARSITY = 0.9


def median_s(
    fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of fn() over `repeats` runs after one warm-up; setup() runs untimed before
    each call (to restore weights that a pruning call zeroed)."""
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if i:  # the first call warms caches, thread pools and page tables
            times.append(dt)
    return statistics.median(times)


def split_sizes(total: int, parts: int, seed: int = 0) -> list[int]:
    """`parts` uneven sizes summing to `total` (like the layers of a real model)."""
    w = np.random.default_rng(seed).uniform(0.2, 1.8, parts)
    sizes = np.floor(w / w.sum() * total).astype(np.int64)
    sizes[-1] += total - sizes.sum()
    return [int(s) for s in sizes]


def bench_threshold(tensors: list[torch.Tensor], repeats: int, slow_repeats: int) -> dict:
    n = sum(t.numel() for t in tensors)
    k = ops.prune_count(n, SPARSITY)
    arrays = [t.numpy() for t in tensors]

    def torch_kthvalue():  # what a user writes: |w| of everything, then kthvalue
        flat = tensors[0].abs().reshape(-1) if len(tensors) == 1 else torch.cat(
            [t.abs().reshape(-1) for t in tensors])
        return flat.kthvalue(k).values

    def numpy_partition():
        if len(arrays) == 1:
            flat = np.abs(arrays[0])
        else:
            flat = np.concatenate([np.abs(a) for a in arrays])
        return np.partition(flat, k - 1)[k - 1]

    def torch_sum():
        return [t.sum() for t in tensors]

    native = ops.magnitude_threshold(tensors, SPARSITY, backend="native")
    assert native == float(torch_kthvalue()) == float(numpy_partition()), "results differ"
    return {
        "native_threshold_s": median_s(lambda: ops.magnitude_threshold(tensors, SPARSITY), repeats),
        "torch_kthvalue_s": median_s(torch_kthvalue, slow_repeats),
        "numpy_partition_s": median_s(numpy_partition, slow_repeats),
        "torch_sum_s": median_s(torch_sum, repeats),
    }


def bench_prune(layers: int, width: int, repeats: int, slow_repeats: int) -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    weights = [m.weight for m in model]
    original = [w.detach().clone() for w in weights]

    def restore():
        with torch.no_grad():
            for w, o in zip(weights, original):
                w.copy_(o)

    def native_prune():
        with torch.no_grad():
            return ops.magnitude_prune_([w.detach() for w in weights], SPARSITY)

    def torch_prune():
        params = [(m, "weight") for m in model]
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=SPARSITY)

    def torch_reset():  # undo the reparametrization of the previous call, restore the weights
        for m in model:
            if tprune.is_pruned(m):
                tprune.remove(m, "weight")
        restore()

    restore()
    ours = native_prune()
    torch_reset()
    torch_prune()
    differing = sum(int((o != m.weight_mask.bool()).sum()) for o, m in zip(ours, model))
    result = {
        "parameters": sum(w.numel() for w in weights),
        "native_prune_s": median_s(native_prune, repeats, setup=restore),
        "torch_global_unstructured_s": median_s(torch_prune, slow_repeats, setup=torch_reset),
        "masks_differing_from_torch": differing,  # torch's topk breaks exact ties arbitrarily
    }
    torch_reset()
    return result


def bench_floors(log2n: int, parts: int, repeats: int, seed: int = 0) -> list[dict]:
    """Threshold and prune against the read and read-write floors, one row per sparsity."""
    n = 1 << log2n
    gen = torch.Generator().manual_seed(seed)
    sizes = [n] if parts == 1 else split_sizes(n, parts, seed)
    tensors = [torch.randn(s, generator=gen) for s in sizes]
    work = [t.clone() for t in tensors]
    masks = [torch.empty(s, dtype=torch.bool) for s in sizes]
    from hpo_bench import _native

    def restore():
        for w, t in zip(work, tensors):
            w.copy_(t)

    def prune_kernel(k):  # the native kernel alone, into masks allocated once
        _native.prune([w.data_ptr() for w in work], sizes, [0] * len(work),
                      [m.data_ptr() for m in masks], k, torch.get_num_threads())

    rows = []
    for sparsity in (0.5, 0.9, 0.99):
        k = ops.prune_count(n, sparsity)
        assert ops.magnitude_threshold(tensors, sparsity, backend="native") == float(
            torch.cat([t.abs() for t in tensors]).kthvalue(k).values), "threshold differs"
        fns = {
            "read_s": (lambda: [t.sum() for t in tensors], None),
            "read_write_s": (lambda: [w.mul_(1.0) for w in work], None),
            "threshold_s": (lambda: ops.magnitude_threshold(tensors, sparsity, backend="native"), None),
            "prune_s": (lambda: ops.magnitude_prune_(work, sparsity, backend="native"), restore),
            "prune_kernel_s": (lambda: prune_kernel(k), restore),
        }
        times: dict[str, list[float]] = {name: [] for name in fns}
        for i in range(repeats + 1):
            for name, (fn, setup) in fns.items():
                if setup is not None:
                    setup()
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if i:  # the first round warms caches, thread pools, allocator
                    times[name].append(dt)
        row = {"log2n": log2n, "tensors": parts, "sparsity": sparsity}
        row.update({name: statistics.median(v) for name, v in times.items()})
        rows.append(row)
    return rows


def floor_table(rows: list[dict]) -> str:
    out = ["| N | tensors | sparsity | read pass (sum) | threshold | ratio (<= 1.5x) | "
           "read-write pass (mul_) | prune (op) | ratio (<= 2.5x) | prune (kernel) | ratio (<= 2.5x) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["threshold_s"] / r["read_s"]
        p = r["prune_s"] / r["read_write_s"]
        pk = r["prune_kernel_s"] / r["read_write_s"]
        out.append(
            f"| 2^{r['log2n']} | {r['tensors']} | {r['sparsity']} | {r['read_s'] * 1e3:.2f} ms | "
            f"{r['threshold_s'] * 1e3:.2f} ms | {t:.2f}x {'yes' if t <= 1.5 else '**no**'} | "
            f"{r['read_write_s'] * 1e3:.2f} ms | {r['prune_s'] * 1e3:.2f} ms | "
            f"{p:.2f}x {'yes' if p <= 2.5 else '**no**'} | {r['prune_kernel_s'] * 1e3:.2f} ms | "
            f"{pk:.2f}x {'yes' if pk <= 2.5 else '**no**'} |")
    return "\n".join(out)


def table(r: dict) -> str:
    rows = ["| case | op | median | ratio | target |", "|---|---|---:|---:|---|"]
    for case in ("one_tensor", "fifty_tensors"):
        c = r[case]
        nat = c["native_threshold_s"]
        rows += [
            f"| {case} | ops.magnitude_threshold (native) | {nat * 1e3:.1f} ms | 1 | |",
            f"| {case} | torch.kthvalue on abs | {c['torch_kthvalue_s'] * 1e3:.0f} ms | "
            f"{c['torch_kthvalue_s'] / nat:.1f}x slower | >= 25x |",
            f"| {case} | numpy.partition on abs | {c['numpy_partition_s'] * 1e3:.0f} ms | "
            f"{c['numpy_partition_s'] / nat:.1f}x slower | >= 4x |",
            f"| {case} | torch.sum (memory floor) | {c['torch_sum_s'] * 1e3:.1f} ms | "
            f"native = {nat / c['torch_sum_s']:.2f}x sum | <= 3x |",
        ]
    p = r["prune"]
    rows += [
        f"| prune {p['parameters'] / 1e6:.1f}M params | ops.magnitude_prune_ (native) | "
        f"{p['native_prune_s'] * 1e3:.0f} ms | 1 | |",
        f"| prune {p['parameters'] / 1e6:.1f}M params | torch prune.global_unstructured | "
        f"{p['torch_global_unstructured_s'] * 1e3:.0f} ms | "
        f"{p['torch_global_unstructured_s'] / p['native_prune_s']:.1f}x slower | >= 20x |",
    ]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log2n", type=int, default=26)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of the fast ops")
    ap.add_argument(
        "--slow-repeats", type=int, default=3, help="timed runs of kthvalue/partition/prune"
    )
    ap.add_argument("--layers", type=int, default=3, help="nn.Linear(width, width) layers to prune")
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--floor-log2n", default="24,26",
                    help="sizes (log2) of the threshold/prune vs memory-floor table; '' skips it")
    ap.add_argument("--floor-repeats", type=int, default=11, help="rounds of the floor table")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    assert "native" in ops.available_backends(), ops.dispatch.load_error("native")
    n = 1 << args.log2n
    gen = torch.Generator().manual_seed(0)
    one = [torch.randn(n, generator=gen)]
    fifty = [torch.randn(s, generator=gen) for s in split_sizes(n, 50)]
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            # Other processes on a 2-core machine distort every figure: record the load.
            "loadavg_1min_at_start": os.getloadavg()[0],
        },
        "config": {"n": n, "dtype": "float32", "sparsity": SPARSITY, **vars(args)},
        "one_tensor": bench_threshold(one, args.repeats, args.slow_repeats),
        "fifty_tensors": bench_threshold(fifty, args.repeats, args.slow_repeats),
    }
    del one, fifty
    results["prune"] = bench_prune(args.layers, args.width, args.repeats, args.slow_repeats)
    results["floors"] = [
        row
        for log2n in (int(x) for x in args.floor_log2n.split(",") if x.strip())
        for parts in (1, 50)
        for row in bench_floors(log2n, parts, args.floor_repeats)
    ]
    results["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    print(table(results))
    if results["floors"]:
        print()
        print(floor_table(results["floors"]))
    m = results["machine"]
    print(f"\n{m['cores']} cores, torch threads {m['torch_threads']}, load average (1 min) "
          f"{m['loadavg_1min_at_start']:.2f} at start, {m['loadavg_1min_at_end']:.2f} at end")
    differing = results["prune"]["masks_differing_from_torch"]
    print(f"\nmasks differing from torch's (exact ties): {differing}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
