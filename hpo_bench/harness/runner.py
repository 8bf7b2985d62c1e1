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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..evaluate.evaluator import EvaluationFailed, Evaluator
from ..problems import Problem, get_problem
from ..methods.registry import MethodContext, get_method
from ..methods.timing import TimedSampler
from ..methods.reseeding import ReseedingSampler
from ..space import Categorical, Float, Int, SearchSpace
from .budget import Budget

__all__ = ["RunResult", "TrialRecord", "default_storage", "open_storage", "search", "study_name"]

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class TrialRecord:
    number: int
    state: str                          # COMPLETE | PRUNED | FAIL
    params: dict[str, Any]
    values: list[float] | None          # objective values in the problem's order (COMPLETE only)
    curve: list[float]
    nominal_epochs: int
    actual_epochs: int
    seconds: float
    fail_reason: str | None = None


@dataclass
class RunResult:
    problem: str
    method: str
    seed: int
    budget: dict[str, int | None]
    objectives: list[str]
    directions: list[str]
    study_name: str
    trials: list[TrialRecord] = field(default_factory=list)
    wall_seconds: float = 0.0
    suggest_seconds: float = 0.0  # of the wall time, the method choosing trials (methods/timing.py)

    # ------------------------------------------------------------------ views
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE" and t.values is not None]

    def _key(self, t: TrialRecord) -> float:
        v = t.values[0]  # type: ignore[index]
        return v if self.directions[0] == "maximize" else -v

    def best(self) -> TrialRecord | None:
        """The best complete trial by the primary objective (earliest on ties)."""
        done = self.complete()
        return max(done, key=lambda t: (self._key(t), -t.number)) if done else None

    def best_so_far(self) -> list[float | None]:
        """Best primary objective after each spent trial (None before the first complete one)."""
        out: list[float | None] = []
        best: TrialRecord | None = None
        for t in self.trials:
            if t.state == "COMPLETE" and t.values is not None and (best is None or self._key(t) > self._key(best)):
                best = t
            out.append(None if best is None else best.values[0])  # type: ignore[index]
        return out

    def pareto(self) -> list[TrialRecord]:
        """Complete trials no other complete trial dominates (all objectives, their directions)."""
        done = self.complete()
        signs = [1.0 if d == "maximize" else -1.0 for d in self.directions]

        def dominates(a: TrialRecord, b: TrialRecord) -> bool:
            av = [s * v for s, v in zip(signs, a.values)]  # type: ignore[arg-type]
            bv = [s * v for s, v in zip(signs, b.values)]  # type: ignore[arg-type]
            return all(x >= y for x, y in zip(av, bv)) and any(x > y for x, y in zip(av, bv))

        return [t for t in done if not any(dominates(o, t) for o in done if o is not t)]

    @property
    def nominal_epochs(self) -> int:
        return sum(t.nominal_epochs for t in self.trials)

    @property
    def actual_epochs(self) -> int:
        return sum(t.actual_epochs for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        best = self.best()
        d["best"] = asdict(best) if best else None
        d["best_so_far"] = self.best_so_far()
        if len(self.objectives) > 1:
            d["pareto"] = [asdict(t) for t in self.pareto()]
        return d


# ---------------------------------------------------------------------- storage
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def default_storage(out_dir: Path) -> str:
    """The trial ledger of an output directory: ``studies.log``, an Optuna journal file (an
    append-only log: ~6x less time per trial than SQLite through SQLAlchemy here, resumable and
    safe for several processes on one machine, as SQLite is). A directory written before the
    journal became the default keeps its ``studies.db``, so rerunning there still resumes."""
    legacy = out_dir / "studies.db"
    return str(legacy) if legacy.exists() else str(out_dir / "studies.log")


def open_storage(storage: str | None) -> Any:
    """An Optuna storage: None -> in memory; a path ending in .log/.jsonl/.journal -> an Optuna
    journal file; any other path or ``sqlite:///path`` -> that SQLite file (a path's directory must
    exist); any other URL (``postgresql://...``, for several machines) is handed to Optuna as is."""
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    url = storage if "://" in storage else f"sqlite:///{storage}"
    if url.startswith("sqlite:///"):  # a file here, journal or SQLite
        path = Path(url[len("sqlite:///"):])
        if not path.parent.is_dir():
            raise ValueError(f"storage directory {str(path.parent)!r} does not exist")
        if "://" not in storage and path.suffix in JOURNAL_SUFFIXES:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(storage))
    if not url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    """WAL journal + synchronous=NORMAL: one fsync per checkpoint instead of several per trial.
    A killed process loses nothing (the OS holds the written WAL); only a power cut can drop the
    last transactions, never corrupt the file."""
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it


def study_name(problem: str, method: str, seed: int) -> str:
    return f"{problem}/{method}/seed{seed}"


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
    )


