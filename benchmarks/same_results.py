"""Do two revisions evaluate configs to the same bits? A regression check for changes that must
not move any result (a faster kernel, a new training path that keeps the old one as a mode).

    python benchmarks/same_results.py --against f81bd0c [--problem 'digits-mlp[train_path=dense]']
                                      [--old-problem digits-mlp] [--seeds 3] [--trials 6]

Builds ``--against`` in a temporary git worktree (its C++ extension included), runs the random
method there and here on the same problem, seeds and budget, with the real evaluator and no
cache, on one thread, and compares every trial's per-epoch curve and metrics exactly. Prints
IDENTICAL or the first difference; exit status 0 or 1. ``--old-problem`` names the problem at the
old revision when the name changed (a mode it did not have: the default there was that mode).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RUN = r"""
import json, sys, torch
torch.set_num_threads(1)
from hpo_bench.evaluate import Evaluator, load_problem
from hpo_bench.harness import Budget, search
problem, seeds, trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p = load_problem(problem)
out = []
for seed in range(seeds):
    r = search(p, "random", Budget(trials=trials), seed=seed, evaluator=Evaluator(p))
    out += [{"params": t.params, "curve": getattr(t, "curve", None), "metrics": t.metrics} for t in r.trials]
print(json.dumps(out))
"""


def run(path: Path, problem: str, seeds: int, trials: int) -> list:
    env = {**os.environ, "PYTHONPATH": str(path), "HPO_BENCH_CACHE": tempfile.mkdtemp()}
    proc = subprocess.run([sys.executable, "-c", _RUN, problem, str(seeds), str(trials)], cwd=path, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="the other revision (a commit, tag or branch)")
    ap.add_argument("--problem", default="digits-mlp[train_path=dense]")
    ap.add_argument("--old-problem", default="digits-mlp")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.against], check=True,
                       capture_output=True)
        try:
            subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=old, check=True,
                           capture_output=True)
            before = run(old, args.old_problem, args.seeds, args.trials)
            after = run(ROOT, args.problem, args.seeds, args.trials)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    if len(before) != len(after):
        print(f"DIFFERENT: {len(before)} trials at {args.against}, {len(after)} here")
        raise SystemExit(1)
    for i, (a, b) in enumerate(zip(before, after)):
        if a != b:
            print(f"DIFFERENT at trial {i}: {args.against}: {a}\nhere: {b}")
            raise SystemExit(1)
    print(f"IDENTICAL: {len(after)} trials ({args.seeds} seeds x {args.trials}), curves and metrics, "
          f"{args.against} {args.old_problem!r} vs here {args.problem!r}")


if __name__ == "__main__":
    main()
