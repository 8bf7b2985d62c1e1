"""The skopt GP sampler (methods/skopt_sampler.py) and the per-trial reseeding (methods/reseeding.py):
Hedge state kept across asks, Optuna's rules for odd trials, seeds, and several trials at once."""
from __future__ import annotations

import json
import math
import threading
import time
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpo_bench.methods.ledger import INTERRUPTED
from hpo_bench.methods.reseeding import ReseedingSampler
from hpo_bench.methods.skopt_sampler import STATE_KEY, SkoptGPSampler, _get_attr
from hpo_bench.space import Categorical, Float, SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)

BRANIN = SearchSpace({"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)})
FAST = {"acq_points": 300, "acq_restarts": 1}  # the acquisition settings do not matter here


def branin(trial) -> float:
    x1, x2 = trial.suggest_float("x1", -5.0, 10.0), trial.suggest_float("x2", 0.0, 15.0)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def gp(space=BRANIN, seed=0, n_initial_points=3, **kw):
    return SkoptGPSampler(space, seed=seed, n_initial_points=n_initial_points, **{**FAST, **kw})


def states(study):
    return [_get_attr(t, STATE_KEY) for t in study.trials]


# ---------------------------------------------------------------------- Hedge
def test_hedge_gains_carry_over_from_ask_to_ask_as_in_one_optimizer():
    from skopt import Optimizer

    study = optuna.create_study(sampler=gp())
    study.optimize(branin, n_trials=9)
    st = states(study)
    model = [k for k, s in enumerate(st) if "gains" in s]
    assert model == list(range(3, 9))
    assert st[3]["gains"] == [0.0, 0.0, 0.0]  # the first fit has no earlier proposals to score
    assert all(any(g != 0 for g in st[k]["gains"]) for k in model[1:])
    # Replayed with skopt's own update, each ask starting from the state the one before left: the
    # gains and the point are exactly those recorded (so they are those of one long-lived Optimizer).
    for k in model[1:]:
        opt = Optimizer(BRANIN.to_skopt(), base_estimator="GP", n_initial_points=3, acq_func="gp_hedge",
                        acq_optimizer_kwargs={"n_points": 300, "n_restarts_optimizer": 1},
                        random_state=st[k]["random_state"])
        opt.gains_ = np.array(st[k - 1]["gains"])
        opt.next_xs_ = [np.array(c) for c in st[k - 1]["cands"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.tell([[t.params["x1"], t.params["x2"]] for t in study.trials[:k]], [t.value for t in study.trials[:k]])
        assert opt.gains_.tolist() == st[k]["gains"]
        assert [float(v) for v in opt.ask()] == st[k]["x"]


def test_an_interrupted_trial_shifts_neither_the_gains_nor_the_random_state():
    fresh = optuna.create_study(sampler=gp())
    fresh.optimize(branin, n_trials=8)

    study = optuna.create_study(sampler=gp())
    study.optimize(branin, n_trials=5)
    killed = study.ask()
    killed.suggest_float("x1", -5.0, 10.0)  # sampled (its state recorded), then the process dies
    study._storage.set_trial_user_attr(killed._trial_id, INTERRUPTED, True)
    study._storage.set_trial_state_values(killed._trial_id, TrialState.FAIL)
    study.optimize(branin, n_trials=3)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.params for t in done] == [t.params for t in fresh.trials]
    assert [_get_attr(t, STATE_KEY) for t in done] == states(fresh)


def test_the_memo_key_holds_the_hedge_state_and_the_acquisition_settings():
    class Memo(dict):
        def get_memo(self, key):
            return self.get(key)

        def put_memo(self, key, value):
            self.setdefault(key, value)

    memo = Memo()
    first = optuna.create_study(sampler=gp(memo=memo))
    first.optimize(branin, n_trials=6)
    assert len(memo) == 6
    again = optuna.create_study(sampler=gp(memo=memo))
    again.optimize(branin, n_trials=6)
    assert len(memo) == 6 and [t.params for t in again.trials] == [t.params for t in first.trials]
    assert states(again) == states(first)  # a memoised suggestion leaves the same Hedge state
    other = optuna.create_study(sampler=gp(memo=memo, acq_points=301))
    other.optimize(branin, n_trials=6)
    assert len(memo) == 9  # the 3 random start-ups are shared; the 3 fitted ones are not
    # The same five trials before it, with their Hedge state as recorded (a hit) or changed (a miss).
    for gains, grows in ((None, 0), ([5.0, 0.0, 0.0], 1)):
        study = optuna.create_study(sampler=gp(memo=memo))
        for t in first.trials[:5]:
            attrs = dict(t.system_attrs)
            if t.number == 4 and gains is not None:
                attrs = {f"{STATE_KEY}:0": json.dumps({**_get_attr(t, STATE_KEY), "gains": gains})}
            study.add_trial(optuna.create_trial(params=t.params, distributions=t.distributions, value=t.value,
                                                system_attrs=attrs))
        n = len(memo)
        study.optimize(branin, n_trials=1)
        assert len(memo) == n + grows


# ---------------------------------------------------------------------- Optuna's rules for odd trials
def test_returns_only_the_search_space_it_is_given_so_partial_fixed_sampling_works():
    study = optuna.create_study(sampler=gp())
    study.optimize(branin, n_trials=4)
    trial = study.ask()
    params = study.sampler.sample_relative(study, study._storage.get_trial(trial._trial_id),
                                           {"x2": FloatDistribution(0.0, 15.0)})
    assert set(params) == {"x2"}
    study.tell(trial, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.PartialFixedSampler({"x1": 2.5}, study.sampler)
    study.optimize(branin, n_trials=3)
    assert [t.params["x1"] for t in study.trials[-3:]] == [2.5] * 3
    assert all("gains" in _get_attr(t, STATE_KEY) for t in study.trials[-3:])


@pytest.mark.parametrize("how", ["add_trial", "enqueue_trial", "widened range"])
def test_a_value_out_of_bounds_is_clipped_and_later_trials_go_on(how):
    study = optuna.create_study(sampler=gp())
    if how == "add_trial":
        study.add_trial(optuna.create_trial(params={"x1": 30.0, "x2": -4.0}, value=50.0, distributions={
            "x1": FloatDistribution(-50, 50), "x2": FloatDistribution(-50, 50)}))
    elif how == "enqueue_trial":
        study.enqueue_trial({"x1": 30.0, "x2": -4.0})
    else:  # trials of an earlier version of the objective, over a wider range
        study.sampler = optuna.samplers.RandomSampler(seed=0)
        study.optimize(lambda t: t.suggest_float("x1", 10, 30) + t.suggest_float("x2", -5, 15), n_trials=3)
        study.sampler = gp()
    with pytest.warns(UserWarning, match="clips"):
        study.optimize(branin, n_trials=6)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sum("gains" in (_get_attr(t, STATE_KEY) or {}) for t in study.trials) >= 3


def test_an_infinite_value_is_clipped_and_later_trials_go_on():
    study = optuna.create_study(sampler=gp())
    study.optimize(branin, n_trials=3)
    study.enqueue_trial({"x1": 0.0, "x2": 0.0})
    study.optimize(lambda t: branin(t) * math.inf, n_trials=1)
    assert study.trials[-1].state == TrialState.COMPLETE and study.trials[-1].value == math.inf
    with pytest.warns(UserWarning, match="infinite"):
        study.optimize(branin, n_trials=4)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all("gains" in _get_attr(t, STATE_KEY) for t in study.trials[-4:])


def test_a_conditional_space_is_modelled_on_the_parameters_every_trial_has():
    space = SearchSpace({"x": Float(-1.0, 1.0), "y": Float(0.0, 1.0), "z": Float(0.0, 1.0)})

    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        return x * x + (trial.suggest_float("y", 0.0, 1.0) if x > 0 else trial.suggest_float("z", 0.0, 1.0))

    study = optuna.create_study(sampler=gp(space))
    study.optimize(objective, n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    later = [_get_attr(t, STATE_KEY) for t in study.trials[3:]]
    assert all("gains" in s for s in later)  # the GP chose x in every trial after the start-up ones
    trial = study.ask()
    assert list(study.sampler.infer_relative_search_space(study, trial)) == ["x"]


def test_parameters_outside_its_space_are_modelled_too():
    study = optuna.create_study(sampler=gp(SearchSpace({"x1": Float(-5.0, 10.0)})))
    study.optimize(branin, n_trials=6)
    assert all(len(s["x"]) == 2 for s in states(study)[1:])
    assert set(study.sampler.infer_relative_search_space(study, study.ask())) == {"x1", "x2"}


def test_a_categorical_value_that_is_not_a_choice_is_skipped():
    space = SearchSpace({"x": Float(0.0, 1.0), "c": Categorical(["a", "b"])})
    study = optuna.create_study(sampler=gp(space))
    study.add_trial(optuna.create_trial(params={"x": 0.5, "c": "z"}, value=0.0, distributions={
        "x": FloatDistribution(0.0, 1.0), "c": optuna.distributions.CategoricalDistribution(["a", "b", "z"])}))
    with pytest.warns(UserWarning, match="skips 1"):
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) + (t.suggest_categorical("c", ["a", "b"]) == "a"),
                       n_trials=5)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_multi_objective_is_refused_in_both_kinds_of_sampling():
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=gp())
    trial = study._storage.get_trial(study._storage.create_new_trial(study._study_id))
    with pytest.raises(ValueError, match="single-objective"):
        study.sampler.sample_independent(study, trial, "x", FloatDistribution(0, 1))
    with pytest.raises(ValueError, match="single-objective"):
        study.sampler.sample_relative(study, trial, {"x": FloatDistribution(0, 1)})


# ---------------------------------------------------------------------- seeds
def test_seed_none_is_a_fresh_seed_recorded_for_replay():
    a, b = SkoptGPSampler(BRANIN, **FAST), SkoptGPSampler(BRANIN, **FAST)
    assert isinstance(a.seed, int) and a.seed != b.seed
    runs = []
    for s in (a, b):
        study = optuna.create_study(sampler=s)
        study.optimize(branin, n_trials=5)
        runs.append(study)
    assert [t.params for t in runs[0].trials] != [t.params for t in runs[1].trials]
    recorded = _get_attr(runs[0].trials[0], STATE_KEY)["seed"]
    replay = optuna.create_study(sampler=SkoptGPSampler(BRANIN, seed=recorded, **FAST))
    replay.optimize(branin, n_trials=5)
    assert [t.params for t in replay.trials] == [t.params for t in runs[0].trials]


# ---------------------------------------------------------------------- several trials at once
def _slow_branin(trial) -> float:
    x1 = trial.suggest_float("x1", -5.0, 10.0)
    time.sleep(0.02)
    x2 = trial.suggest_float("x2", 0.0, 15.0)
    time.sleep(0.02)
    return branin(optuna.trial.FixedTrial({"x1": x1, "x2": x2}))


@pytest.mark.parametrize("reseeded", [False, True])
def test_concurrent_trials_get_different_points(reseeded):
    sampler = ReseedingSampler(lambda s: gp(seed=s), 7) if reseeded else gp(seed=7)
    study = optuna.create_study(sampler=sampler)
    study.optimize(_slow_branin, n_trials=10, n_jobs=2)
    points = [(t.params["x1"], t.params["x2"]) for t in study.trials]
    assert len(points) == 10 and len(set(points)) == 10


def test_a_point_being_evaluated_is_not_proposed_again():
    study = optuna.create_study(sampler=gp(acq_func="EI"))
    study.optimize(branin, n_trials=6)
    running = study.ask()
    a = (running.suggest_float("x1", -5.0, 10.0), running.suggest_float("x2", 0.0, 15.0))
    other = study.ask()  # asked while the first is still being evaluated
    b = (other.suggest_float("x1", -5.0, 10.0), other.suggest_float("x2", 0.0, 15.0))
    assert math.dist((a[0] / 15, a[1] / 15), (b[0] / 15, b[1] / 15)) > 0.05
    study.tell(running, 1.0)
    study.tell(other, 1.0)


def test_reseeding_builds_one_inner_sampler_per_trial_under_threads():
    built: list[int] = []
    lock = threading.Lock()

    def factory(seed):
        with lock:
            built.append(seed)
        return optuna.samplers.RandomSampler(seed=seed)

    study = optuna.create_study(sampler=ReseedingSampler(factory, 3))

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(0.01)  # another trial starts here
        y = trial.suggest_float("y", 0.0, 1.0)
        return x + y

    study.optimize(objective, n_trials=16, n_jobs=4)
    assert len(built) == 16 and len(set(built)) == 16
    assert all(t.params["x"] != t.params["y"] for t in study.trials)  # no repeated first draw
    assert not study.sampler._open  # every trial's sampler dropped when it ended


def test_reseeded_draws_do_not_depend_on_threads():
    def run(n_jobs):
        study = optuna.create_study(sampler=ReseedingSampler(lambda s: optuna.samplers.RandomSampler(seed=s), 5))
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=8, n_jobs=n_jobs)
        return sorted((t.params["x"], t.params["y"]) for t in study.trials)

    assert run(1) == run(3)


# ---------------------------------------------------------------------- gp-optuna
@pytest.mark.parametrize("seed", [1, 2])  # seeds where Optuna's own GPSampler repeats a point
def test_gp_optuna_does_not_repeat_a_point(seed):
    from hpo_bench.methods.skopt_sampler import OptunaGPSampler

    study = optuna.create_study(sampler=OptunaGPSampler(seed=seed, n_startup_trials=3))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + (t.suggest_float("y", 0, 1) - 0.6) ** 2,
                   n_trials=16)
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 16



@pytest.mark.parametrize("ledger", ["s.db", "s.log"])
def test_gp_optuna_resumed_after_a_hard_kill_equals_uninterrupted(tiny, tmp_path, ledger):
    from hpo_bench.harness import Budget, search
    from hpo_bench.harness.storage import open_storage, study_name

    db, budget = str(tmp_path / ledger), Budget(trials=6)

    def stop_after_two(rec):  # within the random start-up (3 trials), so its random state matters too
        if rec.number == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(tiny, "gp-optuna", budget, seed=2, storage=db, on_trial=stop_after_two)
    study = optuna.load_study(study_name=study_name(tiny.name, "gp-optuna", 2, budget.tag, 0), storage=open_storage(db))
    study.ask()  # killed mid-trial: left RUNNING
    resumed = search(tiny, "gp-optuna", budget, seed=2, storage=db)
    fresh = search(tiny, "gp-optuna", budget, seed=2)
    assert [t.params for t in resumed.trials] == [t.params for t in fresh.trials]
    assert [t.values for t in resumed.trials] == [t.values for t in fresh.trials]
