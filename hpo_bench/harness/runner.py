"""One search: one method, one seed, one budget, as one Optuna study.

The study is the trial ledger. Each trial records, as user attributes, what it cost (nominal epochs:
what it would cost without any cache; actual epochs: what was really trained here; seconds), its
per-epoch validation curve and, for a failed trial, why. Re-running the same search with the same
storage continues the study: trials already finished count against the budget and are not redone.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..evaluate import EvaluationFailed, EvaluatorLike, load_problem, make_evaluator
from ..methods.ledger import INTERRUPTED, counted
from ..methods.registry import MethodContext, check_method
from ..methods.reseeding import ReseedingSampler
from ..methods.timing import TimedSampler
from ..problems import Problem
from ..space import Categorical, Float, Int, SearchSpace
from .budget import Budget
from .results import RunResult, TrialRecord
from .storage import open_ledger, study_name

__all__ = ["load_run", "max_epochs", "search"]


def _suggest(trial: Any, name: str, p: Any) -> Any:
    if isinstance(p, Float):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, Int):
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    assert isinstance(p, Categorical)
    return trial.suggest_categorical(name, p.choices)


def max_epochs(problem: Problem) -> int:
    p = problem.space.get("epochs")
    if isinstance(p, Int):
        return int(p.high)
    return int(problem.fixed.get("epochs", 1))


def _record(t: Any) -> TrialRecord:
    attrs = t.user_attrs
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        values=list(t.values) if t.state.name == "COMPLETE" and t.values is not None else None,
        curve=list(attrs.get("curve", [])),
        nominal_epochs=int(attrs.get("nominal_epochs", 0)),
        actual_epochs=int(attrs.get("actual_epochs", 0)),
        seconds=float(attrs.get("seconds", 0.0)),
        fail_reason=attrs.get("fail_reason"),
        credited=bool(attrs.get("credited", True)),
        metrics=dict(attrs.get("metrics", {})),
        train_path=attrs.get("train_path"),
    )


def _fail_interrupted(study: Any) -> None:
    """Trials left RUNNING by a killed process hold no result: mark them failed, uncounted."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


