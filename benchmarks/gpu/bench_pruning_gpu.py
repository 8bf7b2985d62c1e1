"""GPU benchmark of the Triton pruning kernels against what a user would otherwise call.

Run by benchmarks/gpu/run.sh on a lent GPU machine (hard time limit: every measurement checks a
deadline, results are written after each one). ``--smoke`` runs tiny sizes on CPU under the
Triton interpreter, to check the script end to end without a GPU.

Measured (median ms): ops.magnitude_threshold (triton) vs one read pass (torch.sum over the same
tensors) vs torch.kthvalue and torch.topk on |w| of one concatenated tensor (the concatenation is
done once, outside the timing); magnitude_prune_ (triton) vs torch.nn.utils.prune.global_unstructured
on a >= 50M-parameter MLP; N:M 2:4 (triton) vs the torch reference and a read pass.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _script import log, start  # noqa: E402 - sibling module (see _script.py); imports no torch

ARGS, DEADLINE = start(__doc__, 200.0, "stop starting new measurements after this")
import torch  # noqa: E402

from _timing import median_ms  # noqa: E402 - sibling module (see _timing.py)
DEV = "cuda" if torch.cuda.is_available() else "cpu"
RESULTS: list[dict] = []


def bench(fn) -> float:
    return median_ms(fn, rep_ms=60)


def record(group: str, case: dict, method: str, fn, note: str = "") -> float | None:
    if time.monotonic() > DEADLINE:
        log(f"  skip {group}/{method}: time budget spent")
        return None
    row = dict(group=group, **case, method=method, note=note)
    try:
        row["ms"] = bench(fn)
    except Exception as e:  # noqa: BLE001 - one failure must not lose the rest
        row["error"] = f"{type(e).__name__}: {e}"
        log(traceback.format_exc(limit=3))
    finally:
        if DEV == "cuda":
            torch.cuda.empty_cache()
    RESULTS.append(row)
    log(f"  {group} {case} {method}: {row.get('ms', row.get('error'))}")
    write()
    return row.get("ms")


def write():
    meta = dict(device=torch.cuda.get_device_name() if DEV == "cuda" else "cpu (interpreter)",
                torch=torch.__version__, smoke=ARGS.smoke)
    try:
        import triton

        meta["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        pass
    with open(os.path.join(ARGS.out, "pruning_gpu.json"), "w") as f:
        json.dump(dict(meta=meta, results=RESULTS), f, indent=1)
    lines = [f"# Pruning kernels on {meta['device']} (torch {meta['torch']}, triton {meta.get('triton')})",
             "", "| group | dtype | N | tensors | method | median ms | x read pass | note |",
             "|---|---|---|---|---|---|---|---|"]
    read = {(r["group"], r.get("dtype"), r.get("n"), r.get("tensors")): r.get("ms")
            for r in RESULTS if r["method"] == "read pass (torch.sum)"}
    for r in RESULTS:
        ms = r.get("ms")
        base = read.get((r["group"], r.get("dtype"), r.get("n"), r.get("tensors")))
        ratio = f"{ms / base:.2f}" if ms and base else ""
        cell = f"{ms:.3f}" if ms is not None else r.get("error", "skipped")[:60]
        lines.append(f"| {r['group']} | {r.get('dtype', '')} | {r.get('n', '')} | {r.get('tensors', '')} "
                     f"| {r['method']} | {cell} | {ratio} | {r.get('note', '')} |")
    with open(os.path.join(ARGS.out, "pruning_gpu.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def split(n: int, parts: int, dtype) -> list[torch.Tensor]:
    g = torch.Generator(device=DEV).manual_seed(0)
    sizes = [n // parts] * parts
    sizes[-1] += n - sum(sizes)
    return [torch.randn(s, generator=g, device=DEV, dtype=torch.float32).to(dtype) for s in sizes]


def threshold_group(dtype, n: int, parts: int):
    from hpo_bench import ops

    case = dict(dtype=str(dtype).replace("torch.", ""), n=n, tensors=parts)
    ts = split(n, parts, dtype)
    k = ops.prune_count(n, 0.5)
    ours = ops.magnitude_threshold(ts, 0.5, backend="triton")
    record("threshold", case, "triton magnitude_threshold",
           lambda: ops.magnitude_threshold(ts, 0.5, backend="triton"))
    if parts == 1 and dtype == torch.float32 and not ARGS.smoke:
        for bits in ("8", "11"):  # radix width: matters where tl.histogram uses warp ballots
            os.environ["HPO_BENCH_TRITON_RADIX_BITS"] = bits
            record("threshold", case, f"triton, {bits}-bit radix passes",
                   lambda: ops.magnitude_threshold(ts, 0.5, backend="triton"))
            os.environ.pop("HPO_BENCH_TRITON_RADIX_BITS")
    record("threshold", case, "read pass (torch.sum)", lambda: [t.sum() for t in ts])
    flat = torch.cat([t.reshape(-1) for t in ts]).abs()
    try:
        ref = float(torch.kthvalue(flat.float(), k).values)
        note = "match" if ref == ours else f"MISMATCH ours={ours} kthvalue={ref}"
    except Exception as e:  # noqa: BLE001 - e.g. out of memory for the fp32 copy
        note = f"not checked ({type(e).__name__})"
    record("threshold", case, "torch.kthvalue(|w| concatenated)", lambda: torch.kthvalue(flat, k),
           note="cat outside timing; " + note)
    if n <= (1 << 26) or ARGS.smoke:
        record("threshold", case, "torch.topk(|w| concatenated, k)",
               lambda: torch.topk(flat, k, largest=False, sorted=False), note="cat outside timing")
    del flat, ts


def prune_group():
    import torch.nn.utils.prune as tprune

    from hpo_bench import ops

    width, depth = (2560, 8) if not ARGS.smoke else (32, 3)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)]).to(DEV)
    n = sum(p.numel() for p in model.parameters())
    case = dict(dtype="float32", n=n, tensors=depth)
    weights = [m.weight.detach() for m in model]
    state = [w.clone() for w in weights]

    def ours():
        for w, s in zip(weights, state):
            w.copy_(s)
        ops.magnitude_prune_(weights, 0.5, backend="triton")

    def theirs():
        mods = [torch.nn.Linear(1, 1) for _ in range(depth)]
        for m, s in zip(mods, state):
            m.weight = torch.nn.Parameter(s.clone())
        tprune.global_unstructured([(m, "weight") for m in mods], tprune.L1Unstructured, amount=0.5)

    record("prune model", case, "read pass (torch.sum)", lambda: [w.sum() for w in weights],
           note="weights only")
    record("prune model", case, "triton magnitude_prune_", ours, note="includes restoring weights (1 copy)")
    record("prune model", case, "torch global_unstructured", theirs, note="includes 1 clone of weights")


def nm_group(dtype):
    from hpo_bench import ops

    rows, cols = (8192, 8192) if not ARGS.smoke else (64, 64)
    w = torch.randn(rows, cols, device=DEV).to(dtype)
    case = dict(dtype=str(dtype).replace("torch.", ""), n=w.numel(), tensors=1)
    ref = w.clone()
    mask_ref = ops.nm_prune_(ref, 2, 4, backend="torch")
    work = w.clone()
    note = "match" if torch.equal(ops.nm_prune_(work, 2, 4, backend="triton"), mask_ref) else "MISMATCH"
    record("nm 2:4", case, "read pass (torch.sum)", lambda: w.sum())
    record("nm 2:4", case, "triton nm_prune_", lambda: ops.nm_prune_(work, 2, 4, backend="triton"),
           note=note + " (on already pruned weights)")
    record("nm 2:4", case, "torch reference (sort)", lambda: ops.nm_prune_(ref, 2, 4, backend="torch"))


def main() -> int:
    sys.path.insert(0, ROOT)
    from hpo_bench import ops

    log("backends:", ops.available_backends(),
        {b: ops.dispatch.load_error(b) for b in ops.dispatch.BACKENDS if ops.dispatch.load_error(b)})
    sizes = [1 << 26, 1 << 28] if not ARGS.smoke else [1 << 12, 1 << 14]
    failures = 0
    plan = [(threshold_group, (dt, n, parts)) for dt in (torch.float32, torch.bfloat16)
            for n in sizes for parts in (1, 50)]
    plan += [(prune_group, ()), (nm_group, (torch.float32,)), (nm_group, (torch.bfloat16,))]
    # Order: the headline numbers first (2^26 threshold, prune, N:M), the 2^28 sizes last.
    plan.sort(key=lambda p: p[1][1] if p[0] is threshold_group and len(p[1]) > 1 and p[1][1] > sizes[0] else 0)
    for fn, args in plan:
        if time.monotonic() > DEADLINE:
            log(f"time budget spent; skipping {fn.__name__}{args}")
            continue
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            failures += 1
            log(f"{fn.__name__}{args} failed:\n{traceback.format_exc()}")
            RESULTS.append(dict(group=fn.__name__, method="(group)", error=traceback.format_exc(limit=1)[-300:]))
            write()
    write()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
