"""``hpo-bench``: the command line.

    hpo-bench problems                      the registered problems
    hpo-bench methods                       the registered search methods
    hpo-bench run --problem P --method M --budget B [--seed S]
    hpo-bench compare --problem P --methods a,b,c --budget B --seeds N
    hpo-bench profile-kernels [--device cpu|cuda] [--quick]   sparse inference vs dense, here
    hpo-bench report DIR                    report.md, plots and summary.json of a compare's DIR
    hpo-bench suite FILE.toml               the comparisons a suite file names, each with its report

Every command takes ``--out DIR`` (JSON results written there) and ``--json`` (print that JSON).
Bad input ends with one line on stderr and exit status 2, never a traceback; rerunning a command
with the same ``--out`` continues its studies instead of starting over.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported in one line, exit status 2."""


# ---------------------------------------------------------------------- formatting
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.4g}"
    return str(v)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([line, sep, *body])


def _config(cfg: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in cfg.items())


# ---------------------------------------------------------------------- helpers
def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return name


def _out_dir(path: str | None, default: str | None = None) -> Path:
    """``--out``: created if missing, but its parent must exist (a typo should not build a tree).
    The default ``runs/PROBLEM`` is created with its parents."""
    if path is None:
        assert default is not None
        out = Path(default)
        out.mkdir(parents=True, exist_ok=True)
        return out
    out = Path(path)
    if not out.parent.exists():
        raise UsageError(f"--out {path!r}: parent directory {str(out.parent)!r} does not exist")
    out.mkdir(exist_ok=True)
    return out


def _storage(args: argparse.Namespace, out: Path) -> str:
    if args.storage:
        if "://" not in args.storage and not Path(args.storage).parent.is_dir():
            raise UsageError(f"--storage {args.storage!r}: directory {str(Path(args.storage).parent)!r} does not exist")
        return args.storage
    from .harness.runner import default_storage

    return default_storage(out)


def _store(args: argparse.Namespace):
    from .evaluate.cache import CheckpointStore

    if getattr(args, "cache_max_gb", None) is not None and args.cache_max_gb <= 0:
        raise UsageError(f"--cache-max-gb must be > 0, got {args.cache_max_gb}")
    max_bytes = int(args.cache_max_gb * 2**30) if getattr(args, "cache_max_gb", None) else None
    return CheckpointStore(args.cache, max_bytes=max_bytes)


def _evaluator(args: argparse.Namespace, problem, device: str):
    """The evaluator of a command: cached unless --no-cache."""
    from .evaluate import Evaluator
    from .evaluate.cache import CachingEvaluator

    if getattr(problem, "make_evaluator", None) is not None:  # a table answers from its own cache
        return problem.make_evaluator(device, args.eval_seed)
    inner = Evaluator(problem, device=device, seed=args.eval_seed)
    return inner if args.no_cache else CachingEvaluator(inner, _store(args))


