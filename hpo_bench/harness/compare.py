"""Method x seed at an equal budget: the question users bring ("grid or random or GP or TPE?").

Every (method, seed) run is one study in one shared storage, so a comparison interrupted half-way
continues where it stopped when the same call is made again. One evaluator (one problem, device and
evaluation seed) serves every run, so the same config gets the same result whatever method asked.
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
from .report.summary import summarize
from .results import CompareResult, RunResult, TrialRecord
from .runner import search
from .storage import default_storage, open_ledger, study_name

__all__ = ["compare", "compare_json"]


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
) -> CompareResult:
    """Run every method with every seed at the same budget and collect the trajectories.

    ``budget``, ``evaluator``, ``memo``: as in ``search``. ``storage`` None -> ``out/studies.log``
    (``storage.default_storage``) when ``out`` is given, else in memory. With ``out``, the result is
    also written to ``out/compare.json`` (``compare_json``) after every run.
    """
    if isinstance(problem, str):
        problem = load_problem(problem)
    budget = Budget.of(budget)
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

    result = CompareResult(
        problem=problem.name, objectives=list(problem.objectives), directions=problem.directions,
        budget={"trials": budget.trials, "epochs": budget.epochs}, seeds=seeds,
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
            name = study_name(problem.name, method, seed, budget.tag, evaluator.seed)
            with ledger.claim(name, wait=wait) as held:
                if not held:
                    deferred.append((method, seed))
                    continue
                cb = (lambda rec, m=method, s=seed: on_trial(m, s, rec)) if on_trial else None
                runs[method, seed] = search(problem, method, budget, seed, ledger, evaluator=evaluator, memo=memo,
                                            on_trial=cb)
            result.runs = [runs[k] for k in ((m, s) for m in methods for s in seeds) if k in runs]
            result.wall_seconds = time.perf_counter() - t0
            if out_dir is not None:  # keep what is done on disk as we go (the summary rows at the end)
                write_json_atomic(out_dir / "compare.json", result.to_dict())
        pending = deferred
    if out_dir is not None:
        write_json_atomic(out_dir / "compare.json", compare_json(result))
    return result


def compare_json(result: CompareResult, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``compare.json``: every run and trial, and per method the summary's row (report/summary.py;
    ``summary`` if the caller already has it) with the mean wall and suggestion seconds per seed
    (kept apart: they are not results)."""
    rows = (summary or summarize(result))["summary"]
    by_method = result.by_method()
    summary = [{"method": m, **row,
                "seconds": statistics.fmean(r.wall_seconds for r in by_method[m]),
                "suggest_seconds": statistics.fmean(r.suggest_seconds for r in by_method[m])}
               for m, row in rows.items()]
    d = result.to_dict()
    return {**{k: v for k, v in d.items() if k != "runs"}, "summary": summary, "runs": d["runs"]}
