"""GPU benchmark of Triton BSR inference (ops.sparse_linear) against cuBLAS dense and torch's BSR.

Run by benchmarks/gpu/run.sh (``HPO_BENCH_GPU_STEPS=sparse`` runs only this part). Weights: bf16,
W [out x in] = 4096 x 4096 and 4096 x 14336, blocks 64 and 32, exactly 10% of the blocks nonzero
(uniformly random blocks: 90% block sparsity); x [batch x in] fresh random for every point, batch
1, 16, 128, 1024, 4096. For every point: median ms (triton.testing.do_bench: warm-up, L2 flushed
before each call) of

* ``ops.sparse_linear(x, W_bsr, backend="triton")``: the Triton backend (skinny kernel for batch <= 16, tl.dot above)
* ``F.linear(x, W)``: cuBLAS dense, the baseline to beat
* torch's own BSR: ``F.linear(x, W.to_sparse_bsr(block))``, else ``torch.sparse.mm(W_bsr, x.T).T``

speedups vs both, effective GB/s (bytes of weight + x + y) and useful TFLOP/s, and a correctness
check of ours (and torch's BSR) against the dense product. Then, while the budget lasts, a small
config sweep (BLOCK_M / warps of the tl.dot kernel; skinny vs tl.dot at batch 16) to guide tuning.
Writes sparse_gpu.json and sparse_gpu.md to --out after every point; --budget-s is a deadline
after which no new point starts. ``--smoke``: tiny sizes on CPU under the Triton interpreter.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _script import log, start  # noqa: E402 - sibling module (see _script.py); imports no torch

ARGS, DEADLINE = start(__doc__, 110.0, "start no new point after this", lambda p: p.add_argument(
    "--batches", default="", help="comma-separated batch sizes (default 1,16,128,1024,4096)"))
import torch  # noqa: E402

from _timing import graph_ms, host_us, median_ms  # noqa: E402 - sibling module (see _timing.py)
DEV = "cuda" if torch.cuda.is_available() else "cpu"
RESULTS: list[dict] = []
SWEEP: list[dict] = []
DTYPE = torch.bfloat16 if DEV == "cuda" else torch.float32  # the interpreter's bf16 is slow
KEEP = 0.10  # fraction of nonzero blocks


def bench(fn) -> float:
    return median_ms(fn, rep_ms=40)


def timed(fn, clock=None) -> tuple[float | None, str]:
    try:
        return (clock or bench)(fn), ""
    except Exception as e:  # noqa: BLE001 - one failure must not lose the rest
        log(traceback.format_exc(limit=3))
        return None, f"{type(e).__name__}: {str(e)[:120]}"


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.float()
    return float((y.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def block_sparse_weight(out_f: int, in_f: int, block: int, gen) -> torch.Tensor:
    """Dense weight with exactly round(KEEP * blocks) nonzero (block x block) tiles, at random."""
    nr, nc = -(-out_f // block), -(-in_f // block)
    keep = torch.zeros(nr * nc, dtype=torch.bool, device=DEV)
    keep[torch.randperm(nr * nc, generator=gen, device=DEV)[: round(KEEP * nr * nc)]] = True
    mask = keep.view(nr, nc).repeat_interleave(block, 0).repeat_interleave(block, 1)[:out_f, :in_f]
    return (torch.randn(out_f, in_f, generator=gen, device=DEV) * 0.02 * mask).to(DTYPE)


class TorchBSR:
    """torch's own BSR product, the first form that runs here (or the reason none does). It may
    compile kernels for every new shape: it gets at most SHARE of the time budget, and a first call
    that takes over 15 s turns it off for the weight."""

    SHARE = 0.35
    spent = 0.0  # seconds, all weights together

    def __init__(self, w: torch.Tensor, block: int):
        self.how, self.error, self.fn = "", "", None
        self.slow_compile = False
        try:
            self.w = w.to_sparse_bsr((block, block))
        except Exception as e:  # noqa: BLE001
            self.error = f"to_sparse_bsr: {type(e).__name__}: {str(e)[:100]}"

    def pick(self, x: torch.Tensor):
        if self.error or self.slow_compile:
            return None
        if self.fn is not None:
            return self.fn
        errors = []
        for how, fn in (("F.linear(x, W_bsr)", lambda xx: torch.nn.functional.linear(xx, self.w)),
                        ("torch.sparse.mm(W_bsr, x.T).T", lambda xx: torch.sparse.mm(self.w, xx.t()).t())):
            try:
                t0 = time.monotonic()
                fn(x)
                if DEV == "cuda":
                    torch.cuda.synchronize()
                if time.monotonic() - t0 > 15:  # e.g. compiling Triton kernels for every shape
                    self.slow_compile = True
                self.how, self.fn = how, fn
                return fn
            except Exception as e:  # noqa: BLE001
                errors.append(f"{how}: {type(e).__name__}: {str(e)[:100]}")
        self.error = "; ".join(errors)
        return None


def point(shape, block: int, batch: int, sw, w: torch.Tensor, tbsr: TorchBSR, gen):
    from hpo_bench import ops
    from hpo_bench.kernels.bsr import bsr_config
    from hpo_bench.kernels.skinny import SKINNY_MAX_BATCH, skinny_config

    out_f, in_f = shape
    x = torch.randn(batch, in_f, generator=gen, device=DEV).to(DTYPE)
    row = dict(out=out_f, inp=in_f, block=block, batch=batch, dtype=str(DTYPE).replace("torch.", ""),
               path="bsr tl.dot")
    if batch <= SKINNY_MAX_BATCH:
        cfg = skinny_config(batch, sw.block, sw.data["crow"].numel() - 1, sw.data["col"].numel(), x.device)
        row["path"] = f"skinny {'dot' if cfg['USE_DOT'] else 'fma'} SUB_H={cfg['SUB_H']} NB={cfg['NB']}"
    else:
        cfg = bsr_config(batch, sw.block, sw.data["crow"].numel() - 1, x.device)
        row["path"] = f"bsr tl.dot BLOCK_M={cfg['BLOCK_M']}"
    dense = torch.nn.functional.linear(x, w)
    ours = ops.sparse_linear(x, sw, backend="triton")  # also the warm-up compile
    row["rel_err"] = rel_err(ours, dense)
    row["ok"] = row["rel_err"] < 2e-2
    row["triton_ms"], err = timed(lambda: ops.sparse_linear(x, sw, backend="triton"))
    if err:
        row["triton_error"] = err
    row["dense_ms"], err = timed(lambda: torch.nn.functional.linear(x, w))
    if err:
        row["dense_error"] = err
    # The GPU's own time (CUDA graph, no launch cost) and the CPU's cost to issue one call.
    row["triton_graph_ms"], _ = timed(lambda: ops.sparse_linear(x, sw, backend="triton"), graph_ms)
    row["dense_graph_ms"], _ = timed(lambda: torch.nn.functional.linear(x, w), graph_ms)
    row["triton_host_us"], _ = timed(lambda: ops.sparse_linear(x, sw, backend="triton"), host_us)
    row["dense_host_us"], _ = timed(lambda: torch.nn.functional.linear(x, w), host_us)
    if row["triton_graph_ms"] and row["dense_graph_ms"]:
        row["x_vs_dense_graph"] = row["dense_graph_ms"] / row["triton_graph_ms"]
    t0 = time.monotonic()
    fn = None if TorchBSR.spent > TorchBSR.SHARE * ARGS.budget_s else tbsr.pick(x)
    if fn is not None:
        try:
            t1 = time.monotonic()
            row["torch_bsr_rel_err"] = rel_err(fn(x), dense)
            if time.monotonic() - t1 > 15:
                tbsr.slow_compile = True
        except Exception as e:  # noqa: BLE001
            row["torch_bsr_error"] = f"{type(e).__name__}: {str(e)[:100]}"
        if "torch_bsr_error" not in row:
            row["torch_bsr_ms"], err = timed(lambda: fn(x))
            if err:
                row["torch_bsr_error"] = err
        row["torch_bsr_how"] = tbsr.how
    elif TorchBSR.spent > TorchBSR.SHARE * ARGS.budget_s:
        row["torch_bsr_error"] = "skipped: torch BSR used its share of the time budget (compiling?)"
    else:
        row["torch_bsr_error"] = tbsr.error or "skipped: a first call took > 15 s (compilation)"
    TorchBSR.spent += time.monotonic() - t0
    row["torch_bsr_s"] = round(time.monotonic() - t0, 2)
    t = row.get("triton_ms")
    if t:
        nbytes = (sum(v.numel() * v.element_size() for v in sw.data.values())
                  + x.numel() * x.element_size() + batch * out_f * x.element_size())
        tg = row.get("triton_graph_ms") or t
        row["triton_gbs"] = nbytes / tg / 1e6
        row["triton_tflops"] = 2.0 * batch * sw.data["values"].numel() / tg / 1e9
        if row.get("dense_ms"):
            row["x_vs_dense"] = row["dense_ms"] / t
        if row.get("torch_bsr_ms"):
            row["x_vs_torch_bsr"] = row["torch_bsr_ms"] / t
    if DEV == "cuda":
        torch.cuda.empty_cache()
    RESULTS.append(row)
    log(f"  {out_f}x{in_f} b{block} batch {batch}: triton {t} ms (graph {row.get('triton_graph_ms')}), "
        f"dense {row.get('dense_ms')} ms (graph {row.get('dense_graph_ms')}), "
        f"torch bsr {row.get('torch_bsr_ms', row.get('torch_bsr_error'))}, err {row['rel_err']:.2e}")
    write()


def sweep(shape, block: int, batch: int, sw, gen):
    """Other launch configs of the same point: what the config heuristics should pick."""
    from hpo_bench.kernels import bsr, skinny

    x = torch.randn(batch, shape[1], generator=gen, device=DEV).to(DTYPE)
    cands: list[tuple[str, object]] = []
    if batch <= 16:
        cands.append(("skinny (default)", lambda: skinny.skinny_linear(x, sw)))
        fma = [dict(USE_DOT=False)] + ([dict(USE_DOT=False, SUB_H=8, NB=4), dict(USE_DOT=False, SUB_H=16, NB=2)]
                                       if batch <= 2 else [])
        dot = [dict(USE_DOT=True, NB=nb, num_warps=nw) for nb, nw in ((2, 4), (4, 4), (8, 4), (8, 8))]
        for cfg in fma + dot:
            name = "skinny " + " ".join(f"{k}={v}" for k, v in cfg.items())
            cands.append((name, lambda c=cfg: skinny.skinny_linear(x, sw, config=c)))
        cands.append(("bsr tl.dot (default)", lambda: bsr.bsr_linear(x, sw)))
    else:
        cands.append(("bsr tl.dot (default)", lambda: bsr.bsr_linear(x, sw)))
        for bm, nw, ns in ((64, 4, 3), (128, 4, 3), (128, 8, 3), (128, 8, 4), (256, 8, 3)):
            cfg = dict(BLOCK_M=bm, num_warps=nw, num_stages=ns)
            cands.append((f"BLOCK_M={bm} warps={nw} stages={ns}", lambda c=cfg: bsr.bsr_linear(x, sw, config=c)))
    for name, fn in cands:
        if time.monotonic() > DEADLINE:
            log("  sweep: time budget spent")
            return
        ms, err = timed(fn, graph_ms)
        SWEEP.append(dict(out=shape[0], inp=shape[1], block=block, batch=batch, config=name, ms=ms, error=err))
        log(f"  sweep {shape} b{block} batch {batch} {name}: {ms if ms is not None else err}")
        write()


def write():
    meta = dict(device=torch.cuda.get_device_name() if DEV == "cuda" else "cpu (interpreter)",
                torch=torch.__version__, smoke=ARGS.smoke, block_density=KEEP, dtype=str(DTYPE))
    try:
        import triton

        meta["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        pass
    with open(os.path.join(ARGS.out, "sparse_gpu.json"), "w") as f:
        json.dump(dict(meta=meta, results=RESULTS, sweep=SWEEP), f, indent=1)

    def ms(v):
        return f"{v:.4f}" if isinstance(v, float) else "-"

    def x(v):
        return f"{v:.2f}x" if isinstance(v, float) else "-"

    lines = [f"# BSR inference on {meta['device']} (torch {meta['torch']}, triton {meta.get('triton')})", "",
             f"{meta['dtype'].replace('torch.', '')}, {round(100 * (1 - KEEP))}% of blocks zero. Eager: median ms "
             "of a Python call (triton.testing.do_bench, L2 flushed; a launch slower than the flush is "
             "counted). Graph: GPU ms alone (CUDA graph of flushed calls, see benchmarks/gpu/_timing.py). "
             "Host: CPU µs to issue one call. 'x' = times faster than that baseline; GB/s and TFLOP/s "
             "from the graph time.", "",
             "| W out x in | block | batch | path | triton eager ms | dense eager ms | x vs dense eager "
             "| triton graph ms | dense graph ms | x vs dense graph | host µs triton / dense | torch BSR eager ms "
             "| x vs torch BSR | triton GB/s | useful TFLOP/s | rel err vs dense | torch BSR note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in RESULTS:
        note = r.get("torch_bsr_how", "") if "torch_bsr_ms" in r else r.get("torch_bsr_error", "")[:70]
        err = f"{r['rel_err']:.1e}" + ("" if r["ok"] else " FAIL")
        host = (f"{r['triton_host_us']:.0f} / {r['dense_host_us']:.0f}"
                if isinstance(r.get("triton_host_us"), float) and isinstance(r.get("dense_host_us"), float) else "-")
        lines.append(f"| {r['out']}x{r['inp']} | {r['block']} | {r['batch']} | {r['path']} | {ms(r.get('triton_ms'))} "
                     f"| {ms(r.get('dense_ms'))} | {x(r.get('x_vs_dense'))} | {ms(r.get('triton_graph_ms'))} "
                     f"| {ms(r.get('dense_graph_ms'))} | {x(r.get('x_vs_dense_graph'))} | {host} "
                     f"| {ms(r.get('torch_bsr_ms'))} | {x(r.get('x_vs_torch_bsr'))} | {r.get('triton_gbs', 0):.0f} "
                     f"| {r.get('triton_tflops', 0):.1f} | {err} | {note} |")
    if SWEEP:
        lines += ["", "Config sweep (same point, other launch configs; graph ms):", "",
                  "| W out x in | block | batch | config | ms |", "|---|---|---|---|---|"]
        for s in SWEEP:
            lines.append(f"| {s['out']}x{s['inp']} | {s['block']} | {s['batch']} | {s['config']} "
                         f"| {ms(s['ms']) if s['ms'] is not None else s['error'][:60]} |")
    with open(os.path.join(ARGS.out, "sparse_gpu.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    sys.path.insert(0, ROOT)
    from hpo_bench import ops

    log("backends:", ops.available_backends(),
        {b: ops.dispatch.load_error(b) for b in ops.dispatch.BACKENDS if ops.dispatch.load_error(b)})
    if ARGS.smoke:
        shapes, blocks, batches = [(96, 80)], [32, 16], [1, 20]
    else:
        shapes, blocks, batches = [(4096, 4096), (4096, 14336)], [64, 32], [1, 16, 128, 1024, 4096]
    if ARGS.batches:
        batches = [int(b) for b in ARGS.batches.split(",")]
    gen = torch.Generator(device=DEV).manual_seed(0)
    failures = 0
    weights = {}
    for block in blocks:
        for shape in shapes:
            if time.monotonic() > DEADLINE:
                log(f"time budget spent; skipping {shape} block {block}")
                continue
            try:
                w = block_sparse_weight(*shape, block, gen)
                sw = ops.to_sparse(w, "bsr", block=block)
                weights[(shape, block)] = sw
                tbsr = TorchBSR(w, block)
                for batch in batches:
                    if time.monotonic() > DEADLINE:
                        log(f"time budget spent; skipping {shape} block {block} batch {batch}")
                        continue
                    point(shape, block, batch, sw, w, tbsr, gen)
                del w, tbsr
            except Exception:  # noqa: BLE001
                failures += 1
                log(f"{shape} block {block} failed:\n{traceback.format_exc()}")
                RESULTS.append(dict(out=shape[0], inp=shape[1], block=block, batch=-1, path="(error)",
                                    rel_err=float("nan"), ok=False,
                                    torch_bsr_error=traceback.format_exc(limit=1)[-200:]))
                write()
    # While time lasts: launch-config sweeps at the headline points (the big and the skinny end).
    big = (shapes[-1], blocks[0])
    for shape, block, batch in ((big[0], big[1], batches[-1]), (big[0], big[1], 1), (big[0], big[1], 16)):
        if (shape, block) in weights and time.monotonic() < DEADLINE:
            try:
                sweep(shape, block, batch, weights[(shape, block)], gen)
            except Exception:  # noqa: BLE001
                log(f"sweep failed:\n{traceback.format_exc()}")
    write()
    bad = [r for r in RESULTS if not r.get("ok")]
    if bad:
        log(f"{len(bad)} point(s) failed or disagree with dense")
    return 1 if failures or bad else 0


if __name__ == "__main__":
    sys.exit(main())
