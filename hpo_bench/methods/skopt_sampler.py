"""scikit-optimize's Gaussian-process Bayesian optimization, wrapped as an Optuna sampler.

Every method of hpo_bench runs as an Optuna study, so the GP gets the same ledger, storage, resume and
dashboard as TPE. The model is rebuilt from the study at every suggestion: a fresh ``skopt.Optimizer``
(the same GP, acquisition functions and acquisition search as ``skopt.gp_minimize``) is told the
completed trials (one GP fit) and asked for one point. What ``gp_minimize`` keeps in memory between
asks is kept in the study instead, so a study continued in another process goes on exactly as it
would have:

* **Hedge gains.** Under ``gp_hedge`` skopt picks EI, LCB or PI with probabilities
  ``softmax(gains)``, and after each fit lowers every function's gain by the model's prediction at
  the point that function proposed last time. Each suggestion records its gains and its three
  proposals on its trial (system attribute ``hpo_bench.gp:state``); the next suggestion takes them
  from the latest earlier trial that has them (interrupted trials excluded: methods/ledger.py) and
  updates them as ``gp_minimize`` would. So the gains are those of one uninterrupted
  ``gp_minimize``, and a resumed search equals an uninterrupted one.
* **Randomness.** The optimizer's random state is derived from (``seed``, the trial's index:
  methods/indexed.py), not from the number of finished trials, so trials that run at the same time
  draw different points; ``seed=None`` draws a fresh seed once, kept as ``sampler.seed`` and
  recorded in every trial's state, so an unseeded run can be replayed.
* **Trials running at the same time** (``n_jobs > 1``, or several processes on one study) are told
  to the GP at their proposed points with a constant lie, the worst value so far (skopt's
  ``cl_max``; Optuna's TPE with ``constant_liar=True`` does the same), and suggestions within a
  process are computed one at a time, so a trial does not get the point another is evaluating.
  (``cl_min``, the default of skopt's ``ask(n_points)``, does not keep them apart here: the GP's
  learned noise leaves EI and PI high at a point lied to be the best, and on Branin the second of
  two concurrent points fell within 0.1% of the range of the first in 4 of 8 cases.)

The search space is Optuna's usual relative one: the space given (every parameter of it until a
trial completes; afterwards the parameters every completed trial has) plus, for parameters outside
it, Optuna's intersection search space of the completed trials; ``sample_relative`` returns exactly
the parameters of the ``search_space`` it is given (``PartialFixedSampler`` and the like), and any
other parameter (conditional ones, dynamic ranges) is drawn at random by ``sample_independent``.
Trials are used the way Optuna's own samplers use them:

* pruned and failed trials carry no final value and are not told to the GP;
* a value out of a parameter's bounds (an ``enqueue_trial``, ``add_trial``, a range that changed) is
  **clipped** to the bounds, with a warning (skopt rejects any point out of its space);
* a categorical value that is not one of the choices, or a trial without one of the parameters, is
  **skipped**, with a warning (a parameter that some trials lack is not in the relative space in the
  first place, as with Optuna's GPSampler);
* an infinite value is **clipped** to the worst (or best) finite value observed, with a warning, as
  Optuna's GPSampler does.

The acquisition search: skopt samples ``acq_points`` random candidates and polishes the best
``acq_restarts`` of them with L-BFGS, for each of EI, LCB and PI. The defaults were chosen by
measurement against ``gp_minimize`` (benchmarks/gp_fidelity.py, benchmarks/RESULTS.md).

The suggestion is a pure function of (space, seed, trial index, told points and values, pending
points, Hedge state in, settings), and fitting the GP is the costliest step of a search that is
otherwise answered from the checkpoint cache; so when a ``memo`` (the cache's ``CheckpointStore``) is
given, suggestions (and the Hedge state they leave) are kept there under a key of all of these, and
a rerun with a warm cache does not refit the GP.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, GPSampler, RandomSampler
from optuna.search_space import intersection_search_space
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..space import SearchSpace
from .indexed import trial_index
from .ledger import is_interrupted

__all__ = ["ACQ_FUNCS", "DEFAULT_ACQ_POINTS", "DEFAULT_ACQ_RESTARTS", "STATE_KEY", "OptunaGPSampler", "SkoptGPSampler",
           "study_lock"]

#: The acquisition search per acquisition function: random candidates, then L-BFGS restarts from the
#: best of them (skopt's own defaults: 10,000 and 5). Chosen by benchmarks/gp_fidelity.py.
DEFAULT_ACQ_POINTS = 10_000
DEFAULT_ACQ_RESTARTS = 5
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")
#: The trial system attribute that holds a suggestion's state (point, Hedge gains and proposals).
STATE_KEY = "hpo_bench.gp:state"
_MEMO_VERSION = "skopt-gp/2"
_ATTR_CHUNK = 2045  # Optuna's own limit for one system attribute (RDB storages on MySQL)
_MAX_SEED = 2**31 - 1

_LIE = max  # the constant lie told for a point being evaluated: the worst value so far (module doc)
_locks_guard = threading.Lock()
_locks: dict[tuple[int, int], threading.Lock] = {}


def study_lock(study: Study) -> threading.Lock:
    """One lock per study in this process: its GP suggestions are computed one at a time, each
    seeing the points of those before it (see ``_pending``)."""
    key = (id(study._storage), study._study_id)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _mix(*parts: Any) -> int:
    """A seed from ``parts`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little") % _MAX_SEED


def _versions() -> list[str]:
    import sklearn
    import skopt

    return [skopt.__version__, sklearn.__version__]


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class _Dim:
    """One parameter: an Optuna distribution as a scikit-optimize dimension, both ways."""

    def __init__(self, name: str, dist: BaseDistribution) -> None:
        self.name, self.dist = name, dist

    def skopt(self) -> Any:
        from skopt.space import Categorical, Integer, Real

        d = self.dist
        if isinstance(d, FloatDistribution):
            return Real(d.low, d.high, prior="log-uniform" if d.log else "uniform", name=self.name)
        if isinstance(d, IntDistribution):
            if d.step != 1:  # the index of the step
                return Integer(0, (d.high - d.low) // d.step, name=self.name)
            return Integer(d.low, d.high, prior="log-uniform" if d.log else "uniform", name=self.name)
        assert isinstance(d, CategoricalDistribution)
        return Categorical(list(range(len(d.choices))), name=self.name)  # by index: skopt cannot hold None

    def encode(self, value: Any) -> tuple[Any, bool] | None:
        """(skopt value, whether it was clipped into the bounds), or None for a choice not offered."""
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            for same_type in (True, False):
                for i, c in enumerate(d.choices):
                    if c == value and (type(c) is type(value) or not same_type):
                        return i, False
            return None
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        clipped = min(max(v, d.low), d.high)
        if isinstance(d, IntDistribution):
            if d.step != 1:
                return int(round((clipped - d.low) / d.step)), clipped != v
            return int(round(clipped)), clipped != v
        return clipped, clipped != v

    def decode(self, value: Any) -> Any:
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            return d.choices[int(value)]
        if isinstance(d, IntDistribution):
            v = d.low + int(round(value)) * d.step if d.step != 1 else int(round(value))
            return int(min(max(v, d.low), d.high))
        v = min(max(float(value), d.low), d.high)
        if d.step is not None:  # as SearchSpace's Float.snap
            v = float(f"{min(d.low + round((v - d.low) / d.step) * d.step, d.high):.12g}")
        return v


def _single_value(d: BaseDistribution) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.choices[0]
    return d.low


_WARNED: weakref.WeakKeyDictionary[Any, set[tuple[int, str]]] = weakref.WeakKeyDictionary()


def _warn_once(study: Study, kind: str, message: str) -> None:
    """A warning about a study's odd trials, once per study and kind in this process (the sampler
    is rebuilt for every trial, and the same trials would be reported again at every suggestion)."""
    said = _WARNED.setdefault(study._storage, set())
    if (study._study_id, kind) not in said:
        said.add((study._study_id, kind))
        warnings.warn(message + " (said once per study)", stacklevel=4)


def _clip_infinite(ys: list[float]) -> tuple[list[float], int]:
    """Optuna GPSampler's rule (``optuna._gp.gp.warn_and_convert_inf``): +-inf becomes the largest /
    smallest finite value observed (0 when there is none)."""
    finite = [y for y in ys if math.isfinite(y)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    out = [y if math.isfinite(y) else (hi if y > 0 else lo) for y in ys]
    return out, sum(1 for y in ys if not math.isfinite(y))


def _put_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    text = json.dumps(value)
    for i in range(0, max(len(text), 1), _ATTR_CHUNK):
        study._storage.set_trial_system_attr(trial._trial_id, f"{key}:{i // _ATTR_CHUNK}", text[i:i + _ATTR_CHUNK])


def _get_attr(trial: FrozenTrial, key: str) -> Any | None:
    parts, i = [], 0
    while (part := trial.system_attrs.get(f"{key}:{i}")) is not None:
        parts.append(part)
        i += 1
    return json.loads("".join(parts)) if parts else None


class SkoptGPSampler(BaseSampler):
    """skopt's GP (``gp_minimize``'s model and acquisition) as an Optuna sampler; see the module.

    ``space``: the parameters to search (a ``SearchSpace``), or None to search whatever the objective
    suggests (Optuna's intersection search space, as Optuna's GPSampler does). ``seed``: None draws
    a fresh one, kept as ``self.seed``.
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        *,
        seed: int | None = None,
        n_initial_points: int = 10,
        acq_func: str = "gp_hedge",
        acq_points: int = DEFAULT_ACQ_POINTS,
        acq_restarts: int = DEFAULT_ACQ_RESTARTS,
        memo: Any | None = None,
    ) -> None:
        if acq_func not in ACQ_FUNCS:
            raise ValueError(f"acq_func must be one of {', '.join(ACQ_FUNCS)}, got {acq_func!r}")
        if int(n_initial_points) < 0 or int(acq_points) < 1 or int(acq_restarts) < 1:
            raise ValueError("n_initial_points must be >= 0, acq_points and acq_restarts >= 1")
        self._own: dict[str, BaseDistribution] | None = dict(space.to_optuna()) if space is not None else None
        self.seed = int(seed) if seed is not None else secrets.randbelow(_MAX_SEED)
        self._n_initial_points = int(n_initial_points)
        self._acq_func = acq_func
        self._acq_kwargs = {"n_points": int(acq_points), "n_restarts_optimizer": int(acq_restarts)}
        self._memo = memo

    def reseed_rng(self) -> None:
        """Nothing to reseed: every draw is a function of (``seed``, trial index), so the trials
        Optuna runs at the same time (``n_jobs > 1``, when it calls this) already differ, and a
        seed replays a run."""

    @staticmethod
    def _check_single(study: Study) -> None:
        if study._is_multi_objective():
            raise ValueError("the skopt GP sampler is single-objective")

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        own = self._own or {}
        space = {n: d for n, d in own.items() if not d.single() and all(n in t.params for t in complete)}
        if complete:
            for name, d in intersection_search_space(complete).items():
                if name not in own and not d.single():
                    space[name] = d
        return space

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        self._check_single(study)
        seed = _mix(self.seed, trial_index(study, trial.number), param_name)
        return RandomSampler(seed=seed).sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        self._check_single(study)
        out = {n: _single_value(d) for n, d in search_space.items() if d.single()}
        dims = [_Dim(n, d) for n, d in search_space.items() if not d.single()]
        if not dims:
            return out
        with study_lock(study):
            point = self._suggest(study, trial, dims)
        out.update({dim.name: dim.decode(v) for dim, v in zip(dims, point)})
        return {n: out[n] for n in search_space}

    # ------------------------------------------------------------------ the suggestion
    def _suggest(self, study: Study, trial: FrozenTrial, dims: list[_Dim]) -> list[Any]:
        signature = hashlib.sha256(json.dumps([[d.name, repr(d.dist)] for d in dims]).encode()).hexdigest()[:16]
        trials = study.get_trials(deepcopy=False)
        xs, ys = self._told(study, trials, dims)
        model = len(xs) >= max(self._n_initial_points, 1)
        random_state = (self.seed * 1_000_003 + trial_index(study, trial.number)) % _MAX_SEED
        pending = self._pending(trials, trial, dims, signature) if model else []
        hedge_in = self._hedge_in(trials, trial, signature) if model and self._acq_func == "gp_hedge" else None
        key = known = None
        if self._memo is not None:
            # A start-up point is a function of the space and the random state alone; a fitted one
            # of everything the fit and the acquisition search read.
            facts = [_MEMO_VERSION, _versions(), [[d.name, repr(d.dist)] for d in dims], random_state]
            if model:
                facts += [self._n_initial_points, self._acq_func, self._acq_kwargs, xs, ys, pending, hedge_in]
            key = _MEMO_VERSION + ":" + hashlib.sha256(json.dumps(facts).encode()).hexdigest()
            known = self._memo.get_memo(key)
        if known is None:
            known = self._compute(dims, xs, ys, model, pending, hedge_in, random_state)
            if key is not None:
                self._memo.put_memo(key, known)
        _put_attr(study, trial, STATE_KEY, {"sig": signature, "seed": self.seed, "random_state": random_state, **known})
        return known["x"]

    def _told(self, study: Study, trials: Sequence[FrozenTrial], dims: list[_Dim]) -> tuple[list, list]:
        """The completed trials as skopt points and values (minimised), by Optuna's rules (module)."""
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0  # skopt minimises
        xs, ys, clipped, skipped = [], [], 0, 0
        for t in trials:
            if t.state != TrialState.COMPLETE or t.value is None:
                continue
            enc = [dim.encode(t.params[dim.name]) if dim.name in t.params else None for dim in dims]
            if any(e is None for e in enc):
                skipped += 1
                continue
            clipped += any(c for _, c in enc)  # type: ignore[misc]
            xs.append([v for v, _ in enc])  # type: ignore[misc]
            ys.append(sign * float(t.value))
        ys, infinite = _clip_infinite(ys)
        if skipped:
            _warn_once(study, "skipped", f"the GP skips {skipped} completed trial(s) that lack a parameter of its "
                       "search space or hold a categorical value that is not a choice")
        if clipped:
            _warn_once(study, "clipped", f"the GP clips {clipped} completed trial(s) with a parameter outside its "
                       "bounds to the bounds")
        if infinite:
            _warn_once(study, "infinite", f"the GP clips {infinite} infinite objective value(s) to the min/max "
                       "finite values")
        return xs, ys

    @staticmethod
    def _pending(trials: Sequence[FrozenTrial], trial: FrozenTrial, dims: list[_Dim], signature: str) -> list:
        """The points of the other trials still running: the parameters they hold, or, before they
        hold them all, the point the GP suggested to them (their state)."""
        out = []
        for t in trials:
            if t.state != TrialState.RUNNING or t.number == trial.number or is_interrupted(t):
                continue
            enc = [d.encode(t.params[d.name]) if d.name in t.params else None for d in dims]
            if all(e is not None for e in enc):
                out.append([v for v, _ in enc])  # type: ignore[misc]
            elif (state := _get_attr(t, STATE_KEY)) is not None and state.get("sig") == signature:
                out.append(state["x"])
        return out

    @staticmethod
    def _hedge_in(trials: Sequence[FrozenTrial], trial: FrozenTrial, signature: str) -> dict[str, Any] | None:
        """The Hedge state left by the latest earlier trial that has one (over the same parameters)."""
        for t in sorted(trials, key=lambda t: t.number, reverse=True):
            if t.number >= trial.number or is_interrupted(t):
                continue
            state = _get_attr(t, STATE_KEY)
            if state is not None and "gains" in state:
                return {"gains": state["gains"], "cands": state["cands"]} if state.get("sig") == signature else None
        return None

    def _compute(self, dims: list[_Dim], xs: list, ys: list, model: bool, pending: list,
                 hedge_in: Mapping[str, Any] | None, random_state: int) -> dict[str, Any]:
        from skopt import Optimizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skopt's duplicate-point and GP convergence chatter
            opt = Optimizer(
                [d.skopt() for d in dims],
                base_estimator="GP",
                n_initial_points=self._n_initial_points if model else max(self._n_initial_points, 1),
                acq_func=self._acq_func,
                acq_optimizer_kwargs=self._acq_kwargs,
                random_state=random_state,
            )
            if not model:
                return {"x": [_py(v) for v in opt.ask()]}
            if hedge_in is not None:  # as if this optimizer had made the earlier suggestions itself
                opt.gains_ = np.asarray(hedge_in["gains"], dtype=float)
                opt.next_xs_ = [np.asarray(c, dtype=float) for c in hedge_in["cands"]]
            lie = _LIE(ys)
            opt.tell(xs + pending, ys + [lie] * len(pending))
            point = [_py(v) for v in opt.ask()]
        out: dict[str, Any] = {"x": point}
        if self._acq_func == "gp_hedge":
            out["gains"] = [float(g) for g in opt.gains_]
            out["cands"] = [[float(v) for v in c] for c in opt.next_xs_]
        return out


class OptunaGPSampler(GPSampler):
    """Optuna's ``GPSampler`` (the ``gp-optuna`` method), held to the same rules for concurrent
    trials as ``SkoptGPSampler``: a study's suggestions are computed one at a time in a process, so
    each sees the points of the trials running beside it (which Optuna's GP models with qLogEI), and
    a proposal that repeats the point of another trial (interrupted ones aside: a resumed trial
    takes the point of the one a killed process left) is dropped for a random point (its
    ``sample_independent``), as skopt's ``avoid_duplicates`` does. Optuna's GP repeats points:
    in 12 seeded 16-trial runs of a 2-D quadratic it re-proposed a trial's point in 4 runs with
    ``n_jobs=1`` and 6 with ``n_jobs=4`` (3 still with the lock alone)."""

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        with study_lock(study):
            params = super().sample_relative(study, trial, search_space)
            for t in study.get_trials(deepcopy=False):
                if t.number != trial.number and not is_interrupted(t) and params and \
                        all(k in t.params and t.params[k] == v for k, v in params.items()):
                    return {}
            return params
