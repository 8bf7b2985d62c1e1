"""The commands of ``hpo-bench``: each takes the parsed arguments, calls the library, prints text
(or, with ``--json``, the JSON it writes under ``--out``)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .._text import config_text, fmt, table
from .args import (NotDone, UsageError, budget_of, check_database, device_of, evaluator_of, folder_name, is_database, memo_of, methods_of,
                   out_dir, problem_of, seeds_of, storage_of, store_of, workers_of)
from .progress import Progress

__all__ = ["cmd_cache", "cmd_compare", "cmd_methods", "cmd_problems", "cmd_profile_kernels", "cmd_report",
           "cmd_run", "cmd_suite", "cmd_worker"]


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str, out: Path | None, name: str) -> None:
    """Write ``payload`` to ``out/name`` (when ``out``), then print the JSON or the text."""
    from .._io import write_json_atomic

    if out is not None:
        write_json_atomic(out / name, payload)
    if args.json:
        print(json.dumps(payload, indent=1, default=str))
    else:
        print(text)
        if out is not None:
            print(f"\nresults: {out / name}")


def shown(config: dict[str, Any]) -> str:
    """A config as a person reads it: without the keys its pattern ignores (2:4 fixes sparsity)."""
    from ..compression import effective_config

    return config_text(effective_config(config))


def comparison_text(summary: dict[str, Any], timing: dict[str, float], device: str, report: Path,
                    notes: list[str] | None = None) -> list[str]:
    """The lines that show one comparison, the same for ``compare`` and ``suite``: what was
    compared, the headline table (then ``notes``), the pairwise table, where the time went, where
    the report is."""
    from ..harness.report import describe, headline, pairwise_table
    from ..harness.timing import timing_line

    return [f"{describe(summary)} on {device} ({timing['wall_s']:.0f} s)", "", headline(summary), *(notes or []), "",
            pairwise_table(summary), timing_line(timing), f"report: {report}"]


def cmd_problems(args: argparse.Namespace) -> None:
    from ..problems import PROBLEMS

    rows, payload = [], []
    for name, factory in PROBLEMS.items():
        try:
            p = factory()
        except ValueError as e:  # a problem whose data is not on this machine (cifar10-resnet20): say so, go on
            rows.append([name, "", "", f"unavailable: {str(e).split('. ')[0]}"])
            payload.append({"name": name, "unavailable": str(e)})
            continue
        rows.append([name, ",".join(p.objectives), len(p.space), p.description])
        payload.append({"name": name, "objectives": list(p.objectives), "space": p.space.describe(),
                        "fixed": dict(p.fixed), "description": p.description})
    out = out_dir(args.out) if args.out else None
    emit(args, {"problems": payload}, table(["problem", "objectives", "params", "description"], rows), out, "problems.json")


def cmd_methods(args: argparse.Namespace) -> None:
    from ..methods import METHODS

    rows = [[m.name, m.objectives, m.description] for m in METHODS.values()]
    payload = {"methods": [{"name": m.name, "objectives": m.objectives, "description": m.description} for m in METHODS.values()]}
    out = out_dir(args.out) if args.out else None
    emit(args, payload, table(["method", "objectives", "description"], rows), out, "methods.json")


def cmd_run(args: argparse.Namespace) -> None:
    from ..harness.runner import search

    problem = problem_of(args.problem)
    (method,) = methods_of(args.method, problem)
    budget = budget_of(args)
    n_workers = workers_of(args.workers)
    out = out_dir(args.out, f"runs/{folder_name(problem.name)}/run")
    device = device_of(args.device)
    memo = memo_of(args)
    evaluator = evaluator_of(args, problem, device, memo)
    progress = Progress(budget.max_trials, f"{method}")
    t0 = time.perf_counter()
    try:
        res = search(problem, method, budget, args.seed, storage_of(args, out), evaluator=evaluator, memo=memo,
                     n_workers=n_workers, on_trial=lambda rec: progress(method, args.seed, rec))
    finally:
        progress.close()
    base_cfg = problem.baseline_config()
    base = evaluator.evaluate(base_cfg)
    payload = {"result": res.to_dict(), "baseline": {"config": base_cfg, "values": base.values},
               "device": device, "seconds": time.perf_counter() - t0}
    lines = [f"{method} on {problem.name}, seed {args.seed}, budget {budget}: "
             f"{len(res.trials)} trials, {res.nominal_epochs} fine-tuning epochs "
             f"({res.actual_epochs} trained here{_saving(res.nominal_epochs, res.actual_epochs)}), "
             f"{res.wall_seconds:.1f} s on {device}" + (f", {n_workers} trials at once" if n_workers > 1 else "")]
    states = {s: sum(t.state == s for t in res.trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    lines.append(f"  complete {states['COMPLETE']}, pruned {states['PRUNED']}, failed {states['FAIL']}")
    obj = problem.objectives
    if problem.multi_objective:
        front = sorted(res.pareto(), key=lambda t: t.values)  # type: ignore[arg-type, return-value]
        lines.append(f"\nPareto front ({len(front)} of {len(res.complete())} complete trials):")
        lines.append(table(["trial", *obj, "config"], [[t.number, *t.values, shown(t.params)] for t in front]))  # type: ignore[misc]
    best = res.best()
    if best is not None:
        lines.append(f"\nbest {obj[0]}: {fmt(best.values[0])} (trial {best.number})")  # type: ignore[index]
        lines.append(f"  config: {shown(problem.config(best.params))}")
    else:
        lines.append("\nno trial completed")
    lines.append(f"untuned default: {obj[0]} {fmt(base.values[obj[0]])}  ({shown(base_cfg)})")
    emit(args, payload, "\n".join(lines), out, "run.json")


def cmd_compare(args: argparse.Namespace) -> None:
    from ..harness.compare import compare, compare_json
    from ..harness.report import write_report
    from ..harness.timing import timing_of

    problem = problem_of(args.problem)
    methods = methods_of(args.methods, problem)
    budget = budget_of(args)
    seeds = seeds_of(args.seeds)
    workers = workers_of(args.workers)
    out = out_dir(args.out, f"runs/{folder_name(problem.name)}")
    name = args.name or out.resolve().name
    storage = storage_of(args, out)
    if args.submit:
        from ..harness.compare import submit

        queue = submit(args.problem, methods, budget, seeds, storage, name=name, eval_seed=args.eval_seed)
        _submitted(args, queue, [name], storage)
        return
    device = device_of(args.device)
    memo = memo_of(args)
    progress = Progress(len(methods) * len(seeds) * budget.max_trials, "compare")
    t0 = time.perf_counter()
    try:
        res = compare(args.problem, methods, budget, seeds, storage, out=out, device=device,
                      evaluator=evaluator_of(args, problem, device, memo), memo=memo, on_trial=progress,
                      workers=workers, name=name)
    finally:
        progress.close()
    summary = write_report(out, res)
    timing = timing_of(res, time.perf_counter() - t0)
    obj, direction = problem.objectives[0], problem.directions[0]
    notes = [""]
    if res.baseline:
        notes.append(f"untuned default: {obj} {fmt(res.baseline['values'][obj])}  ({shown(res.baseline['config'])})")
    best = max(res.runs, key=lambda r: ((b.values[0] if direction == "maximize" else -b.values[0]) if (b := r.best()) else float("-inf")))  # type: ignore[index]
    if (b := best.best()) is not None:
        notes.append(f"best found: {obj} {fmt(b.values[0])} by {best.method} seed {best.seed}  ({shown(problem.config(b.params))})")  # type: ignore[index]
    lines = comparison_text(summary, timing, device, out / "report.md", notes)
    payload = compare_json(res, summary) | {"device": device, "timing": timing}
    emit(args, payload, "\n".join(lines), out, "compare.json")


def _submitted(args: argparse.Namespace, queue: Any, names: list[str], storage: str) -> None:
    """What ``--submit`` prints: what is queued, and the two commands that finish the job."""
    from .._text import redacted

    counts = queue.counts(names)
    db = is_database(storage)
    where = redacted(storage) if db else str(Path(queue.url.removeprefix("sqlite:///")).parent)
    shown_where = where.split("@")[-1] if db else where
    done = f" ({counts['done']} done before)" if counts["done"] else ""
    lines = [f"queued {sum(counts.values())} runs of {', '.join(names)} in {shown_where}{done}",
             f"run them: hpo-bench worker --storage {where}   "
             + ("(on every machine, with the same --cache; each takes runs until none is left)" if db else
                "(on this machine; start several to share the runs)"),
             f"then:     hpo-bench report --storage {where} {names[0].partition('/')[0] if '/' in names[0] else names[0]}"]
    payload = {"queue": shown_where, "submitted": names, "runs": counts}
    print(json.dumps(payload, indent=1) if args.json else "\n".join(lines))


def _across(payload: dict[str, Any]) -> list[str]:
    """The suite's ranking across problems, for the console (empty when there is none)."""
    from ..harness.report.text import aggregate_text

    text = aggregate_text(payload.get("aggregate"))
    return [text] if text else []