def _budget(args: argparse.Namespace):
    from .harness.budget import Budget

    try:
        return Budget(trials=args.budget, epochs=args.budget_epochs)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _problem(name: str):
    from .problems import get_problem

    try:
        return get_problem(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _methods(names: str, problem) -> list[str]:
    from .methods import METHODS

    methods = [m.strip() for m in names.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"unknown method {m!r}; known: {', '.join(METHODS)}")
        if not METHODS[m].supports(problem.multi_objective):
            kind = "multi" if problem.multi_objective else "single"
            raise UsageError(f"method {m!r} cannot run on {problem.name!r}, a {kind}-objective problem")
    return methods


def _seeds(spec: str) -> list[int]:
    try:
        if "," in spec or "-" in spec.strip("-"):
            seeds: list[int] = []
            for part in spec.split(","):
                a, _, b = part.partition("-")
                seeds.extend(range(int(a), int(b) + 1) if b else [int(a)])
        else:
            n = int(spec)
            if n < 1:
                raise UsageError(f"--seeds must be >= 1, got {n}")
            seeds = list(range(n))
    except ValueError:
        raise UsageError(f"--seeds {spec!r}: give a count (5), a list (0,3,7) or a range (0-4)") from None
    return seeds


class _Progress:
    """A tqdm bar on stderr over all trials of a command (silent when stderr is not a terminal).
    ``HPO_BENCH_PROGRESS=lines``: one line per finished trial instead, with the time since the
    start, for logs of unattended runs (a run killed by a time limit still shows how far it got)."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.lines = os.environ.get("HPO_BENCH_PROGRESS", "").strip().lower() == "lines"
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="trial", file=sys.stderr, leave=False,
                        disable=self.lines or not sys.stderr.isatty())
        if self.lines:
            print(f"[{0.0:8.1f} s] {desc}: up to {total} trials", file=sys.stderr, flush=True)

    def __call__(self, method: str, seed: int, rec: Any) -> None:
        best = f"{rec.values[0]:.4f}" if rec.values else rec.state.lower()
        if self.lines:
            print(f"[{time.perf_counter() - self.t0:8.1f} s] {method} seed {seed} trial {rec.number}: {best} "
                  f"({rec.state.lower()}, {rec.nominal_epochs} epochs, {rec.seconds:.1f} s)", file=sys.stderr, flush=True)
        self.bar.set_postfix_str(f"{method} seed {seed}: {best}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str, out: Path | None, name: str) -> None:
    from ._io import write_json_atomic

    if out is not None:
        write_json_atomic(out / name, payload)
    if args.json:
        print(json.dumps(payload, indent=1, default=str))
    else:
        print(text)
        if out is not None:
            print(f"\nresults: {out / name}")


# ---------------------------------------------------------------------- commands
def cmd_problems(args: argparse.Namespace) -> None:
    from .problems import PROBLEMS

    rows, payload = [], []
    for name, factory in PROBLEMS.items():
        p = factory()
        rows.append([name, ",".join(p.objectives), len(p.space), p.description])
        payload.append({"name": name, "objectives": list(p.objectives), "space": p.space.describe(),
                        "fixed": dict(p.fixed), "description": p.description})
    out = _out_dir(args.out) if args.out else None
    _emit(args, {"problems": payload}, table(["problem", "objectives", "params", "description"], rows), out, "problems.json")


def cmd_methods(args: argparse.Namespace) -> None:
    from .methods import METHODS

    rows = [[m.name, m.objectives, m.description] for m in METHODS.values()]
    payload = {"methods": [{"name": m.name, "objectives": m.objectives, "description": m.description} for m in METHODS.values()]}
    out = _out_dir(args.out) if args.out else None
    _emit(args, payload, table(["method", "objectives", "description"], rows), out, "methods.json")


def cmd_run(args: argparse.Namespace) -> None:
    from .harness.runner import search

    problem = _problem(args.problem)
    (method,) = _methods(args.method, problem)
    budget = _budget(args)
    out = _out_dir(args.out, f"runs/{problem.name}")
    device = _device(args.device)
    evaluator = _evaluator(args, problem, device)
    progress = _Progress(budget.max_trials, f"{method}")
    t0 = time.perf_counter()
    try:
        res = search(problem, method, budget, args.seed, _storage(args, out), evaluator=evaluator,
                     on_trial=lambda rec: progress(method, args.seed, rec))
    finally:
        progress.close()
    base_cfg = problem.baseline_config()
    base = evaluator.evaluate(base_cfg)
    payload = {"result": res.to_dict(), "baseline": {"config": base_cfg, "values": base.values},
               "device": device, "seconds": time.perf_counter() - t0}
    lines = [f"{method} on {problem.name}, seed {args.seed}, budget {budget}: "
             f"{len(res.trials)} trials, {res.nominal_epochs} fine-tuning epochs "
             f"({res.actual_epochs} trained here{_saving(res.nominal_epochs, res.actual_epochs)}), "
             f"{res.wall_seconds:.1f} s on {device}"]
    states = {s: sum(t.state == s for t in res.trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    lines.append(f"  complete {states['COMPLETE']}, pruned {states['PRUNED']}, failed {states['FAIL']}")
    obj = problem.objectives
    if problem.multi_objective:
        front = sorted(res.pareto(), key=lambda t: t.values)  # type: ignore[arg-type, return-value]
        lines.append(f"\nPareto front ({len(front)} of {len(res.complete())} complete trials):")
        lines.append(table(["trial", *obj, "config"], [[t.number, *t.values, _config(t.params)] for t in front]))  # type: ignore[misc]
    best = res.best()
    if best is not None:
        lines.append(f"\nbest {obj[0]}: {_fmt(best.values[0])} (trial {best.number})")  # type: ignore[index]
        lines.append(f"  config: {_config(problem.config(best.params))}")
    else:
        lines.append("\nno trial completed")
    lines.append(f"untuned default: {obj[0]} {_fmt(base.values[obj[0]])}  ({_config(base_cfg)})")
    _emit(args, payload, "\n".join(lines), out, "run.json")


def cmd_compare(args: argparse.Namespace) -> None:
    from .harness.compare import compare

    problem = _problem(args.problem)
    methods = _methods(args.methods, problem)
    budget = _budget(args)
    seeds = _seeds(args.seeds)
    out = _out_dir(args.out, f"runs/{problem.name}")
    device = _device(args.device)
    progress = _Progress(len(methods) * len(seeds) * budget.max_trials, "compare")
    t0 = time.perf_counter()
    try:
        res = compare(problem, methods, budget, seeds, _storage(args, out), out=out, device=device,
                      evaluator=_evaluator(args, problem, device), on_trial=progress)
    finally:
        progress.close()
    obj, direction = problem.objectives[0], problem.directions[0]
    rows = [[s.method, s.median, s.q25, s.q75, s.mean, s.trials, s.nominal_epochs, s.pruned, s.failed, s.seconds]
            for s in res.summary()]
    lines = [f"{problem.name}: {', '.join(methods)} at {budget} x {len(seeds)} seeds on {device} "
             f"({time.perf_counter() - t0:.0f} s)",
             f"best {obj} found per seed ({direction}), over seeds:", "",
             table(["method", "median", "q25", "q75", "mean", "trials", "epochs", "pruned", "failed", "s/seed"], rows)]
    if res.baseline:
        lines.append(f"\nuntuned default: {obj} {_fmt(res.baseline['values'][obj])}  ({_config(res.baseline['config'])})")
    best = max(res.runs, key=lambda r: ((b.values[0] if direction == "maximize" else -b.values[0]) if (b := r.best()) else float("-inf")))  # type: ignore[index]
    if (b := best.best()) is not None:
        lines.append(f"best found: {obj} {_fmt(b.values[0])} by {best.method} seed {best.seed}  ({_config(problem.config(b.params))})")  # type: ignore[index]
    from .harness.report import pairwise_table, write_report
    from .harness.suite import timing_line, timing_of

    summary = write_report(out, res)
    timing = timing_of(res, time.perf_counter() - t0)
    lines += ["", "paired over seeds:", pairwise_table(summary), "",
              timing_line(timing),
              f"report: {out / 'report.md'}"]
    payload = res.to_dict() | {"device": device, "timing": timing}
    _emit(args, payload, "\n".join(lines), out, "compare.json")


def cmd_report(args: argparse.Namespace) -> None:
    from .harness.report import describe, headline, write_report

    out = Path(args.dir)
    if not out.is_dir():
        raise UsageError(f"{args.dir!r} is not a directory")
    summary = write_report(out)
    text = f"{describe(summary)}\n\n{headline(summary)}\n\nreport: {out / 'report.md'}"
    _emit(args, summary, text, None, "summary.json")


def cmd_suite(args: argparse.Namespace) -> None:
    from .harness.report import describe, headline, pairwise_table
    from .harness.suite import load_suite, run_suite, timing_line

    suite = load_suite(args.file)
    out = _out_dir(args.out, f"runs/suite-{suite.name}")
    device = _device(args.device)
    total = sum(len(c.methods) * len(c.seeds) * c.budget.max_trials for c in suite.comparisons)
    progress = _Progress(total, f"suite {suite.name}")
    lines: list[str] = []

    def done(c: Any, r: dict[str, Any]) -> None:
        t = r["timing"]
        block = [f"{describe(r['summary'])} on {device} ({t['wall_s']:.0f} s)", "", headline(r["summary"]), "",
                 pairwise_table(r["summary"]), timing_line(t),
                 f"report: {out / c.name / 'report.md'}", ""]
        lines.extend(block)
        if not args.json:
            progress.bar.clear()
            print("\n".join(block), flush=True)

    try:
        payload = run_suite(suite, out, evaluator=lambda p: _evaluator(args, p, device), device=device,
                            on_trial=progress, on_comparison=done)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(payload, indent=1, default=str))
    else:
        print(f"suite report: {out / 'report.md'}")


def _saving(nominal: float, actual: float) -> str:
    return f", the cache saved {1 - actual / nominal:.0%}" if nominal and actual < nominal else ""


def cmd_cache(args: argparse.Namespace) -> None:
    store = _store(args)
    if args.action == "stats":
        payload = store.stats()
        text = "\n".join(f"{k}: {v}" for k, v in payload.items())
    elif args.action == "verify":
        payload = store.verify()
        text = (f"{payload['checked']} checkpoints checked, {payload['dropped']} corrupt dropped, "
                f"{payload['orphans_removed']} unindexed files removed")
    else:
        store.clear()
        payload = {"cleared": str(store.root)}
        text = f"cleared {store.root}"
    _emit(args, payload, text, None, "cache.json")


def cmd_profile_kernels(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .profile import format_table, plot, profile_kernels

    device = _device(args.device)
    out = _out_dir(args.out, "runs/profile-kernels")
    bar = tqdm(desc="profile-kernels", unit="point", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())
    try:
        result = profile_kernels(device, quick=args.quick, on_point=lambda p: bar.update(1))
    finally:
        bar.close()
    result["plot"] = str(plot(result, out / "profile.png"))
    _emit(args, result, f"{format_table(result)}\n\nplot: {result['plot']}", out, "profile.json")


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hpo-bench", description="Find the best way to prune a neural network with the fewest fine-tuning runs, "
                                "and prove which search method gets there first.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", help="directory for JSON results (and the study database)")
        sp.add_argument("--json", action="store_true", help="print the results as JSON")

    def cache_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cache", help="checkpoint cache directory (default $HPO_BENCH_CACHE, else ~/.cache/hpo-bench)")
        sp.add_argument("--no-cache", action="store_true", help="evaluate everything afresh, store nothing")
        sp.add_argument("--cache-max-gb", type=float, default=None, help="evict least recently used checkpoints beyond this")

    def search_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--problem", required=True, help="a registered problem (see `hpo-bench problems`)")
        sp.add_argument("--budget", type=int, default=None, help="trials per method and seed")
        sp.add_argument("--budget-epochs", type=int, default=None, help="nominal fine-tuning epochs per method and seed")
        sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where evaluation runs")
        sp.add_argument("--storage", help="Optuna storage: a journal file (*.log), a SQLite path or a database URL "
                        "(default OUT/studies.log)")
        sp.add_argument("--eval-seed", type=int, default=0, help="seed of fine-tuning (data order)")
        cache_opts(sp)

    sp = sub.add_parser("problems", help="list the problems")
    common(sp)
    sp.set_defaults(func=cmd_problems)
    sp = sub.add_parser("methods", help="list the search methods")
    common(sp)
    sp.set_defaults(func=cmd_methods)
    sp = sub.add_parser("run", help="one search: best config within the budget")
    common(sp)
    search_opts(sp)
    sp.add_argument("--method", default="tpe")
    sp.add_argument("--seed", type=int, default=0, help="the search method's seed")
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("compare", help="methods x seeds at an equal budget")
    common(sp)
    search_opts(sp)
    sp.add_argument("--methods", default="grid,random,gp,tpe", help="comma-separated method names")
    sp.add_argument("--seeds", default="5", help="a count (5), a list (0,3,7) or a range (0-4)")
    sp.set_defaults(func=cmd_compare)
    sp = sub.add_parser("profile-kernels", help="time sparse inference against dense and torch.sparse")
    common(sp)
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where the kernels run")
    sp.add_argument("--quick", action="store_true", help="a small grid (seconds), e.g. to check the setup")
    sp.set_defaults(func=cmd_profile_kernels)
    sp = sub.add_parser("report", help="report.md, plots and summary.json of a compare's --out DIR")
    sp.add_argument("dir", help="a directory holding compare.json")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_report, out=None)
    sp = sub.add_parser("suite", help="run the comparisons a suite file (TOML) names")
    common(sp)
    sp.add_argument("file", help="a suite file, e.g. benchmarks/suites/default.toml")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where evaluation runs")
    sp.add_argument("--eval-seed", type=int, default=0, help="seed of fine-tuning (data order)")
    cache_opts(sp)
    sp.set_defaults(func=cmd_suite)
    sp = sub.add_parser("cache", help="inspect or clean the checkpoint cache")
    sp.add_argument("action", choices=["stats", "verify", "clear"])
    sp.add_argument("--cache", help="cache directory (default $HPO_BENCH_CACHE, else ~/.cache/hpo-bench)")
    sp.add_argument("--json", action="store_true", help="print the results as JSON")
    sp.set_defaults(func=cmd_cache, out=None)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "budget", None) is None and getattr(args, "budget_epochs", None) is None and args.command in ("run", "compare"):
        args.budget = 16
    try:
        args.func(args)
    except (UsageError, ValueError) as e:
        print(f"hpo-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hpo-bench: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
