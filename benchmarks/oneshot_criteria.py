"""One-shot pruning (no fine-tuning) by criterion x allocation: what each choice costs before any
fine-tune, on the digits MLP at 97% and on the byte-level GPT at 60%.

    python benchmarks/oneshot_criteria.py [--problems digits-mlp-criteria,lm-bytes]

Each cell is the pruned dense model's validation score with ``epochs = 0`` (evaluation seed 0;
calibration: 128 training samples drawn by that seed): accuracy (higher is better) for digits,
validation loss in nats per byte (lower is better) for the language model. The dense model is the
problem's own pretrained one (trained here on first use, as every evaluation does).
"""
from __future__ import annotations

import argparse
import os
import time

CRITERIA = ("magnitude", "wanda", "taylor")
ALLOCATIONS = (("global", None), ("uniform", None), ("erk", None), ("owl", 0.08), ("owl", 0.02))


def table(name: str) -> None:
    from hpo_bench.evaluate import Evaluator
    from hpo_bench.problems import get_problem

    p = get_problem(name)
    ev = Evaluator(p, seed=0)
    metric = p.metric
    heads = [a if lam is None else f"{a} (lambda {lam})" for a, lam in ALLOCATIONS]
    print(f"\n{name}: one-shot {metric} at sparsity {p.fixed.get('sparsity')} "
          f"({'higher' if p.directions[0] == 'maximize' else 'lower'} is better)")
    print("| criterion | " + " | ".join(heads) + " |\n|---|" + "---:|" * len(heads))
    t0 = time.perf_counter()
    for c in CRITERIA:
        cells = []
        for a, lam in ALLOCATIONS:
            cfg = {**p.baseline_config(), "pattern": "unstructured", "criterion": c, "allocation": a, "epochs": 0}
            if lam is not None:
                cfg["owl_lambda"] = lam
            cells.append(f"{ev.evaluate(cfg).values[metric]:.4f}")
        print(f"| {c} | " + " | ".join(cells) + " |", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="digits-mlp-criteria,lm-bytes")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name in args.problems.split(","):
        table(name)


if __name__ == "__main__":
    main()