def cmd_worker(args: argparse.Namespace) -> None:
    from ..harness.queue import RunQueue
    from ..harness.worker import CacheSpec, work

    if is_database(args.storage):
        check_database(args.storage)
    queue = RunQueue(args.storage, create=False)
    names = queue.members(args.name) if args.name else None
    device = device_of(args.device)
    memo = memo_of(args)
    if args.poll <= 0:
        raise UsageError(f"--poll must be > 0 seconds, got {args.poll}")
    t0 = time.perf_counter()
    log = (lambda line: print(line, file=sys.stderr, flush=True))
    done = work(queue, groups=names, cache=CacheSpec.of(memo), device=device, forever=args.forever,
                poll=args.poll, log=log)
    counts = queue.counts(names)
    payload = {"runs_done": done, "seconds": time.perf_counter() - t0, "queue": counts}
    text = (f"worker: {done} runs done here in {payload['seconds']:.0f} s; queue: {counts['done']} done, "
            f"{counts['failed']} failed, {counts['queued'] + counts['running']} open")
    print(json.dumps(payload, indent=1) if args.json else text)


def _report_from_storage(args: argparse.Namespace) -> None:
    """``report --storage``: read submitted comparisons back from the storage, write their reports
    (and a suite's) under --out, as `compare` and `suite` would have."""
    from ..harness.compare import RunsPending, collect, compare_json
    from ..harness.queue import RunQueue
    from ..harness.report import describe, headline, write_report
    from ..harness.suite import write_suite_report
    from ..harness.timing import timing_of
    from .._io import write_json_atomic

    if is_database(args.storage):
        check_database(args.storage)
    queue = RunQueue(args.storage, create=False)
    groups = [g.name for g in queue.groups()]
    suites = sorted({g.partition("/")[0] for g in groups if "/" in g})
    singles = [g for g in groups if "/" not in g]
    name = args.dir
    if name is None:
        if not groups:
            raise UsageError(f"--storage {args.storage} holds no submitted comparison")
        if len(suites) + len(singles) != 1:
            raise UsageError(f"--storage holds {', '.join(suites + singles)}: name the one to report")
        name = (suites + singles)[0]
    members = queue.members([name])  # a comparison, or every comparison of a suite
    if (pending := queue.not_done(members, f"{'suite' if name in suites else 'comparison'} {name!r}")) is not None:
        raise NotDone(pending)
    out = out_dir(args.out, f"runs/{folder_name(name)}")
    comparisons, blocks, results = [], [], {}
    for g in members:
        try:
            res = collect(queue, g)
        except RunsPending as e:
            raise NotDone(str(e)) from None
        d = out / g.partition("/")[2] if name in suites else out
        d.mkdir(exist_ok=True)
        summary = write_report(d, res)
        write_json_atomic(d / "compare.json", compare_json(res, summary))
        results[g.partition("/")[2] or g] = res
        comparisons.append({"name": g.partition("/")[2] or g, "problem": res.problem, "dir": str(d), "summary": summary,
                            "timing": timing_of(res, sum(r.evaluated_seconds for r in res.runs) + res.baseline_seconds)})
        blocks.append(f"{describe(summary)}\n\n{headline(summary)}\n\nreport: {d / 'report.md'}")
    if name in suites:
        payload = {"suite": name, "description": "", "file": "", "comparisons": comparisons}
        write_suite_report(out, payload, results)
        emit(args, payload, "\n\n".join([*blocks, *_across(payload), f"suite report: {out / 'report.md'}"]), None, "suite.json")
    else:
        emit(args, comparisons[0]["summary"], blocks[0], None, "summary.json")


