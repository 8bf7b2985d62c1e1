"""What the harness and the GP cost per trial, apart from evaluation.

    python benchmarks/harness_overhead.py [--trials 30]

1. The trial ledger: ``search()`` of random, tpe and tpe-hyperband on the tiny test problem with an
   instant evaluator (so the time is all sampler + storage + bookkeeping), in memory, in an Optuna
   journal file (the default ledger, ``OUT/studies.log``), in SQLite and, when PostgreSQL's binaries
   are here, in a throwaway PostgreSQL server on this machine (tests/pg_server.py; the scale-out
   ledger): milliseconds per trial.
2. The GP's suggestion: one ``skopt.Optimizer`` (GP, gp_hedge) told n random points of the digits-mlp
   space and asked for one, with skopt's default acquisition search (10,000 candidates, 5 L-BFGS
   restarts: ``SkoptGPSampler``'s default since benchmarks/gp_fidelity.py) and a cheaper 2,000 and 2:
   seconds per suggestion, best of 3.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))


class InstantEvaluator:
    """Reports a made-up curve at once: no training, so only the harness is timed."""

    seed = 0

    def evaluate(self, config, reporter):
        from hpo_bench.evaluate import EvalResult

        curve = []
        for e in range(1, int(config["epochs"]) + 1):
            curve.append(0.5 + 0.1 * e * config["lr"])
            if reporter(e, curve[-1]):
                return EvalResult({"accuracy": curve[-1]}, curve, int(config["epochs"]), pruned_at=e)
        return EvalResult({"accuracy": curve[-1]}, curve, int(config["epochs"]))


def ledger(trials: int) -> None:
    import contextlib

    import pg_server
    from conftest import tiny_problem

    problem, d = tiny_problem(), tempfile.mkdtemp()
    server = contextlib.nullcontext(None) if pg_server.available() else pg_server.PostgresServer()
    with server as pg:
        _ledger(problem, d, trials, pg)


def _ledger(problem, d: str, trials: int, pg) -> None:
    from hpo_bench.harness.budget import Budget
    from hpo_bench.harness.runner import search

    print(f"ledger: ms per trial ({trials} trials, instant evaluator, tiny problem)")
    pg_head = " PostgreSQL (local server) |" if pg else ""
    print(f"| method | in memory | journal file (.log) | SQLite (.db) |{pg_head}\n|---|---:|---:|---:|"
          + ("---:|" if pg else ""))
    for method in ("random", "tpe", "tpe-hyperband"):
        cells = []
        storages = [None, os.path.join(d, f"{method}.log"), os.path.join(d, f"{method}.db")]
        if pg:
            storages.append(pg.create_database(f"overhead_{method.replace('-', '_')}"))
        for storage in storages:
            t0 = time.perf_counter()
            run = search(problem, method, Budget(trials=trials), seed=0, storage=storage, evaluator=InstantEvaluator())
            cells.append(f"{(time.perf_counter() - t0) / len(run.trials) * 1e3:.1f}")
        print(f"| {method} | " + " | ".join(cells) + " |", flush=True)


def gp() -> None:
    import numpy as np
    from skopt import Optimizer

    from hpo_bench.problems import get_problem

    dims = get_problem("digits-mlp").space.to_skopt()
    sampler_space = Optimizer(dims, random_state=0).space
    print("\nGP suggestion: seconds (best of 3), digits-mlp space")
    print("| told points | skopt defaults = ours (10,000 / 5) | 2,000 / 2 |\n|---:|---:|---:|")
    for n in (15, 40):
        xs = [sampler_space.rvs(random_state=i)[0] for i in range(n)]
        ys = list(np.random.default_rng(0).random(n))
        cells = []
        for kwargs in ({}, {"n_points": 2000, "n_restarts_optimizer": 2}):
            best = float("inf")
            for rep in range(3):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    opt = Optimizer(dims, base_estimator="GP", n_initial_points=10, acq_func="gp_hedge",
                                    acq_optimizer_kwargs=kwargs or None, random_state=rep)
                    opt.tell(xs, ys)
                    opt.ask()
                    best = min(best, time.perf_counter() - t0)
            cells.append(f"{best:.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=30)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    ledger(args.trials)
    gp()
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
