import math

import pytest

from hpo_bench.space import Categorical, Float, Int, SearchSpace


@pytest.mark.parametrize(
    "param, message",
    [
        (Float(1.0, 1.0), "low must be < high"),
        (Float(2.0, 1.0), "low must be < high"),
        (Float(0.0, 1.0, log=True), "log scale needs low > 0"),
        (Float(0.0, 1.0, step=0.3), "does not divide"),
        (Float(0.0, 1.0, step=-0.1), "step must be > 0"),
        (Int(5, 5), "low must be < high"),
        (Int(0, 8, log=True), "log scale needs low > 0"),
        (Categorical([]), "at least one choice"),
        (Categorical(["a", "b", "a"]), "duplicate choice"),
    ],
)
def test_invalid_parameters_name_the_parameter(param, message):
    with pytest.raises(ValueError, match=f"'lr'.*{message}"):
        SearchSpace({"lr": param})


def test_bool_and_int_choices_are_distinct():
    # 1 == True in Python, but they are different choices: none is taken for a duplicate, and each
    # comes back from the grid and from skopt as itself, type included
    s = SearchSpace({"c": Categorical([1, True, "1"])})
    assert [(v, type(v)) for v in s.grid_levels(3)["c"]] == [(1, int), (True, bool), ("1", str)]
    for v in (1, True, "1"):
        back = s.from_skopt(s.to_skopt_point({"c": v}))["c"]
        assert (back, type(back)) == (v, type(v))


def test_to_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    s = SearchSpace({"a": Float(1e-4, 1.0, log=True), "b": Int(1, 8), "c": Float(0, 1, step=0.25), "d": Categorical(["x", None])})
    d = s.to_optuna()
    assert d["a"] == FloatDistribution(1e-4, 1.0, log=True)
    assert d["b"] == IntDistribution(1, 8)
    assert d["c"] == FloatDistribution(0, 1, step=0.25)
    assert d["d"] == CategoricalDistribution(["x", None])


def test_skopt_round_trip():
    s = SearchSpace({"a": Float(1e-4, 1.0, log=True), "b": Int(2, 64, log=True), "c": Float(0, 1, step=0.25), "d": Categorical(["x", None, 3])})
    dims = s.to_skopt()
    assert dims[0].prior == "log-uniform" and dims[1].prior == "log-uniform"
    cfg = {"a": 0.01, "b": 8, "c": 0.5, "d": None}
    assert s.from_skopt(s.to_skopt_point(cfg)) == cfg
    assert s.from_skopt([0.3, 7.6, 0.37, 2]) == {"a": 0.3, "b": 8, "c": 0.25, "d": 3}


def test_grid_is_balanced_and_within_budget():
    s = SearchSpace({"p": Categorical(["a", "b", "c"]), "lr": Float(1e-4, 1e-1, log=True), "e": Int(1, 8), "bs": Categorical([32, 64])})
    for budget in range(1, 60):
        levels = s.grid_levels(budget)
        n = math.prod(len(v) for v in levels.values())
        assert 1 <= n <= budget
        assert len(s.grid(budget)) == n
        for k, v in levels.items():  # maximal: no parameter can take one more level
            card = s[k].cardinality
            assert len(v) == card or n // len(v) * (len(v) + 1) > budget
    assert {k: len(v) for k, v in s.grid_levels(12).items()} == {"p": 3, "lr": 2, "e": 2, "bs": 1}
    lv = s.grid_levels(12)["lr"]  # centres of equal log cells
    assert lv[0] == pytest.approx(10 ** -3.25) and lv[1] == pytest.approx(10 ** -1.75)
    with pytest.raises(ValueError, match="budget >= 1"):
        s.grid_levels(0)


def test_grid_respects_cardinality_and_steps():
    s = SearchSpace({"a": Categorical(["x"]), "b": Float(0.5, 0.6, step=0.05), "c": Int(1, 2)})
    grid = s.grid(100)
    assert len(grid) == 1 * 3 * 2
    assert sorted({g["b"] for g in grid}) == [0.5, 0.55, 0.6]