def cmd_report(args: argparse.Namespace) -> None:
    from ..harness.report import describe, headline, write_report
    from ..harness.suite import report_suite

    if args.storage:
        _report_from_storage(args)
        return
    if args.dir is None:
        raise UsageError("report needs a directory (or --storage URL)")
    out = Path(args.dir)
    if not out.is_dir():
        raise UsageError(f"{args.dir!r} is not a directory")
    if not (out / "compare.json").is_file() and (out / "suite.json").is_file():  # a suite's folder
        payload = report_suite(out)
        blocks = [f"{describe(c['summary'])}\n\n{headline(c['summary'])}" for c in payload["comparisons"]]
        emit(args, payload, "\n\n".join([*blocks, *_across(payload), f"suite report: {out / 'report.md'}"]), None, "suite.json")
        return
    summary = write_report(out)
    text = f"{describe(summary)}\n\n{headline(summary)}\n\nreport: {out / 'report.md'}"
    emit(args, summary, text, None, "summary.json")


def cmd_suite(args: argparse.Namespace) -> None:
    from ..harness.suite import load_suite, run_suite

    suite = load_suite(args.file)
    workers = workers_of(args.workers)
    out = out_dir(args.out, f"runs/suite-{suite.name}")
    if args.storage and not is_database(args.storage):
        raise UsageError(f"--storage {args.storage!r}: a suite takes a database URL (postgresql://...); its "
                         "comparisons' ledger files are OUT/NAME/studies.log")
    if args.submit:
        from ..harness.suite import run_suite

        sub = run_suite(suite, out, storage=args.storage, submit=True, eval_seed=args.eval_seed)
        from ..harness.queue import RunQueue

        _submitted(args, RunQueue(sub["queue"]), sub["submitted"], args.storage or str(out))
        return
    device = device_of(args.device)
    memo = memo_of(args)
    total = sum(len(c.methods) * len(c.seeds) * c.budget.max_trials for c in suite.comparisons)
    progress = Progress(total, f"suite {suite.name}")

    def done(c: Any, r: dict[str, Any]) -> None:
        if not args.json:
            progress.bar.clear()
            print("\n".join([*comparison_text(r["summary"], r["timing"], device, out / c.name / "report.md"), ""]),
                  flush=True)

    try:
        payload = run_suite(suite, out, evaluator=lambda p: evaluator_of(args, p, device, memo), device=device,
                            memo=memo, on_trial=progress, on_comparison=done, storage=args.storage, workers=workers,
                            eval_seed=args.eval_seed)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(payload, indent=1, default=str))
    else:
        for text in _across(payload):
            print(text + "\n")
        print(f"suite report: {out / 'report.md'}")


