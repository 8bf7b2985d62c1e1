"""CPU sparse inference, side by side in one run, at the target points of the issue.

    python benchmarks/sparse_cpu.py [--out results.json] [--threads 2] [--repeats 9]

Layers (float32, W 4096x4096 and 1024x4096, unstructured random sparsity):
    dense F.linear  vs  torch's sparse paths (F.linear on CSR / BSR, torch.sparse.mm(CSR, x.T).T)
    vs  ops.sparse_linear in our csr / bsr / bitmask formats  ->  "choice" = what sparsify() runs
    at 90% (batch 1, 8, 64, 256), 95% (batch 1, 8) and 50% (never below 0.95x dense).
End to end: the digits MLP pruned to 90%, its validation pass (539 rows) dense vs sparsify().

Every point times all its paths interleaved (hpo_bench.profile.profile_point): a burst of load
from elsewhere hits all of them alike. Prints a markdown table with the issue's targets.
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from hpo_bench.profile import profile_point, pruned_weight

SHAPES = [(4096, 4096), (1024, 4096)]
# (sparsity, batch) -> (target x dense, target x best torch path)
TARGETS = {(0.9, 1): (4.0, 1.2), (0.9, 8): (4.0, 1.2), (0.9, 64): (2.5, 1.2), (0.9, 256): (1.3, 1.2),
           (0.95, 1): (6.0, None), (0.95, 8): (6.0, None),
           (0.5, 1): (0.95, None), (0.5, 8): (0.95, None), (0.5, 64): (0.95, None), (0.5, 256): (0.95, None)}


def layer_rows(repeats: int) -> list[dict]:
    rows = []
    for shape in SHAPES:
        for s in sorted({s for s, _ in TARGETS}, reverse=True):
            w = pruned_weight(shape, s, "unstructured", torch.device("cpu"))
            for (ts, b), (t_dense, t_torch) in TARGETS.items():
                if ts != s:
                    continue
                p = profile_point(w, b, repeats)
                met = p["speedup_choice"] >= t_dense and (t_torch is None or p["vs_torch"] >= t_torch)
                rows.append({"shape": list(shape), "sparsity": s, "batch": b, **p,
                             "target_dense": t_dense, "target_torch": t_torch, "met": met})
                print(_md_row(rows[-1]), flush=True)
    return rows


def _md_row(r: dict) -> str:
    sec = r["seconds"]
    tb = r["torch_best"]
    target = f">= {r['target_dense']}x dense" + (f", >= {r['target_torch']}x torch" if r["target_torch"] else "")
    return (f"| {r['shape'][0]}x{r['shape'][1]} | {r['sparsity']:.2f} | {r['batch']} | {1e3 * sec['dense']:.3f} | "
            f"{tb} {r['speedup_torch']:.2f}x | {r['ours']} {r['speedup_ours']:.2f}x | "
            f"**{r['choice']} {r['speedup_choice']:.2f}x** | {r['vs_torch']:.2f}x | {target} | "
            f"{'yes' if r['met'] else 'NO'} |")


def end_to_end(repeats: int) -> dict:
    from hpo_bench.compression.pruning import prune_model
    from hpo_bench.compression.sparsify import measure_latency, sparsify, time_interleaved
    from hpo_bench.evaluate.training import as_tensors
    from hpo_bench.evaluate.pretrained import dense_state
    from hpo_bench.problems import get_problem

    problem = get_problem("digits-mlp")
    model = problem.model()
    model.load_state_dict(dense_state(problem))
    prune_model(model, "unstructured", 0.9)
    model.eval()
    x, _ = as_tensors(problem.val, torch.device("cpu"))
    fast = sparsify(model, x)
    with torch.no_grad():
        same = bool(torch.equal(fast(x).argmax(1), model(x).argmax(1)))
        sec = time_interleaved({"dense": lambda: model(x), "sparsify": lambda: fast(x)}, repeats * 5, x.device)
    assert measure_latency(fast, x, 3) > 0
    return {"rows": x.shape[0], "seconds": sec, "speedup": sec["dense"] / sec["sparsify"], "same_predictions": same,
            "formats": {k: v["format"] for k, v in fast.sparsify_report.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} threads, float32, load average {load0:.2f}\n")
    print("| W | sparsity | batch | dense ms | best torch sparse (x dense) | ours best (x dense) | "
          "choice (x dense) | choice / torch | target | met |")
    print("|---|---:|---:|---:|---|---|---|---:|---|---|")
    rows = layer_rows(args.repeats)
    e2e = end_to_end(args.repeats)
    load1 = os.getloadavg()[0]
    print(f"\ndigits MLP pruned to 90%, validation pass ({e2e['rows']} rows): dense "
          f"{1e3 * e2e['seconds']['dense']:.3f} ms, sparsify() {1e3 * e2e['seconds']['sparsify']:.3f} ms "
          f"= {e2e['speedup']:.2f}x; same predictions: {e2e['same_predictions']}; formats {e2e['formats']}")
    print(f"load average {load0:.2f} at start, {load1:.2f} at end")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "torch": torch.__version__, "load": [load0, load1],
                       "layers": rows, "end_to_end": e2e}, f, indent=1)


if __name__ == "__main__":
    main()
