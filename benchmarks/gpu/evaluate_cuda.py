"""End to end on a GPU: the digits-mlp evaluator with --device cuda (Triton pruning in the loop).

Checks, on the real pre-trained model, that every pruning pattern gives the same masks on CUDA
(Triton) as on CPU (native C++ or torch), then evaluates the untuned default and a tuned config on
both devices and records accuracy and seconds. Needs no Optuna (the GPU image has none).

    python3 benchmarks/gpu/evaluate_cuda.py --out DIR
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hpo_bench import ops
from hpo_bench.compression.pruning import prune_model
from hpo_bench.evaluate import Evaluator
from hpo_bench.evaluate.pretrained import dense_state
from hpo_bench.problems import get_problem

TUNED = {"pattern": "unstructured-layer", "lr": 1e-2, "epochs": 4, "batch_size": 64, "weight_decay": 1e-5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu-results")
    ap.add_argument("--device", default="cuda", help="the device compared with cpu ('cpu' checks this script)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = get_problem("digits-mlp")
    state = dense_state(problem)
    devices = ("cpu", args.device)
    report: dict = {"backends": {d: ops.backend_for(torch.device(d)) for d in devices},
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "masks_equal": {}, "evals": []}
    for pattern in ("unstructured", "unstructured-layer", "block4", "2:4"):
        masks = {}
        for dev in devices:
            model = problem.model()
            model.load_state_dict(state)
            model.to(dev)
            masks[dev] = [m.cpu() for m in prune_model(model, pattern, 0.97).masks]
        report["masks_equal"][pattern] = all(
            torch.equal(a, b) for a, b in zip(masks["cpu"], masks[args.device]))
    for name, cfg in (("default", problem.baseline_config()), ("tuned", problem.config(TUNED))):
        for dev in devices:
            ev = Evaluator(problem, device=dev)
            ev.evaluate(cfg)  # warm-up: data transfer, kernel compilation
            t0 = time.perf_counter()
            r = ev.evaluate(cfg)
            report["evals"].append({"config": name, "device": dev, "accuracy": r.values["accuracy"],
                                    "seconds": time.perf_counter() - t0, "curve": r.curve})
    (out / "evaluate_cuda.json").write_text(json.dumps(report, indent=1))
    print("masks equal CPU vs CUDA:", report["masks_equal"])
    for e in report["evals"]:
        print(f"{e['config']:8s} {e['device']:5s} accuracy {e['accuracy']:.4f}  {e['seconds']:.2f} s")


if __name__ == "__main__":
    main()
