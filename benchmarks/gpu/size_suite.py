"""Size a comparison to the device time there is, from measured seconds (issue 18's calibration).

    python benchmarks/gpu/size_suite.py SUITE.toml --comparison NAME --device cuda --seconds 240 \
        --out sized.toml [--json calibration.json] [--cache DIR] [--no-pretrain]

Without this, a GPU suite is sized by guesswork, and the last one did not finish within its step.
So it measures, on the device, in the order the suite will pay them:

1. the dense model (pretraining, or the cache's copy with ``--cache``, the suite's cache);
2. one trial of the comparison's untuned default at 1 and at 3 fine-tuning epochs. The difference
   over 2 epochs is the cost of an epoch; what is left over is a trial's fixed cost (pruning, the
   training plan, scoring).

Then it sizes the comparison (``sized``, a pure function, tested in tests/test_gpu_sizing.py). It
keeps the methods, and gives each (method, seed) run ``epochs`` nominal epochs. Seeds and epochs
come down, seeds first to ``--min-seeds``, until a conservative estimate of the suite's time fits
``--seconds``. The estimate counts every run's epochs and, per trial, the fixed cost plus a
method's choosing time (``--choose-s``, the GP's). It writes a suite file with that one comparison
and prints the arithmetic.

``--no-pretrain`` times the fine-tune on the untrained architecture. The cost of an epoch does not
depend on the weights' values, so a CPU can give the same problem's figure without the hours of
pretraining (evaluations per minute, CPU vs GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch


def sized(per_epoch_s: float, per_trial_s: float, methods: int, seconds: float, max_epochs: int,
          max_seeds: int, *, min_seeds: int = 2, min_epochs: int = 2, choose_s: float = 0.5,
          epochs_per_trial: float = 3.0, safety: float = 1.5) -> tuple[int, int, float]:
    """(seeds, epochs per run, estimated seconds) of the largest comparison that fits ``seconds``:
    ``methods`` x seeds runs of ``epochs`` nominal epochs each. A run of E epochs costs E epochs
    plus E / ``epochs_per_trial`` trials of fixed cost and choosing time, times ``safety``. Seeds
    go down first (to ``min_seeds``), then epochs (to ``min_epochs``); (0, 0, cost) if even
    the smallest does not fit."""
    if min(per_epoch_s, seconds) <= 0 or per_trial_s < 0 or methods < 1:
        raise ValueError("per_epoch_s and seconds must be > 0, per_trial_s >= 0, methods >= 1")

    def cost(seeds: int, epochs: int) -> float:
        trials = epochs / epochs_per_trial
        return safety * methods * seeds * (epochs * per_epoch_s + trials * (per_trial_s + choose_s))

    epochs = max_epochs
    for seeds in range(max(max_seeds, min_seeds), min_seeds - 1, -1):
        if cost(seeds, epochs) <= seconds:
            return seeds, epochs, cost(seeds, epochs)
    seeds = min_seeds
    while epochs > min_epochs and cost(seeds, epochs) > seconds:
        epochs -= 1
    c = cost(seeds, epochs)
    return (seeds, epochs, c) if c <= seconds else (0, 0, c)


def calibrate(problem, device: str, cache: str | None, pretrain: bool) -> dict:
    from hpo_bench.evaluate import Evaluator
    from hpo_bench.evaluate.pretrained import dense_state
    from hpo_bench.evaluate.store import CheckpointStore

    t0 = time.perf_counter()
    if pretrain:
        dense = dense_state(problem, CheckpointStore(cache) if cache else None)
    else:
        dense = problem.model().state_dict()
    dense_s = time.perf_counter() - t0
    ev = Evaluator(problem, device=device)
    base = dict(problem.baseline_config())
    times = {}
    for epochs in (1, 3, 1, 3):  # twice each: the first of each warms up (kernel compilation, plans)
        cfg = {**base, "epochs": epochs}
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        run = ev.start(cfg, dense=dense)
        for _ in range(epochs):
            run.train_epoch()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times[epochs] = time.perf_counter() - t
    per_epoch = max((times[3] - times[1]) / 2, 1e-6)
    return {"device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
            "dense_s": dense_s, "pretrained": pretrain, "trial_1_epoch_s": times[1], "trial_3_epochs_s": times[3],
            "per_epoch_s": per_epoch, "per_trial_s": max(times[1] - per_epoch, 0.0),
            "epochs_per_minute": 60.0 / per_epoch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite")
    ap.add_argument("--comparison", required=True, help="the comparison (its name in the suite) to size")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, required=True, help="time the sized comparison may take")
    ap.add_argument("--out", required=True, help="the sized suite file to write")
    ap.add_argument("--json", help="also write the calibration and the arithmetic here")
    ap.add_argument("--cache", help="the checkpoint cache the suite will use (the dense model is kept there)")
    ap.add_argument("--no-pretrain", action="store_true", help="time the fine-tune on the untrained model")
    ap.add_argument("--min-seeds", type=int, default=2)
    ap.add_argument("--choose-s", type=float, default=0.5, help="a method's seconds to choose a trial (GP: ~0.5)")
    args = ap.parse_args()

    from hpo_bench.harness.suite import load_suite

    suite = load_suite(args.suite)
    found = [c for c in suite.comparisons if c.name == args.comparison]
    if not found:
        sys.exit(f"size_suite: {args.suite} has no comparison {args.comparison!r}; "
                 f"it has {', '.join(c.name for c in suite.comparisons)}")
    cmp = found[0]
    if cmp.budget.epochs is None:
        sys.exit(f"size_suite: comparison {cmp.name!r} has no epoch budget to size")
    if suite.threads:  # measured as the suite will run
        torch.set_num_threads(suite.threads)
    cal = calibrate(cmp.make_problem(), args.device, args.cache, not args.no_pretrain)
    seeds, epochs, estimate = sized(cal["per_epoch_s"], cal["per_trial_s"], len(cmp.methods), args.seconds,
                                    int(cmp.budget.epochs), len(cmp.seeds), min_seeds=args.min_seeds,
                                    choose_s=args.choose_s)
    print(f"calibration on {cal['device']}: dense model {cal['dense_s']:.1f} s "
          f"({'pretrained or cached' if cal['pretrained'] else 'untrained: timing only'}); "
          f"a trial costs {cal['per_trial_s']:.2f} s + {cal['per_epoch_s']:.3f} s per epoch "
          f"({cal['epochs_per_minute']:.1f} epochs per minute)")
    if seeds == 0:
        sys.exit(f"size_suite: even {args.min_seeds} seeds x 2 epochs x {len(cmp.methods)} methods need ~{estimate:.0f} s "
                 f"(> {args.seconds:.0f} s): give it more time or a smaller problem")
    print(f"sized: {len(cmp.methods)} methods x {seeds} seeds x {epochs} epochs (of {len(cmp.seeds)} x "
          f"{cmp.budget.epochs}), estimated {estimate:.0f} s of {args.seconds:.0f} s "
          f"(x1.5 safety; {math.ceil(epochs / 3)} trials per run at ~3 epochs each)")
    args_toml = ", ".join(f"{k} = {json.dumps(v)}" for k, v in cmp.problem_args.items())
    lines = [f"# Sized by benchmarks/gpu/size_suite.py from {args.suite} ({cmp.name}) to ~{args.seconds:.0f} s "
             f"on {cal['device']}.",
             f'name = "{suite.name}-sized"', f"description = {json.dumps(suite.description)}", f"seeds = {seeds}"]
    if suite.threads:
        lines.append(f"threads = {suite.threads}")
    lines += ["", "[[comparison]]", f'name = "{cmp.name}"', f'problem = "{cmp.problem}"']
    if args_toml:
        lines.append(f"problem_args = {{ {args_toml} }}")
    lines += [f"methods = {json.dumps(cmp.methods)}", f"budget = {{ epochs = {epochs} }}"]
    if cmp.study_workers != 1:
        lines.append(f"study_workers = {cmp.study_workers}")
    if cmp.best_known is not None:
        lines.append(f"best_known = {cmp.best_known!r}")
    lines.append("")
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    load_suite(args.out)  # what was written reads back
    if args.json:
        Path(args.json).write_text(json.dumps({**cal, "seconds": args.seconds, "seeds": seeds, "epochs": epochs,
                                               "methods": cmp.methods, "estimate_s": estimate}, indent=1))


if __name__ == "__main__":
    main()