def _size(n: float) -> str:
    """Bytes as a person reads them: 512 B, 3.4 MiB, 1.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _saving(nominal: float, actual: float) -> str:
    return f", the cache saved {1 - actual / nominal:.0%}" if nominal and actual < nominal else ""


def cmd_cache(args: argparse.Namespace) -> None:
    store = store_of(args)
    if args.action == "stats":
        payload = store.stats()
        cap = "no cap" if payload["max_bytes"] is None else f"cap {_size(payload['max_bytes'])}"
        text = "\n".join([
            f"cache {payload['path']}" + (f", index {payload['index']}" if payload.get("index") and
                                          "://" in str(payload["index"]) else ""),
            f"  {payload['configs']} configs, {payload['epoch_results']} per-epoch results, "
            f"{payload['checkpoints']} checkpoints: {_size(payload['bytes'])} ({cap})", "",
            table(["problem", "configs"], [[p, n] for p, n in sorted(payload["problems"].items())])])
    elif args.action == "verify":
        payload = store.verify()
        text = (f"{payload['rows_checked']} result rows checked, {payload['rows_dropped']} corrupt dropped; "
                f"{payload['checked']} checkpoints checked, {payload['dropped']} corrupt dropped, "
                f"{payload['orphans_removed']} unindexed files removed")
    else:
        store.clear()
        payload = {"cleared": str(store.root)}
        text = f"cleared {store.root}"
    emit(args, payload, text, None, "cache.json")


def cmd_profile_kernels(args: argparse.Namespace) -> None:
    """One progress line per point on stderr (stdout stays the table, or pure JSON with --json);
    OUT/profile.json is saved after every point, so rerunning the same command continues."""
    from ..profile import format_table, plot, profile_kernels

    device = device_of(args.device)
    out = out_dir(args.out, "runs/profile-kernels")
    grid = "quick" if args.quick else "full" if args.full else "default"
    result = profile_kernels(device, grid, out=out / "profile.json", fresh=args.fresh,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
    result["plot"] = str(plot(result, out / "profile.png"))
    emit(args, result, f"{format_table(result)}\n\nplot: {result['plot']}", out, "profile.json")