# ---------------------------------------------------------------------- search
def search(
    problem: Problem | str,
    method: str = "tpe",
    budget: Budget | int | None = None,
    seed: int = 0,
    storage: str | Any | None = None,
    *,
    evaluator: EvaluatorLike | None = None,
    memo: Any | None = None,
    device: str = "cpu",
    eval_seed: int = 0,
    n_workers: int = 1,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> RunResult:
    """Run ``method`` on ``problem`` until ``budget`` is spent; returns every trial and the best.

    ``budget``: a ``Budget``, a trial count, or None (``DEFAULT_TRIALS``). ``evaluator``: anything
    that keeps the evaluator protocol (``hpo_bench.evaluate.base``; default: ``make_evaluator`` on
    ``device`` with ``eval_seed``). ``memo``: where a method may keep pure, costly suggestions (a
    ``CheckpointStore``: the GP's suggestions), or None. ``storage``: None (in memory), a path or
    URL (``storage.open_ledger``), an open ``Ledger`` or an Optuna storage object; a study already
    there is continued. While it runs, the search holds the study's claim: another process asking
    for the same study waits for it.

    ``n_workers``: trials evaluated at once, each in its own thread (Optuna's ``n_jobs``), never
    more than the budget in all. It changes how a method behaves (TPE runs with a constant liar, the
    GP with pending points), so it is part of the study's name and recorded on the result; 1 is
    the single-process behaviour every comparison uses.
    """
    import optuna

    if isinstance(problem, str):
        problem = load_problem(problem)
    budget = Budget.of(budget)
    m = check_method(method, problem)
    n_workers = check_workers(n_workers)
    evaluator = evaluator or make_evaluator(problem, device, eval_seed)
    ctx = MethodContext(problem.space, int(seed),
                        budget.trials_for(problem.space, problem.fixed, budget_matched=m.budget_matched),
                        max_epochs(problem), memo=memo, n_workers=n_workers)
    limit = _limit(problem, m, budget)
    sampler, pruner = m.build(ctx)
    if m.reseed_per_trial:
        sampler = ReseedingSampler(lambda s: m.build(replace(ctx, seed=s))[0], int(seed))
    sampler = TimedSampler(sampler)
    pruner = pruner or optuna.pruners.NopPruner()  # create_study's default would be MedianPruner
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = study_name(problem.name, method, seed, budget.tag, evaluator.seed, n_workers)
    ledger = open_ledger(storage)
    with ledger.claim(name):  # one process at a time runs a study (locks.study_claim)
        study = optuna.create_study(
            storage=ledger.storage, sampler=sampler, pruner=pruner, study_name=name,
            directions=problem.directions, load_if_exists=True,
        )
        fp = study.user_attrs.get("problem_fingerprint")
        if fp is None:
            study.set_user_attr("problem_fingerprint", problem.fingerprint())
            study.set_user_attr("space", problem.space.describe())
        elif fp != problem.fingerprint():
            raise ValueError(f"study {name!r} in this storage belongs to a different version of problem {problem.name!r}")
        _fail_interrupted(study)

        def spent() -> tuple[int, int]:
            spent_trials = [t for t in study.get_trials(deepcopy=False) if counted(t)]
            return len(spent_trials), sum(int(t.user_attrs.get("nominal_epochs", 0)) for t in spent_trials)

        def credited(nominal_epochs: int) -> bool:
            """Whether a trial finishing now at this cost is credited (``Budget.credited``): recorded
            on the trial as user attribute ``credited``, so the study itself says which trials the
            comparison counts, and the best credited trial is what the report calls best."""
            return budget.credits(spent()[1], nominal_epochs)

        objective = _objective(problem, evaluator, credited)

        def after(study: Any, trial: Any) -> None:
            if on_trial is not None and counted(trial):
                on_trial(_record(trial))
            if budget.spent(*spent()):
                study.stop()

        start = time.perf_counter()
        earlier = {t.number for t in study.get_trials(deepcopy=False) if counted(t)}
        trials_done, epochs_done = spent()
        if not budget.spent(trials_done, epochs_done) and trials_done < limit:
            study.optimize(objective, n_trials=limit - trials_done, n_jobs=n_workers, catch=(EvaluationFailed,),
                           callbacks=[after])
        return _result(study, problem, method, seed, budget, n_workers, wall=time.perf_counter() - start,
                       suggest_seconds=sampler.seconds, earlier=earlier)


def check_workers(n_workers: Any, what: str = "n_workers") -> int:
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {n_workers!r}")
    return n_workers


def _limit(problem: Problem, m: Any, budget: Budget) -> int:
    """The most trials a search may run: a budget-matched method stops when its points are done
    (a rerun must not start a duplicate point); any other at the budget's trial cap."""
    if m.budget_matched:
        return len(problem.space.grid(budget.trials_for(problem.space, problem.fixed, budget_matched=True)))
    return budget.max_trials


def _result(study: Any, problem: Problem, method: str, seed: int, budget: Budget, n_workers: int, *,
            wall: float = 0.0, suggest_seconds: float = 0.0, earlier: set[int] | None = None) -> RunResult:
    records = [_record(t) for t in study.get_trials(deepcopy=False) if counted(t)]
    return RunResult(
        problem=problem.name, method=method, seed=int(seed),
        budget={"trials": budget.trials, "epochs": budget.epochs},
        objectives=list(problem.objectives), directions=problem.directions,
        study_name=study.study_name, trials=records, wall_seconds=wall, suggest_seconds=suggest_seconds,
        evaluated_seconds=sum(t.seconds for t in records if earlier is not None and t.number not in earlier),
        n_workers=n_workers,
    )


def load_run(problem: Problem, method: str, budget: Budget | int | None, seed: int, storage: Any, *,
             eval_seed: int = 0, n_workers: int = 1) -> RunResult | None:
    """The result of a finished search, read from the ledger without running anything (what a
    report of work done elsewhere reads); None when the study is absent or its budget not spent."""
    import optuna

    budget = Budget.of(budget)
    m = check_method(method, problem)
    ledger = open_ledger(storage)
    name = study_name(problem.name, method, seed, budget.tag, eval_seed, n_workers)
    try:
        study = optuna.load_study(study_name=name, storage=ledger.storage)
    except KeyError:
        return None
    fp = study.user_attrs.get("problem_fingerprint")
    if fp is not None and fp != problem.fingerprint():
        raise ValueError(f"study {name!r} in this storage belongs to a different version of problem {problem.name!r}")
    spent = [t for t in study.get_trials(deepcopy=False) if counted(t) and t.state.is_finished()]
    if not (budget.spent(len(spent), sum(int(t.user_attrs.get("nominal_epochs", 0)) for t in spent))
            or len(spent) >= _limit(problem, m, budget)):
        return None
    return _result(study, problem, method, seed, budget, n_workers, earlier=set())  # its evaluation: all trials


def _objective(problem: Problem, evaluator: EvaluatorLike, credited: Callable[[int], bool]) -> Callable[[Any], Any]:
    import optuna

    space: SearchSpace = problem.space
    single = not problem.multi_objective

    def objective(trial: Any) -> Any:
        try:
            return evaluate(trial)
        except (EvaluationFailed, optuna.TrialPruned):
            raise  # the configuration's own outcome: recorded and charged
        except BaseException:
            # Ctrl-C, a full disk, a lost machine, a bug: Optuna stores the trial as FAIL, but it
            # holds no result of the configuration and is not the method's fault. It is marked
            # interrupted (methods/ledger.py): not charged to the budget, run again on a rerun.
            trial.set_user_attr(INTERRUPTED, True)
            raise

    def evaluate(trial: Any) -> Any:
        params = {name: _suggest(trial, name, p) for name, p in space.items()}
        config = problem.config(params)

        def reporter(epoch: int, value: float) -> bool:
            if not single:
                return False  # Optuna's pruners are single-objective
            trial.report(value, epoch)
            return trial.should_prune()

        t0 = time.perf_counter()
        try:
            result = evaluator.evaluate(config, reporter)
        except EvaluationFailed as e:
            _set_cost(trial, e.curve, len(e.curve) + 1, len(e.curve) + 1, time.perf_counter() - t0, credited)
            trial.set_user_attr("fail_reason", e.reason)
            raise
        actual = int(result.info.get("epochs_trained", result.nominal_epochs))
        _set_cost(trial, result.curve, result.nominal_epochs, actual, time.perf_counter() - t0, credited)
        trial.set_user_attr("metrics", {k: v for k, v in result.values.items() if math.isfinite(v)})
        trial.set_user_attr("cache", result.info.get("cache", "off"))
        if result.info.get("train_path") is not None:
            trial.set_user_attr("train_path", result.info["train_path"])
        if result.pruned_at is not None:
            raise optuna.TrialPruned(f"stopped by the pruner after epoch {result.pruned_at}")
        vals = [float(result.values[o]) for o in problem.objectives]
        return vals[0] if single else vals

    return objective


def _set_cost(trial: Any, curve: list[float], nominal: int, actual: int, seconds: float,
              credited: Callable[[int], bool]) -> None:
    trial.set_user_attr("credited", credited(int(nominal)))
    trial.set_user_attr("curve", list(curve))
    trial.set_user_attr("nominal_epochs", int(nominal))
    trial.set_user_attr("actual_epochs", int(actual))
    trial.set_user_attr("seconds", float(seconds))

