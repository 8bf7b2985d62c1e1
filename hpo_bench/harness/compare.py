"""Method x seed at an equal budget: the question users bring ("grid or random or GP or TPE?").

Every (method, seed) run is one study in one shared storage, so a comparison interrupted half-way
continues where it stopped when the same call is made again. One evaluator (one problem, device and
evaluation seed) serves every run, so the same config gets the same result whatever method asked.

Scale-out (worker.py, queue.py): with ``workers=N`` the runs are queued beside their studies and N
local worker processes run them; ``submit=True`` only queues them, for workers on other machines,
and ``collect`` reads the finished comparison back from the storage. Either way each run is one
study run by one process at a time, so the result is the one a single process gets.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._io import write_json_atomic
from ..evaluate import EvaluatorLike, load_problem, make_evaluator
from ..methods import check_method
from ..problems import Problem
from .budget import Budget
from .provenance import provenance
from .report.summary import summarize
from .results import CompareResult, RunResult, TrialRecord
from .queue import RunQueue, is_database
from .runner import check_workers, load_run, search
from .storage import default_storage, open_ledger, study_name

__all__ = ["RunsPending", "collect", "compare", "compare_json", "submit"]


class RunsPending(RuntimeError):
    """A comparison read back from its storage before all its runs are done."""


def compare(
    problem: Problem | str,
    methods: Iterable[str] = ("grid", "random", "gp", "tpe"),
    budget: Budget | int | None = None,
    seeds: Iterable[int] = range(5),
    storage: str | Any | None = None,
    *,
    out: str | Path | None = None,
    device: str = "cpu",
    eval_seed: int = 0,
    evaluator: EvaluatorLike | None = None,
    memo: Any | None = None,
    with_baseline: bool = True,
    on_trial: Callable[[str, int, TrialRecord], None] | None = None,
    workers: int | None = None,
    name: str | None = None,
    problem_args: dict[str, Any] | None = None,
    study_workers: int = 1,
    threads: int | None = None,
    quiet_workers: bool = False,
) -> CompareResult:
    """Run every method with every seed at the same budget and collect the trajectories.

    ``budget``, ``evaluator``, ``memo``: as in ``search``. ``storage`` None -> ``out/studies.log``
    (``storage.default_storage``) when ``out`` is given, else in memory. With ``out``, the result is
    also written to ``out/compare.json`` (``compare_json``) after every run.

    ``workers``: run the runs in that many local worker processes (worker.py) instead of this one,
    then read them back; they rebuild the problem by name (``problem_args``: its factory's
    arguments) and open the cache ``memo`` describes. ``name``: the comparison's name in the run
    queue (default: the problem's). ``study_workers``: trials run at once inside each study
    (``search``'s ``n_workers``; 1 keeps every method as it is in one process). The workers print
    a line per run done to stderr unless ``quiet_workers``.
    """
    if isinstance(problem, str):
        problem_args = problem_args or {}
        problem = _problem(problem, problem_args)
    budget = Budget.of(budget)
    study_workers = check_workers(study_workers, "study_workers")
    methods, seeds = list(methods), [int(s) for s in seeds]
    if not methods:
        raise ValueError("compare needs at least one method")
    if not seeds:
        raise ValueError("compare needs at least one seed")
    for kind, items in (("method", methods), ("seed", seeds)):
        if twice := sorted({x for x in items if items.count(x) > 1}, key=str):
            raise ValueError(f"{kind} {twice[0]!r} is given twice; a comparison runs each {kind} once "
                             f"(a copy would enter the statistics as another sample)")
    for m in methods:  # fail before any trial is spent
        check_method(m, problem)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if not out_dir.parent.is_dir():
            raise ValueError(f"output directory's parent {str(out_dir.parent)!r} does not exist")
        out_dir.mkdir(exist_ok=True)
    if storage is None and out_dir is not None:
        storage = default_storage(out_dir)
    ledger = open_ledger(storage)
    evaluator = evaluator or make_evaluator(problem, device, eval_seed)
    if workers is not None:
        check_workers(workers, "workers")
        queue = submit(problem, methods, budget, seeds, storage, name=name, eval_seed=evaluator.seed,
                       problem_args=problem_args, study_workers=study_workers, threads=threads)
        from .worker import CacheSpec, start_workers, wait_workers

        before = {(m, s): _finished(ledger, problem, m, s, budget, evaluator.seed, study_workers)
                  for m in methods for s in seeds}
        procs = start_workers(queue, workers, groups=[name or problem.name], cache=CacheSpec.of(memo), device=device,
                              quiet=quiet_workers)
        wait_workers(procs)  # then the loop below reads every run (and runs any that no worker finished)

    result = CompareResult(
        problem=problem.name, objectives=list(problem.objectives), directions=problem.directions,
        budget={"trials": budget.trials, "epochs": budget.epochs}, seeds=seeds,
        device=str(getattr(evaluator, "device", device)),
    )
    t0 = time.perf_counter()
    if with_baseline:
        base_cfg = problem.baseline_config()
        base = evaluator.evaluate(base_cfg)
        result.baseline = {"config": base_cfg, "values": base.values}
        result.baseline_seconds = time.perf_counter() - t0
    # Several processes may run the same comparison into one ledger: each takes the runs no other
    # process holds, then waits for the rest (a run is one study, run by one process at a time), so
    # they share the work and every one of them ends with the whole, identical result.
    runs: dict[tuple[str, int], RunResult] = {}
    pending = [(m, s) for m in methods for s in seeds]
    for wait in (False, True):
        deferred = []
        for method, seed in pending:
            study = study_name(problem.name, method, seed, budget.tag, evaluator.seed, study_workers)
            with ledger.claim(study, wait=wait) as held:
                if not held:
                    deferred.append((method, seed))
                    continue
                cb = (lambda rec, m=method, s=seed: on_trial(m, s, rec)) if on_trial else None
                runs[method, seed] = search(problem, method, budget, seed, ledger, evaluator=evaluator, memo=memo,
                                            on_trial=cb, n_workers=study_workers)
            result.runs = [runs[k] for k in ((m, s) for m in methods for s in seeds) if k in runs]
            result.wall_seconds = time.perf_counter() - t0
            if out_dir is not None:  # keep what is done on disk as we go (the summary rows at the end)
                write_json_atomic(out_dir / "compare.json", result.to_dict())
        pending = deferred
    if workers is not None:  # the evaluation the workers did in this call, and how many there were
        result.workers = workers
        for r in result.runs:
            r.evaluated_seconds += sum(t.seconds for t in r.trials if t.number not in before[r.method, r.seed])
    if out_dir is not None:
        write_json_atomic(out_dir / "compare.json", compare_json(result))
    return result


def _finished(ledger: Any, problem: Problem, method: str, seed: int, budget: Budget, eval_seed: int,
              study_workers: int) -> set[int]:
    """Numbers of a study's trials that are already counted (none if the study is new)."""
    import optuna

    from ..methods.ledger import counted

    try:
        study = optuna.load_study(study_name=study_name(problem.name, method, seed, budget.tag, eval_seed,
                                                        study_workers), storage=ledger.storage)
    except KeyError:
        return set()
    return {t.number for t in study.get_trials(deepcopy=False) if counted(t) and t.state.is_finished()}


def _problem(name: str, args: dict[str, Any]) -> Problem:
    from ..problems import get_problem

    return get_problem(name, **args) if args else load_problem(name)


def submit(
    problem: Problem | str,
    methods: Iterable[str],
    budget: Budget | int | None,
    seeds: Iterable[int],
    storage: str,
    *,
    name: str | None = None,
    eval_seed: int = 0,
    problem_args: dict[str, Any] | None = None,
    study_workers: int = 1,
    threads: int | None = None,
    queue: RunQueue | None = None,
) -> RunQueue:
    """Queue a comparison's runs for workers (worker.py), beside its studies: in the database when
    ``storage`` is one, else in ``queue.sqlite3`` beside the ledger file. Returns the queue.
    Workers rebuild the problem from its registered name (and ``problem_args``), so a ``Problem``
    built in this process must be one they can build the same way. ``queue``: another queue to
    put them in (a suite's, which holds the runs of every comparison's ledger file)."""
    problem_args = dict(problem_args or {})
    if isinstance(problem, str):
        registered, problem = problem, _problem(problem, problem_args)
    else:
        registered = problem.name.partition("[")[0] if problem_args else problem.name
        try:
            rebuilt = _problem(registered, problem_args)
        except ValueError:
            rebuilt = None
        if rebuilt is None or rebuilt.fingerprint() != problem.fingerprint():
            raise ValueError(f"workers rebuild a comparison's problem by its registered name, and {problem.name!r} "
                             "is not one they can build (a Problem of your own runs in this process: no workers)")
    if storage is None or not isinstance(storage, str):
        raise ValueError("workers need a storage they can open: a ledger file or a database URL, not memory")
    budget = Budget.of(budget)
    methods, seeds = list(methods), [int(s) for s in seeds]
    for m in methods:
        check_method(m, problem)
    queue = queue or RunQueue(storage)
    spec = {"problem": registered, "problem_args": problem_args, "methods": methods, "seeds": seeds,
            "budget": {"trials": budget.trials, "epochs": budget.epochs}, "eval_seed": int(eval_seed),
            "storage": None if is_database(storage) else str(Path(storage).resolve()),
            "study_workers": int(study_workers), "threads": threads}
    runs = [(m, s, study_name(problem.name, m, s, budget.tag, eval_seed, study_workers)) for m in methods for s in seeds]
    queue.submit(name or problem.name, spec, runs)
    return queue


def collect(queue: RunQueue | str, name: str, *, evaluator: EvaluatorLike | None = None) -> CompareResult:
    """A submitted comparison read back from its storage: every run's study, and the baseline a
    worker evaluated (or ``evaluator`` evaluates it). Raises ``RunsPending`` naming what is not
    done, ValueError for a name the queue does not hold."""
    from .worker import group_budget, group_problem

    q = queue if isinstance(queue, RunQueue) else RunQueue(queue)
    group = q.group(name)
    if group is None:
        known = ", ".join(g.name for g in q.groups()) or "none"
        raise ValueError(f"no comparison {name!r} in the queue {q.url.split('@')[-1]}; known: {known}")
    spec = group.spec
    problem = group_problem(spec)
    budget = group_budget(spec)
    if (pending := q.not_done([name], f"comparison {name!r}")) is not None:
        raise RunsPending(pending)
    ledger = open_ledger(spec.get("storage") or q.url)
    result = CompareResult(problem=problem.name, objectives=list(problem.objectives), directions=problem.directions,
                           budget={"trials": budget.trials, "epochs": budget.epochs}, seeds=list(spec["seeds"]))
    for m in spec["methods"]:
        for s in spec["seeds"]:
            run = load_run(problem, m, budget, s, ledger, eval_seed=int(spec.get("eval_seed", 0)),
                           n_workers=int(spec.get("study_workers", 1)))
            if run is None:
                raise RunsPending(f"comparison {name!r}: run {m} seed {s} is marked done but its study has not "
                                  "spent its budget (was the ledger replaced?)")
            result.runs.append(run)
    baseline = group.baseline
    if baseline is None:
        evaluator = evaluator or make_evaluator(problem, "cpu", int(spec.get("eval_seed", 0)))
        cfg = problem.baseline_config()
        baseline = {"config": cfg, "values": evaluator.evaluate(cfg).values}
    result.baseline = baseline
    return result


def compare_json(result: CompareResult, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``compare.json``: every run and trial, and per method the summary's row (report/summary.py;
    ``summary`` if the caller already has it) with the mean wall and suggestion seconds per seed
    (kept apart: they are not results), and ``provenance`` (provenance.py: the source's git commit,
    the versions, the device, the workers)."""
    rows = (summary or summarize(result))["summary"]
    by_method = result.by_method()
    summary = [{"method": m, **row,
                "seconds": statistics.fmean(r.wall_seconds for r in by_method[m]),
                "suggest_seconds": statistics.fmean(r.suggest_seconds for r in by_method[m])}
               for m, row in rows.items()]
    d = result.to_dict()
    return {**{k: v for k, v in d.items() if k != "runs"}, "summary": summary, "provenance": provenance(result),
            "runs": d["runs"]}
