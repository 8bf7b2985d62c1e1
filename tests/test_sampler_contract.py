"""Optuna's own sampler contract, run over every sampler the registry builds.

Upstream, Optuna's tests/samplers_tests/test_samplers.py takes its test classes from
``optuna.testing.pytest_samplers`` (shipped with Optuna, so the installed 5.0.0's own copy is used
here: the version matching the installed Optuna) and adds module-level tests. Here the classes run
with a ``sampler`` fixture that builds the registry's samplers, each in two forms: as the method's
factory returns it ("raw", seed 0, a 12-trial budget: 3 random start-up trials) and as the runner
runs it (``harness/runner.py``: a fresh sampler per trial, ``ReseedingSampler``, inside a
``TimedSampler``). Every registry method is covered or listed as not applicable
(``test_every_registry_sampler_is_covered``).

Which upstream tests apply to which samplers, and why not elsewhere:

* ``BasicSamplerTestCase`` (independent sampling, partial fixed, conditional, dynamic ranges,
  NaN values, ...): every sampler but the grid's, which samples only its own grid points (upstream
  does not run ``GridSampler`` here either).
* ``RelativeSamplerTestCase``: the model-based samplers gp and tpe, with their random start-up
  set to 0 as upstream sets it (the tests tell one trial and read ``sample_relative``, which
  returns nothing during a start-up), in the runner's form (the raw samplers are the same code).
  Random search and the grid have no relative sampling; NSGA-II's relative sampling breeds a
  population (upstream does not run it here either). gp-optuna is Optuna's ``GPSampler``, which
  upstream runs through this very class with start-up 0; the registry's subclass only serialises
  and de-duplicates its suggestions (tested below), and its fits would make this class minutes
  long here.
* ``MultiObjectiveSamplerTestCase``: the samplers of the registry's multi-objective methods
  (random, nsga2, tpe), not the grid.
* ``SingleOnlySamplerTestCase``: gp, the one single-objective-only sampler. tpe and gp-optuna are
  registered for single objectives only, but their samplers support several, so the test (which
  expects an error) does not apply to them.
* ``test_reproducible`` (same seed, same trials; another seed, other trials): every sampler but the
  grid's (its seed only permutes a fixed grid, covered by test_methods_contract.py), both forms;
  the GPs over 8 trials instead of 15 (5 fitted suggestions each; the fits are slow).
* ``test_reproducible_in_other_process``: the samplers whose seeding is ours: gp (raw; its seeds
  are hashed, with sha256, not ``hash``) and the runner's form (tpe inside ``ReseedingSampler``);
  Optuna's own samplers are covered upstream. 8 trials instead of 15.
* ``test_reseed_rng_change_sampling``: Optuna's own samplers as the registry configures them
  (random, tpe, nsga2, gp-optuna). Not the gp or the runner's form: their draws are a function of
  (seed, trial index) by design, so that concurrent trials differ and a resumed search equals an
  uninterrupted one; ``reseed_rng`` does not change them (tested the other way round below).
* Not applicable: ``test_sampler_reseed_rng`` (inspects the ``LazyRandomState`` attributes of
  Optuna's own classes), ``test_pickle_random_sampler`` (``RandomSampler`` itself; the harness never
  pickles samplers, and the runner's factory is a closure), ``test_sample_relative`` (tests
  Optuna's ``Trial`` with a fake sampler, no sampler of ours).

Added, from the issue: under ``n_jobs > 1`` no two trials get the same point and no trial repeats a
draw (the runner's form: a trial's sampler is never rebuilt mid-trial).
"""
from __future__ import annotations

import multiprocessing
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from unittest.mock import patch

import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

from hpo_bench.methods import METHODS, MethodContext, registry
from hpo_bench.methods.reseeding import ReseedingSampler
from hpo_bench.methods.timing import TimedSampler
from hpo_bench.space import Categorical, Float, Int, SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)

# The space the registry builds its samplers for. The upstream tests suggest their own parameters
# (x, y, a-g): the samplers model whatever the objective suggests (Optuna's intersection search
# space), so no test parameter need be in it, and none is.
SPACE = SearchSpace({"lr": Float(1e-4, 1e-1, log=True), "epochs": Int(1, 3),
                     "pattern": Categorical(["unstructured", "block4"])})
CONTEXT = MethodContext(space=SPACE, seed=0, budget_trials=12, max_epochs=3)

SAMPLERS = ["random", "gp", "gp-optuna", "tpe", "nsga2"]  # every distinct sampler of the registry
SAME_SAMPLER_AS = {"random-mo": "random", "tpe-median": "tpe", "tpe-hyperband": "tpe", "tpe-mo": "tpe"}
NOT_APPLICABLE = {"grid": "samples only its own grid points"}
FORMS = ["raw", "runner"]


def build(method: str, form: str, seed: int = 0, startup: int | None = None) -> optuna.samplers.BaseSampler:
    """The registry's sampler for ``method``; ``startup``: override the random start-up trials."""
    spec = METHODS[method]
    ctx = replace(CONTEXT, seed=seed)

    def one(c: MethodContext) -> optuna.samplers.BaseSampler:
        if startup is None:
            return spec.build(c)[0]
        with patch.object(registry, "n_initial", lambda budget: startup):
            return spec.build(c)[0]

    if form == "raw":
        return one(ctx)
    assert spec.reseed_per_trial
    return TimedSampler(ReseedingSampler(lambda s: one(replace(ctx, seed=s)), seed))  # as search() does