def _fail_interrupted(study: Any) -> None:
    """Trials left RUNNING by a killed process hold no result: mark them failed, uncounted."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


def _counted(t: Any) -> bool:
    return t.state.name in FINISHED and not t.user_attrs.get("interrupted", False)


# ---------------------------------------------------------------------- search
def search(
    problem: Problem | str,
    method: str = "tpe",
    budget: Budget | int = 20,
    seed: int = 0,
    storage: str | Any | None = None,
    *,
    evaluator: Any | None = None,
    device: str = "cpu",
    eval_seed: int = 0,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> RunResult:
    """Run ``method`` on ``problem`` until ``budget`` is spent; returns every trial and the best.

    ``evaluator`` is anything with ``evaluate(config, reporter) -> EvalResult`` (default: an
    ``Evaluator`` on ``device`` with ``eval_seed``). ``storage``: None (in memory), a SQLite path or
    an Optuna storage URL / object; a study already there is continued.
    """
    import optuna

    if isinstance(problem, str):
        problem = get_problem(problem)
    if isinstance(budget, int):
        budget = Budget(trials=budget)
    m = get_method(method)
    if not m.supports(problem.multi_objective):
        kind = "multi" if problem.multi_objective else "single"
        raise ValueError(f"method {method!r} is {m.objectives}-objective; problem {problem.name!r} is {kind}-objective")
    evaluator = evaluator or default_evaluator(problem, device, eval_seed)
    grid = method == "grid"
    ctx = MethodContext(problem.space, int(seed), budget.trials_for(problem.space, problem.fixed, grid=grid),
                        max_epochs(problem), memo=getattr(evaluator, "store", None))
    # a grid stops when its points are done: a rerun must not start a duplicate point
    limit = len(problem.space.grid(ctx.budget_trials)) if grid else budget.max_trials
    sampler, pruner = m.build(ctx)
    if m.reseed_per_trial:
        sampler = ReseedingSampler(lambda s: m.build(replace(ctx, seed=s))[0], int(seed))
    sampler = TimedSampler(sampler)
    pruner = pruner or optuna.pruners.NopPruner()  # create_study's default would be MedianPruner
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = study_name(problem.name, method, seed)
    store = storage if storage is not None and not isinstance(storage, str) else open_storage(storage)
    study = optuna.create_study(
        storage=store, sampler=sampler, pruner=pruner, study_name=name,
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
        counted = [t for t in study.get_trials(deepcopy=False) if _counted(t)]
        return len(counted), sum(int(t.user_attrs.get("nominal_epochs", 0)) for t in counted)

    objective = _objective(problem, evaluator)

    def after(study: Any, trial: Any) -> None:
        if on_trial is not None and _counted(trial):
            on_trial(_record(trial))
        if budget.spent(*spent()):
            study.stop()

    start = time.perf_counter()
    trials_done, epochs_done = spent()
    if not budget.spent(trials_done, epochs_done) and trials_done < limit:
        study.optimize(
            objective, n_trials=limit - trials_done, catch=(EvaluationFailed,), callbacks=[after]
        )
    wall = time.perf_counter() - start
    records = [_record(t) for t in study.get_trials(deepcopy=False) if _counted(t)]
    return RunResult(
        problem=problem.name, method=method, seed=int(seed),
        budget={"trials": budget.trials, "epochs": budget.epochs},
        objectives=list(problem.objectives), directions=problem.directions,
        study_name=name, trials=records, wall_seconds=wall, suggest_seconds=sampler.seconds,
    )


def default_evaluator(problem: Problem, device: str = "cpu", seed: int = 0) -> Any:
    """The problem's own evaluator where it has one (a table), else a fresh ``Evaluator``."""
    factory = getattr(problem, "make_evaluator", None)
    return factory(device, seed) if factory is not None else Evaluator(problem, device=device, seed=seed)


def _objective(problem: Problem, evaluator: Any) -> Callable[[Any], Any]:
    import optuna

    space: SearchSpace = problem.space
    single = not problem.multi_objective

    def objective(trial: Any) -> Any:
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
            _set_cost(trial, e.curve, len(e.curve) + 1, len(e.curve) + 1, time.perf_counter() - t0)
            trial.set_user_attr("fail_reason", e.reason)
            raise
        actual = int(result.info.get("epochs_trained", result.nominal_epochs))
        _set_cost(trial, result.curve, result.nominal_epochs, actual, time.perf_counter() - t0)
        trial.set_user_attr("metrics", {k: v for k, v in result.values.items() if math.isfinite(v)})
        trial.set_user_attr("cache", result.info.get("cache", "off"))
        if result.pruned_at is not None:
            raise optuna.TrialPruned(f"stopped by the pruner after epoch {result.pruned_at}")
        vals = [float(result.values[o]) for o in problem.objectives]
        return vals[0] if single else vals

    return objective


def _set_cost(trial: Any, curve: list[float], nominal: int, actual: int, seconds: float) -> None:
    trial.set_user_attr("curve", list(curve))
    trial.set_user_attr("nominal_epochs", int(nominal))
    trial.set_user_attr("actual_epochs", int(actual))
    trial.set_user_attr("seconds", float(seconds))

