"""Is hpo_bench's GP as good as scikit-optimize's own ``gp_minimize``? Best value found on standard
test functions, per seed, and the time each method takes per suggestion.

    python benchmarks/gp_fidelity.py [--evals 25] [--seeds 10] [--jobs 1] [--json out.json]
                                     [--methods gp_minimize,gp,gp-optuna,tpe,random] [--functions ...]
    python benchmarks/gp_fidelity.py --suite-cost 2000x2,10000x5 --seeds 8

Functions (all minimised): ``branin`` (2-D), ``hartmann3`` (3-D), ``mixed2d`` (a real x and a
3-way categorical, each category its own shifted, rippled bowl) and ``finetune5d`` (ours: a made-up
validation-error surface over the digits-mlp space's kinds of parameters: a categorical pattern,
log-scale learning rate and weight decay, integer epochs, a categorical integer batch size, the
best learning rate depending on the pattern and the batch size).

Methods: ``gp_minimize`` (skopt's defaults: 10 random starts, gp_hedge, 10,000 candidates and 5
L-BFGS restarts per acquisition function), ``gp`` (``SkoptGPSampler`` with its defaults),
``gp@PxR`` (the same with P candidates and R restarts), ``gp-optuna`` (Optuna's ``GPSampler``, as
the gp-optuna method runs it: ``OptunaGPSampler``),
``tpe`` (Optuna's multivariate TPE) and ``random``; every Optuna sampler with 10 random start-up
trials (the samplers' and gp_minimize's default) and run as hpo_bench runs it (a fresh sampler per
trial, seeded from (seed, trial index): methods/reseeding.py). Seed s is ``random_state=s`` /
``seed=s``; pairs are by seed.

Printed: the median best value (and quartiles) per function and method; each GP against
``gp_minimize``: wins/ties/losses over the paired seeds (a win: a lower best value) and the
two-sided Wilcoxon signed-rank p (ties dropped), per function and over all cells; seconds per
suggestion (between one evaluation's end and the next one's start, so the sampler's own work plus
Optuna's bookkeeping; the functions themselves take microseconds), over the model-based suggestions
(11th on) and over all. Threads are pinned to 1 (OMP/MKL/torch) so that times compare.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from hpo_bench.space import Categorical, Float, Int, SearchSpace  # noqa: E402

N_INITIAL = 10


# ---------------------------------------------------------------------- functions
def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H3_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(p: dict[str, Any]) -> float:
    x = np.array([p["x1"], p["x2"], p["x3"]])
    return float(-np.sum(_H3_ALPHA * np.exp(-np.sum(_H3_A * (x - _H3_P) ** 2, axis=1))))


_MIXED_SHIFT = {"a": -2.5, "b": 0.5, "c": 3.0}
_MIXED_OFFSET = {"a": 0.6, "b": 0.0, "c": 0.3}


def mixed2d(p: dict[str, Any]) -> float:
    d = p["x"] - _MIXED_SHIFT[p["c"]]
    return 0.2 * d * d - 0.5 * math.cos(2.5 * d) + _MIXED_OFFSET[p["c"]]


_PATTERN = {"unstructured": (0.02, -2.6), "unstructured-layer": (0.05, -2.3), "block4": (0.10, -1.8)}


def finetune5d(p: dict[str, Any]) -> float:
    base, best_lr = _PATTERN[p["pattern"]]
    best_lr += 0.3 * math.log2(p["batch_size"] / 64)  # bigger batches want a bigger step
    err = base + 0.08 * (math.log10(p["lr"]) - best_lr) ** 2
    err += 0.2 * math.exp(-p["epochs"] / 2.5)
    err += 0.01 * (math.log10(p["weight_decay"]) + 4) ** 2 / 4
    return err


FUNCTIONS: dict[str, tuple[Callable[[dict[str, Any]], float], SearchSpace]] = {
    "branin": (branin, SearchSpace({"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)})),
    "hartmann3": (hartmann3, SearchSpace({f"x{i}": Float(0.0, 1.0) for i in (1, 2, 3)})),
    "mixed2d": (mixed2d, SearchSpace({"x": Float(-5.0, 5.0), "c": Categorical(["a", "b", "c"])})),
    "finetune5d": (finetune5d, SearchSpace({
        "pattern": Categorical(list(_PATTERN)), "lr": Float(1e-4, 1e-1, log=True), "epochs": Int(1, 8),
        "batch_size": Categorical([64, 32, 128]), "weight_decay": Float(1e-6, 1e-2, log=True),
    })),
}


# ---------------------------------------------------------------------- methods
class _Clock:
    """Wraps the objective: records when each evaluation starts and ends."""

    def __init__(self, f: Callable[[dict[str, Any]], float]) -> None:
        self.f, self.starts, self.ends, self.values = f, [], [], []
        self.t0 = time.perf_counter()

    def __call__(self, params: dict[str, Any]) -> float:
        self.starts.append(time.perf_counter())
        y = float(self.f(params))
        self.ends.append(time.perf_counter())
        self.values.append(y)
        return y

    def suggest_seconds(self) -> list[float]:
        prev = [self.t0, *self.ends[:-1]]
        return [s - e for s, e in zip(self.starts, prev)]


def _run_gp_minimize(fn: str, seed: int, evals: int) -> _Clock:
    from skopt import gp_minimize
    from skopt.space import Categorical as SkCat
    from skopt.space import Integer, Real

    f, space = FUNCTIONS[fn]
    dims = []
    for name, p in space.items():
        if isinstance(p, Float):
            dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=name))
        elif isinstance(p, Int):
            dims.append(Integer(p.low, p.high, name=name))
        else:
            dims.append(SkCat(list(p.choices), name=name))
    clock = _Clock(f)
    names = list(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clock.t0 = time.perf_counter()
        gp_minimize(lambda x: clock({n: (v.item() if hasattr(v, "item") else v) for n, v in zip(names, x)}),
                    dims, n_calls=evals, random_state=seed)
    return clock


def _sampler_factory(method: str) -> Callable[[int, SearchSpace], Any]:
    import optuna

    from hpo_bench.methods.skopt_sampler import SkoptGPSampler

    if method == "gp":
        return lambda s, space: SkoptGPSampler(space, seed=s, n_initial_points=N_INITIAL)
    if method.startswith("gp@"):
        points, restarts = (int(v) for v in method[3:].split("x"))
        return lambda s, space: SkoptGPSampler(space, seed=s, n_initial_points=N_INITIAL,
                                               acq_points=points, acq_restarts=restarts)
    if method == "gp-optuna":
        from hpo_bench.methods.skopt_sampler import OptunaGPSampler

        return lambda s, space: OptunaGPSampler(seed=s, n_startup_trials=N_INITIAL)
    if method == "tpe":
        return lambda s, space: optuna.samplers.TPESampler(seed=s, n_startup_trials=N_INITIAL, multivariate=True)
    if method == "random":
        return lambda s, space: optuna.samplers.RandomSampler(seed=s)
    raise ValueError(f"unknown method {method!r}")


def _run_optuna(method: str, fn: str, seed: int, evals: int) -> _Clock:
    import optuna

    from hpo_bench.harness.runner import _suggest
    from hpo_bench.methods.reseeding import ReseedingSampler

    f, space = FUNCTIONS[fn]
    factory = _sampler_factory(method)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=ReseedingSampler(lambda s: factory(s, space), seed))
    clock = _Clock(f)

    def objective(trial: Any) -> float:
        return clock({name: _suggest(trial, name, p) for name, p in space.items()})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clock.t0 = time.perf_counter()
        study.optimize(objective, n_trials=evals)
    return clock


def run_one(task: tuple[str, str, int, int]) -> dict[str, Any]:
    method, fn, seed, evals = task
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    clock = _run_gp_minimize(fn, seed, evals) if method == "gp_minimize" else _run_optuna(method, fn, seed, evals)
    return {"method": method, "function": fn, "seed": seed, "evals": evals, "best": min(clock.values),
            "values": clock.values, "suggest_s": clock.suggest_seconds()}


# ---------------------------------------------------------------------- report
def _wilcoxon(a: list[float], b: list[float]) -> tuple[int, int, int, float]:
    from scipy.stats import wilcoxon

    d = [x - y for x, y in zip(a, b)]
    w, t, l_ = sum(x < 0 for x in d), sum(x == 0 for x in d), sum(x > 0 for x in d)
    p = float(wilcoxon(a, b, zero_method="wilcox").pvalue) if w + l_ else 1.0
    return w, t, l_, p


def report(rows: list[dict[str, Any]], methods: list[str], functions: list[str]) -> str:
    best: dict[tuple[str, str], list[float]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        best.setdefault((r["function"], r["method"]), []).append(r["best"])
    out = ["Best value found (minimised), median [q25, q75] over seeds:", "",
           "| function | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for fn in functions:
        cells = []
        for m in methods:
            v = best.get((fn, m), [])
            cells.append(f"{np.median(v):.4g} [{np.quantile(v, 0.25):.4g}, {np.quantile(v, 0.75):.4g}]" if v else "-")
        out.append(f"| {fn} | " + " | ".join(cells) + " |")
    others = [m for m in methods if m != "gp_minimize"]
    if "gp_minimize" in methods and others:
        out += ["", "Against gp_minimize, paired by seed: wins/ties/losses (a win: a lower best value), "
                "two-sided Wilcoxon signed-rank p:", "",
                "| function | " + " | ".join(f"{m} vs gp_minimize" for m in others) + " |",
                "|---|" + "---:|" * len(others)]
        for fn in [*functions, "all"]:
            cells = []
            for m in others:
                fns = functions if fn == "all" else [fn]
                a = [x for f in fns for x in best.get((f, m), [])]
                b = [x for f in fns for x in best.get((f, "gp_minimize"), [])]
                if len(a) != len(b) or not a:
                    cells.append("-")
                    continue
                w, t, l_, p = _wilcoxon(a, b)
                cells.append(f"{w}/{t}/{l_}, p = {p:.3g}")
            out.append(f"| {fn if fn != 'all' else '**all cells**'} | " + " | ".join(cells) + " |")
    out += ["", "Seconds per suggestion, mean over every function and seed (max in brackets):", "",
            f"| method | model-based ({N_INITIAL + 1}th on) | all |", "|---|---:|---:|"]
    for m in methods:
        model = [s for r in rows if r["method"] == m for s in r["suggest_s"][N_INITIAL:]]
        every = [s for r in rows if r["method"] == m for s in r["suggest_s"]]
        if every:
            out.append(f"| {m} | {np.mean(model):.3f} [{np.max(model):.3f}] | {np.mean(every):.3f} |"
                       if model else f"| {m} | - | {np.mean(every):.3f} |")
    return "\n".join(out)


# ---------------------------------------------------------------------- the default suite's cost
class _SyntheticDigits:
    """An evaluator for digits-mlp that trains nothing: accuracy = 1 - finetune5d(config), reported
    at every epoch, so a search takes the suite's path (30-epoch budget, trial ledger) and only
    the method's own time is left to measure."""

    seed = 0

    def evaluate(self, config: dict[str, Any], reporter: Any = None) -> Any:
        from hpo_bench.evaluate import EvalResult

        acc = 1.0 - finetune5d(config)
        epochs = int(config["epochs"])
        for e in range(1, epochs + 1):
            if reporter is not None:
                reporter(e, acc)
        return EvalResult({"accuracy": acc}, [acc] * epochs, epochs)


