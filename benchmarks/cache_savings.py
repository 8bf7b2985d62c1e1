"""What the checkpoint cache saves (issue: the caching evaluator), measured side by side in one run.

1. The default comparison (digits-mlp; grid, random, gp, tpe; 12 trials; 3 seeds) with a cold
   cache, then rerun into a new output directory with the now warm cache: epochs trained and wall
   time of each, and 1 - actual/nominal epochs per method of the cold run.
2. A grid over epochs {1, 2, 4, 8}, every other parameter fixed: nominal 15 epochs; the cache
   trains only the longest (8), since every shorter run is a prefix of it.

    python benchmarks/cache_savings.py [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hpo_bench.evaluate import Evaluator
from hpo_bench.evaluate import CachingEvaluator, CheckpointStore
from hpo_bench.harness import Budget, compare, search
from hpo_bench.harness.report import summarize
from hpo_bench.problems import Problem, get_problem
from hpo_bench.space import Categorical, SearchSpace

METHODS = ["grid", "random", "gp", "tpe"]


def default_comparison(cache: Path, out: Path) -> dict:
    problem = get_problem("digits-mlp")
    store = CheckpointStore(cache)
    ev = CachingEvaluator(Evaluator(problem), store)
    t0 = time.perf_counter()
    res = compare(problem, METHODS, Budget(trials=12), range(3), out=out, evaluator=ev, memo=store)
    wall = time.perf_counter() - t0
    per_method = {}
    for m, runs in res.by_method().items():
        nominal = sum(r.nominal_epochs for r in runs)
        actual = sum(r.actual_epochs for r in runs)
        per_method[m] = {"nominal": nominal, "actual": actual, "saved": 1 - actual / nominal}
    nominal = sum(r.nominal_epochs for r in res.runs)
    actual = sum(r.actual_epochs for r in res.runs)
    finals = {m: row["finals"] for m, row in summarize(res)["summary"].items()}
    return {"wall_s": wall, "nominal": nominal, "actual": actual, "per_method": per_method, "finals": finals}


def epoch_grid(cache: Path) -> dict:
    base = get_problem("digits-mlp")
    fixed = {"sparsity": 0.97, "pattern": "unstructured-layer", "lr": 1e-2, "batch_size": 64, "weight_decay": 1e-5}
    problem = Problem(name="digits-mlp-epochs", model=base.model, train=base.train, val=base.val,
                      space=SearchSpace({"epochs": Categorical([1, 2, 4, 8])}), fixed=fixed,
                      pretrain=base.pretrain)
    ev = CachingEvaluator(Evaluator(problem), CheckpointStore(cache))
    run = search(problem, "grid", Budget(trials=4), seed=0, evaluator=ev)
    return {"order": [t.params["epochs"] for t in run.trials], "nominal": run.nominal_epochs,
            "actual": run.actual_epochs, "ratio": run.actual_epochs / run.nominal_epochs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold = default_comparison(tmp / "cache", tmp / "cold")
        warm = default_comparison(tmp / "cache", tmp / "warm")
        grid = epoch_grid(tmp / "cache-grid")
    assert warm["finals"] == cold["finals"], "the warm cache changed a result"
    report = {"cold": cold, "warm": warm, "warm_over_cold_wall": warm["wall_s"] / cold["wall_s"], "epoch_grid": grid}
    print("| run | wall s | nominal epochs | trained epochs |\n|---|---:|---:|---:|")
    for name in ("cold", "warm"):
        r = report[name]
        print(f"| default comparison, {name} cache | {r['wall_s']:.1f} | {r['nominal']} | {r['actual']} |")
    print(f"\nwarm / cold wall time: {report['warm_over_cold_wall']:.1%}")
    print("\n| method (cold run) | nominal | trained | 1 - trained/nominal |\n|---|---:|---:|---:|")
    for m, r in cold["per_method"].items():
        print(f"| {m} | {r['nominal']} | {r['actual']} | {r['saved']:.1%} |")
    print(f"\nepoch grid {grid['order']}: nominal {grid['nominal']}, trained {grid['actual']} "
          f"({grid['ratio']:.3f} of nominal; bound 8/15 = {8 / 15:.3f})")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
