"""Sparse fine-tuning against dense masked fine-tuning, side by side in one run (issue 17).

    python benchmarks/sparse_training.py [--parts step,trials,suite] [--out DIR] [--threads N]

* ``step``: one training step (forward, backward, Adam step; dense also re-applies the mask) of a
  4096 x 4096 ``nn.Linear`` at 90% unstructured sparsity, batch 64 and 256, its input needing a
  gradient (a layer inside a network): ``nn.Linear`` + mask vs ``nn.SparseTrainingLinear``, on
  ``--device`` (cuda: the Triton kernels; benchmarks/gpu/run.sh runs it there).
  Medians of 21 rounds that alternate the two (``sparsify.time_interleaved``: each timed step
  follows an untimed one of the same kind).
* ``trials``: digits-mlp at 97%, the random method, 8 seeds x ``--trials`` trials, evaluated by the
  real evaluator (no cache; the dense model trained beforehand, as a cache would serve it) with
  ``train_path`` dense and auto (timed on a second pass: the first measures each kind of layer once,
  as a machine does once ever; its time is reported too): trial seconds per fine-tuning epoch (everything a trial spends,
  over the epochs it trained), against a plain torch loop of the same network on the same configs
  (Adam, the config's batch size and epochs, the pruned model's masks re-applied after each step;
  only the loop is timed). Accuracies: the same configs on both paths, paired.
* ``suite``: ``hpo-bench suite benchmarks/suites/default.toml`` (the default suite, 8 seeds x 5
  methods) with a cold cache each, once with every problem at ``train_path=dense`` and once as
  shipped (auto): wall time, and the evaluation share the suite reports.

Prints markdown tables; writes ``sparse_training.json`` (and the suites' output) under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from hpo_bench.compression.sparsify import time_interleaved
from hpo_bench.nn import SparseTrainingLinear

ROOT = Path(__file__).resolve().parent.parent


def bench_step(n: int = 4096, density: float = 0.1, batches=(64, 256), rounds: int = 21,
               device: str = "cpu") -> list[dict]:
    rows = []
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    for batch in batches:
        dense = nn.Linear(n, n)
        mask = torch.rand(n, n, generator=gen) < density
        dense, mask = dense.to(dev), mask.to(dev)
        maskf = mask.float()
        with torch.no_grad():
            dense.weight.mul_(maskf)
        sparse = SparseTrainingLinear.from_linear(dense, mask)
        x = torch.randn(batch, n, generator=gen).to(dev).requires_grad_()
        g = torch.randn(batch, n, generator=gen).to(dev)
        opt_d = torch.optim.Adam(dense.parameters(), lr=1e-4)
        opt_s = torch.optim.Adam(sparse.parameters(), lr=1e-4)

        def dense_step():
            opt_d.zero_grad(set_to_none=True)
            dense(x).backward(g)
            opt_d.step()
            with torch.no_grad():
                dense.weight.mul_(maskf)

        def sparse_step():
            opt_s.zero_grad(set_to_none=True)
            sparse(x).backward(g)
            opt_s.step()

        t = time_interleaved({"dense": dense_step, "sparse": sparse_step}, rounds, dev)
        rows.append({"n": n, "density": density, "batch": batch, "device": str(dev), "dense_ms": 1e3 * t["dense"],
                     "sparse_ms": 1e3 * t["sparse"], "speedup": t["dense"] / t["sparse"]})
        print(f"  step {n}x{n} at {1 - density:.0%}, batch {batch}: dense {1e3 * t['dense']:.1f} ms, "
              f"sparse {1e3 * t['sparse']:.1f} ms, {t['dense'] / t['sparse']:.2f}x", flush=True)
    return rows


def _plain_loop_seconds(model: nn.Module, masks, data, cfg: dict, seed: int) -> float:
    """The plain torch fine-tune of ``model`` (its pruned weights under ``masks``) for the config:
    what a user would write; only the loop is timed."""
    x, y = data
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    bs = int(cfg["batch_size"])
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for _ in range(int(cfg["epochs"])):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), bs):
            idx = order[s:s + bs]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            with torch.no_grad():
                for w, m in masks:
                    w.mul_(m)
    return time.perf_counter() - t0


def bench_trials(seeds: int = 8, trials: int = 10) -> dict:
    from scipy import stats

    from hpo_bench.evaluate import Evaluator
    from hpo_bench.evaluate.pretrained import dense_state
    from hpo_bench.harness import Budget, search
    from hpo_bench.problems import get_problem

    problems = {mode: get_problem("digits-mlp", train_path=mode) for mode in ("dense", "auto")}
    dense_state(problems["dense"])  # trained once, beforehand (a cache serves it to every trial)
    out: dict = {"per_epoch_ms": {}, "runs": {}}
    t0 = time.perf_counter()  # auto's first pass measures each kind of layer once (then remembered on disk)
    for seed in range(seeds):
        search(problems["auto"], "random", Budget(trials=trials), seed=seed, evaluator=Evaluator(problems["auto"]))
    out["auto_first_pass_s"] = time.perf_counter() - t0
    for mode, problem in problems.items():
        secs = epochs = 0.0
        runs = []
        for seed in range(seeds):
            r = search(problem, "random", Budget(trials=trials), seed=seed, evaluator=Evaluator(problem))
            secs += sum(t.seconds for t in r.trials)
            epochs += sum(t.actual_epochs for t in r.trials)
            runs.append([{"params": t.params, "accuracy": t.values[0], "seconds": t.seconds,
                          "epochs": t.actual_epochs} for t in r.trials])
        out["per_epoch_ms"][mode] = 1e3 * secs / epochs
        out["runs"][mode] = runs
        print(f"  trials ({mode}): {1e3 * secs / epochs:.1f} ms per fine-tuning epoch over {int(epochs)} epochs",
              flush=True)
    # the plain loop, on the same configs (the dense runs' configs; random's are the same on both paths)
    ev = Evaluator(problems["dense"])
    secs = epochs = 0.0
    for seed_runs in out["runs"]["dense"]:
        for t in seed_runs:
            cfg = {**problems["dense"].fixed, **t["params"]}
            run = ev.start(cfg)
            secs += _plain_loop_seconds(run.model, run.pruned.pairs(), ev.data()[0], cfg, seed=0)
            epochs += int(cfg["epochs"])
    out["per_epoch_ms"]["plain torch loop"] = 1e3 * secs / epochs
    print(f"  plain torch loop: {1e3 * secs / epochs:.1f} ms per epoch", flush=True)
    same_configs = all(a["params"] == b["params"] for ra, rb in zip(out["runs"]["dense"], out["runs"]["auto"])
                       for a, b in zip(ra, rb))
    acc = {m: [t["accuracy"] for runs in out["runs"][m] for t in runs] for m in ("dense", "auto")}
    best = {m: [max(t["accuracy"] for t in runs) for runs in out["runs"][m]] for m in ("dense", "auto")}
    diffs = [a - b for a, b in zip(acc["auto"], acc["dense"])]
    nonzero = [d for d in diffs if d != 0]
    out["accuracy"] = {
        "same_configs": same_configs, "trials": len(diffs),
        "identical": sum(d == 0 for d in diffs), "max_abs_diff": max(abs(d) for d in diffs),
        "mean_diff": statistics.fmean(diffs),
        "wilcoxon_all_trials_p": float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 else 1.0,
        "ks_p": float(stats.ks_2samp(acc["auto"], acc["dense"]).pvalue),
        "best_per_seed": best,
    }
    return out


def bench_suite(out_dir: Path) -> dict:
    suite = (ROOT / "benchmarks" / "suites" / "default.toml").read_text()
    dense_suite = suite.replace('problem = "digits-mlp"', 'problem = "digits-mlp"\nproblem_args = { train_path = "dense" }')
    assert dense_suite != suite
    res = {}
    for mode, text in (("dense", dense_suite), ("auto", suite)):
        with tempfile.TemporaryDirectory() as cache:
            path = out_dir / f"suite-{mode}.toml"
            path.write_text(text)
            env = {**os.environ, "HPO_BENCH_CACHE": cache}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "hpo_bench", "suite", str(path), "--out", str(out_dir / f"suite-{mode}")],
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
        (out_dir / f"suite-{mode}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"suite ({mode}) failed, see {out_dir / f'suite-{mode}.log'}")
        timing = [ln for ln in proc.stdout.splitlines() if "evaluat" in ln and "%" in ln]
        res[mode] = {"wall_s": wall, "timing_lines": timing}
        print(f"  suite ({mode}): {wall:.1f} s; " + " | ".join(timing[-2:]), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="step,trials,suite")
    ap.add_argument("--out", default="benchmarks/results/sparse-training")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for step and trials (default: torch's)")
    ap.add_argument("--trials", type=int, default=10, help="trials per seed (8 seeds)")
    ap.add_argument("--device", default="cpu", help="the step part's device (cpu, cuda)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": _cpu()}
    if "step" in parts:
        result["step"] = bench_step(device=args.device)
        if args.device != "cpu" and torch.cuda.is_available():
            result["gpu"] = torch.cuda.get_device_name()
    if "trials" in parts:
        result["trials"] = bench_trials(trials=args.trials)
    if "suite" in parts:
        result["suite"] = bench_suite(out_dir)
    (out_dir / "sparse_training.json").write_text(json.dumps(result, indent=1))
    print(_markdown(result))


def _cpu() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return "?"


def _markdown(r: dict) -> str:
    lines = []
    if "step" in r:
        lines += ["", "| layer | batch | dense step | sparse step | speedup | target | met |", "|---|---:|---:|---:|---:|---|---|"]
        for s in r["step"]:
            lines.append(f"| {s['n']}x{s['n']} at {1 - s['density']:.0%} | {s['batch']} | {s['dense_ms']:.1f} ms | "
                         f"{s['sparse_ms']:.1f} ms | {s['speedup']:.2f}x | >= 3x | {'yes' if s['speedup'] >= 3 else 'no'} |")
    if "trials" in r:
        t = r["trials"]
        plain = t["per_epoch_ms"]["plain torch loop"]
        lines += ["", "| digits-mlp at 97% | ms per fine-tuning epoch | vs plain loop |", "|---|---:|---:|"]
        for k, v in t["per_epoch_ms"].items():
            lines.append(f"| {k} | {v:.1f} | {v / plain:.2f}x |")
        a = t["accuracy"]
        lines += ["", f"Accuracy, auto vs dense on the same {a['trials']} configs (same configs: {a['same_configs']}): "
                  f"{a['identical']} identical, max |diff| {a['max_abs_diff']:.4f}, mean diff {a['mean_diff']:+.5f}; "
                  f"Wilcoxon signed-rank p = {a['wilcoxon_all_trials_p']:.3f}; two-sample KS p = {a['ks_p']:.3f}; "
                  f"best per seed dense {a['best_per_seed']['dense']} vs auto {a['best_per_seed']['auto']}"]
    if "suite" in r:
        lines += ["", "| default suite | wall |", "|---|---:|"]
        for k, v in r["suite"].items():
            lines.append(f"| train_path={k} | {v['wall_s']:.1f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