def _fixture_params(methods: list[str], forms: list[str], startup: int | None = None) -> list[Any]:
    return [pytest.param(lambda m=m, f=f: build(m, f, startup=startup), id=f"{m}-{f}") for m in methods for f in forms]


def test_every_registry_sampler_is_covered():
    assert set(METHODS) == set(SAMPLERS) | set(SAME_SAMPLER_AS) | set(NOT_APPLICABLE)
    for method, same in SAME_SAMPLER_AS.items():
        a, b = METHODS[method].build(CONTEXT)[0], METHODS[same].build(CONTEXT)[0]
        assert type(a) is type(b)


class TestBasic(BasicSamplerTestCase):
    @pytest.fixture(params=_fixture_params(SAMPLERS, FORMS))
    def sampler(self, request: Any) -> Callable[[], optuna.samplers.BaseSampler]:
        return request.param


class TestRelative(RelativeSamplerTestCase):
    @pytest.fixture(params=_fixture_params(["gp", "tpe"], ["runner"], startup=0))
    def sampler(self, request: Any) -> Callable[[], optuna.samplers.BaseSampler]:
        return request.param


class TestMultiObjective(MultiObjectiveSamplerTestCase):
    @pytest.fixture(params=_fixture_params(["random", "nsga2", "tpe"], FORMS))
    def sampler(self, request: Any) -> Callable[[], optuna.samplers.BaseSampler]:
        return request.param


class TestSingleOnly(SingleOnlySamplerTestCase):
    @pytest.fixture(params=_fixture_params(["gp"], FORMS))
    def sampler(self, request: Any) -> Callable[[], optuna.samplers.BaseSampler]:
        return request.param


# ---------------------------------------------------------------------- upstream's module-level tests
def _seven(trial: optuna.Trial) -> tuple[float, ...]:
    return (trial.suggest_float("a", 1, 9), trial.suggest_float("b", 1, 9, log=True),
            trial.suggest_float("c", 1, 9, step=1), trial.suggest_int("d", 1, 9),
            trial.suggest_int("e", 1, 9, log=True), trial.suggest_int("f", 1, 9, step=2),
            trial.suggest_categorical("g", range(1, 10)))


@pytest.mark.parametrize("objective_func", [lambda *args: sum(args), lambda *args: 0.0], ids=["sum", "constant"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("method", SAMPLERS)
def test_reproducible(method: str, form: str, objective_func: Any) -> None:
    n_trials = 8 if method.startswith("gp") else 15

    def params(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=build(method, form, seed=seed))
        study.optimize(lambda t: objective_func(*_seven(t)), n_trials=n_trials)
        return [t.params for t in study.trials]

    first = params(1)
    assert params(1) == first
    assert params(2) != first


def run_optimize(k: int, method: str, form: str, sequence_dict: Any, hash_dict: Any) -> None:
    hash_dict[k] = hash("nondeterministic hash")
    study = optuna.create_study(sampler=build(method, form, seed=1))
    study.optimize(lambda t: sum(_seven(t)), n_trials=8)
    sequence_dict[k] = list(study.trials[-1].params.values())


@pytest.mark.parametrize("method,form", [("gp", "raw"), ("tpe", "runner")])
def test_reproducible_in_other_process(method: str, form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    sequence_dict, hash_dict = manager.dict(), manager.dict()
    for i in range(3):
        p = ctx.Process(target=run_optimize, args=(i, method, form, sequence_dict, hash_dict))
        p.start()
        p.join()
        assert p.exitcode == 0
    assert not (hash_dict[0] == hash_dict[1] == hash_dict[2])
    assert sequence_dict[0] == sequence_dict[1] == sequence_dict[2]


@pytest.mark.parametrize("method", ["random", "tpe", "nsga2", "gp-optuna"])
def test_reseed_rng_change_sampling(method: str) -> None:
    def params(reseed: bool) -> list[dict[str, Any]]:
        sampler = build(method, "raw", seed=1)
        if reseed:
            sampler.reseed_rng()
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: sum(_seven(t)), n_trials=15)
        return [t.params for t in study.trials]

    assert params(False) != params(True)


@pytest.mark.parametrize("method,form", [("gp", "raw"), ("gp", "runner"), ("random", "runner"), ("tpe", "runner")])
def test_reseed_rng_keeps_what_a_seed_draws(method: str, form: str) -> None:
    def params(reseed: bool) -> list[dict[str, Any]]:
        sampler = build(method, form, seed=1)
        if reseed:
            sampler.reseed_rng()
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: sum(_seven(t)), n_trials=6)
        return [t.params for t in study.trials]

    assert params(False) == params(True)


# ---------------------------------------------------------------------- several trials at once
def _two_draws(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    time.sleep(0.005)  # let another trial's calls come in between
    y = trial.suggest_float("y", 0.0, 1.0)
    time.sleep(0.005)
    return (x - 0.3) ** 2 + (y - 0.6) ** 2


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("method", SAMPLERS)
def test_concurrent_trials_neither_share_points_nor_repeat_draws(method: str, form: str) -> None:
    study = optuna.create_study(sampler=build(method, form, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(_two_draws, n_trials=16, n_jobs=4)
    points = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(points) == 16
    # A sampler rebuilt mid-trial repeats its first draw (a model may well put both on a bound).
    assert all(x != y for x, y in points if {x, y} - {0.0, 1.0})
    if method != "nsga2":  # NSGA-II's crossover copies its parents' values by design
        assert len(set(points)) == len(points)