def suite_cost(settings: list[str], seeds: int) -> str:
    """Seconds the GP spends choosing each trial in the default suite's setting (digits-mlp, 30
    nominal epochs, seeds 0..seeds-1), per acquisition setting ``PxR``."""
    import dataclasses

    from hpo_bench.harness import Budget, search
    from hpo_bench.methods import registry
    from hpo_bench.methods.skopt_sampler import SkoptGPSampler
    from hpo_bench.problems import get_problem

    problem, real = get_problem("digits-mlp"), registry.METHODS["gp"]
    out = ["| acquisition (candidates x restarts) | trials | GP seconds per trial | per seed |", "|---|---:|---:|---:|"]
    for setting in settings:
        points, restarts = (int(v) for v in setting.split("x"))

        def build(c: Any, points: int = points, restarts: int = restarts) -> tuple[Any, None]:
            return SkoptGPSampler(c.space, seed=c.seed, n_initial_points=registry.n_initial(c.budget_trials),
                                  acq_points=points, acq_restarts=restarts), None

        registry.METHODS["gp"] = dataclasses.replace(real, build=build)
        try:
            runs = [search(problem, "gp", Budget(epochs=30), seed=s, evaluator=_SyntheticDigits())
                    for s in range(seeds)]
        finally:
            registry.METHODS["gp"] = real
        n, sec = sum(len(r.trials) for r in runs), sum(r.suggest_seconds for r in runs)
        out.append(f"| {points:,} x {restarts} | {n} | {sec / n:.3f} | {sec / seeds:.2f} |")
        print(out[-1], file=sys.stderr, flush=True)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--evals", type=int, default=25)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--methods", default="gp_minimize,gp,gp-optuna,tpe,random")
    p.add_argument("--functions", default=",".join(FUNCTIONS))
    p.add_argument("--jobs", type=int, default=1, help="processes (times are for --jobs 1 on a quiet machine)")
    p.add_argument("--json", help="write every run here (and read runs already there: a rerun only adds)")
    p.add_argument("--report-only", action="store_true", help="print the tables of --json, run nothing")
    p.add_argument("--suite-cost", metavar="PxR,...", help="instead: the GP's seconds per trial in the default "
                   "suite's setting (digits-mlp, 30 epochs, --seeds seeds) for these acquisition settings")
    a = p.parse_args(argv)
    if a.suite_cost:
        print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        print(suite_cost(a.suite_cost.split(","), a.seeds))
        print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
        return
    methods, functions = a.methods.split(","), a.functions.split(",")
    for fn in functions:
        if fn not in FUNCTIONS:
            p.error(f"unknown function {fn!r}; known: {', '.join(FUNCTIONS)}")
    stored: list[dict[str, Any]] = []  # every run in --json, kept there whatever this call reports
    if a.json and os.path.exists(a.json):
        with open(a.json) as fh:
            stored = json.load(fh)
    rows = [r for r in stored if r["method"] in methods and r["function"] in functions
            and r["seed"] < a.seeds and r["evals"] == a.evals]
    done = {(r["method"], r["function"], r["seed"]) for r in rows}
    tasks = [(m, fn, s, a.evals) for fn in functions for m in methods for s in range(a.seeds)
             if (m, fn, s) not in done and not a.report_only]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(tasks)} runs", file=sys.stderr, flush=True)

    def keep(r: dict[str, Any]) -> None:
        rows.append(r)
        stored.append(r)
        print(f"{r['function']:<11} {r['method']:<13} seed {r['seed']}: best {r['best']:.5g}  "
              f"{np.mean(r['suggest_s'][N_INITIAL:] or [0]):.3f} s/suggestion", file=sys.stderr, flush=True)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(stored, fh)

    if a.jobs > 1 and tasks:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(a.jobs) as pool:
            for r in pool.imap_unordered(run_one, tasks):
                keep(r)
    else:
        for t in tasks:
            keep(run_one(t))
    print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(report(rows, methods, functions))


if __name__ == "__main__":
    main()
