"""Statistics of a comparison, checked against scipy / numpy / optuna and hand-computed values."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from hpo_bench.harness.report.summary import final, summarize, within_budget
from hpo_bench.harness.results import CompareResult, RunResult, TrialRecord
from hpo_bench.harness.stats import (
    _ranks, average_ranks, hypervolume_2d, median_iqr, prob_beats, quantile, wilcoxon,
)

A = [0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.89, 0.96, 0.93, 0.90]
B = [0.90, 0.93, 0.88, 0.91, 0.93, 0.90, 0.86, 0.95, 0.89, 0.87]


def test_quantiles_match_numpy():
    rng = random.Random(0)
    for n in (1, 2, 5, 10, 11):
        xs = [rng.random() for _ in range(n)]
        for q in (0.0, 0.25, 0.5, 0.75, 1.0):
            assert quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))
    assert median_iqr([3.0, 1.0, 2.0, 4.0]) == pytest.approx((2.5, 1.75, 3.25))


def test_ranks_match_scipy_rankdata_with_ties():
    xs = [3.0, 1.0, 3.0, 2.0, 3.0, 0.5, 2.0]
    assert _ranks(xs) == list(sps.rankdata(xs))


def test_wilcoxon_matches_scipy_and_hand_computed_effect_size():
    w = wilcoxon(A, B)
    d = [a - b for a, b in zip(A, B) if a - b != 0]
    ref = sps.wilcoxon(d)
    assert w["p"] == pytest.approx(ref.pvalue)
    assert w["statistic"] == pytest.approx(ref.statistic)
    r = sps.rankdata(np.abs(d))
    wp, wm = r[np.array(d) > 0].sum(), r[np.array(d) < 0].sum()
    assert w["rank_biserial"] == pytest.approx((wp - wm) / (wp + wm))
    assert w["n_nonzero"] == 9 and w["n"] == 10           # one tie dropped, as scipy's "wilcox"
    flipped = wilcoxon(B, A)
    assert flipped["rank_biserial"] == pytest.approx(-w["rank_biserial"])
    assert flipped["p"] == pytest.approx(w["p"])


def test_wilcoxon_when_a_always_wins_and_when_all_tie():
    a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    b = [x - 0.1 * (i + 1) for i, x in enumerate(a)]
    w = wilcoxon(a, b)
    assert w["rank_biserial"] == 1.0
    assert w["p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)  # 2 / 2^6, exact
    tie = wilcoxon([0.9] * 5, [0.9] * 5)
    assert tie["p"] == 1.0 and tie["rank_biserial"] == 0.0 and tie["n_nonzero"] == 0
    assert wilcoxon([], [])["p"] == 1.0
    with pytest.raises(ValueError):
        wilcoxon([1.0], [1.0, 2.0])


def test_prob_beats_is_mann_whitney_u_over_nm():
    a, b = [1, 2, 2, 5, 7], [2, 3, 4, 4]
    u = sps.mannwhitneyu(a, b, alternative="two-sided").statistic
    assert prob_beats(a, b) == pytest.approx(u / (len(a) * len(b)))
    assert prob_beats([1.0], [1.0]) == 0.5
    assert prob_beats(a, b) + prob_beats(b, a) == pytest.approx(1.0)


def test_average_ranks_best_is_one_ties_share():
    table = [[0.9, 0.8, 0.7], [0.9, 0.9, 0.6], [0.5, 0.95, 0.8]]
    expect = np.mean([sps.rankdata([-row[s] for row in table]) for s in range(3)], axis=0)
    assert average_ranks(table) == pytest.approx(list(expect))
    assert average_ranks([[1.0, 1.0], [0.0, 0.0]]) == [1.0, 2.0]
    assert sum(average_ranks(table)) == pytest.approx(1 + 2 + 3)


def test_hypervolume_of_a_hand_computed_front():
    front = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]
    # staircase against (4, 4): 3x1 + 2x1 + 1x1
    assert hypervolume_2d(front, (4.0, 4.0)) == pytest.approx(6.0)
    # dominated points, a point beyond the reference and duplicates add nothing
    assert hypervolume_2d([*front, (3.0, 3.0), (2.0, 2.0), (5.0, 0.0)], (4.0, 4.0)) == pytest.approx(6.0)
    # maximised objectives (accuracy, sparsity) against (0, 0)
    assert hypervolume_2d([(0.9, 0.5), (0.8, 0.9)], (0.0, 0.0), ("maximize", "maximize")) == pytest.approx(
        0.9 * 0.5 + 0.8 * (0.9 - 0.5))
    # one maximised, one minimised
    assert hypervolume_2d([(0.9, 2.0)], (0.0, 10.0), ("maximize", "minimize")) == pytest.approx(0.9 * 8.0)
    assert hypervolume_2d([], (1.0, 1.0)) == 0.0


def test_hypervolume_matches_optuna_on_random_sets():
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(1)
    for _ in range(20):
        pts = rng.random((int(rng.integers(1, 15)), 2))
        ref = np.array([1.1, 1.1])
        assert hypervolume_2d(pts.tolist(), ref.tolist()) == pytest.approx(compute_hypervolume(pts, ref))


def _run(method, seed, values, epochs, budget=None, directions=("maximize",)):
    trials = [TrialRecord(i, "COMPLETE" if v is not None else "PRUNED", {}, [v] if v is not None else None,
                          [], e, e, 0.1) for i, (v, e) in enumerate(zip(values, epochs))]
    return RunResult("p", method, seed, budget or {"trials": len(values), "epochs": None}, ["accuracy"],
                     list(directions), "s", trials)


def test_final_credits_only_trials_within_an_epoch_budget():
    run = _run("m", 0, [0.5, None, 0.7, 0.99], [3, 1, 4, 5], budget={"trials": None, "epochs": 10})
    assert [t.number for t in within_budget(run)] == [0, 1, 2]      # 3 + 1 + 4 = 8 <= 10 < 13
    assert final(run) == 0.7
    assert run.best().values == [0.99]                              # the runner's view: every trial
    assert final(_run("m", 0, [None], [1])) is None
    assert final(_run("m", 0, [0.3, 0.2], [1, 1], directions=("minimize",))) == 0.2


def test_summarize_statistics_equal_the_functions_on_the_finals():
    runs = [_run("a", s, [0.5, a], [1, 1]) for s, a in enumerate(A)]
    runs += [_run("b", s, [b, 0.1], [1, 1]) for s, b in enumerate(B)]
    runs += [_run("c", s, [0.9], [1]) for s in range(len(A))]
    res = CompareResult("p", ["accuracy"], ["maximize"], {"trials": 2, "epochs": None}, list(range(10)), runs)
    s = summarize(res)
    assert s["summary"]["a"]["finals"] == A and s["summary"]["b"]["finals"] == B
    assert s["summary"]["a"]["median"] == pytest.approx(float(np.median(A)))
    pair = next(p for p in s["pairwise"] if (p["a"], p["b"]) == ("a", "b"))
    assert pair["p"] == pytest.approx(wilcoxon(A, B)["p"])
    assert pair["p_a_beats_b"] == pytest.approx(prob_beats(A, B))
    assert (pair["wins"], pair["ties"], pair["losses"]) == (8, 1, 1)
    ranks = [s["summary"][m]["mean_rank"] for m in ("a", "b", "c")]
    assert ranks == pytest.approx(average_ranks([A, B, [0.9] * 10]))
    tr = s["trajectories"]["a"]["trials"]
    assert tr["median"] == pytest.approx([0.5, float(np.median(A))])
    assert len(s["trajectories"]["c"]["trials"]["median"]) == 1
    assert math.isclose(sum(ranks), 6.0)


def test_the_best_of_a_multi_objective_run_is_on_its_pareto_front():
    def rec(n, acc, sparsity):
        return TrialRecord(number=n, state="COMPLETE", params={}, values=[acc, sparsity], curve=[acc],
                           nominal_epochs=1, actual_epochs=1, seconds=0.0)

    run = RunResult(problem="p", method="m", seed=0, budget={"trials": 3, "epochs": None},
                    objectives=["accuracy", "sparsity"], directions=["maximize", "maximize"], study_name="s",
                    trials=[rec(0, 0.9, 0.5), rec(1, 0.9, 0.8), rec(2, 0.7, 0.95)])
    # trial 0 ties trial 1 on accuracy but is dominated by it: never "best"
    assert run.best().number == 1
    assert [t.number for t in run.pareto()] == [1, 2]


def test_wilcoxon_min_p_is_the_exact_p_of_a_clean_sweep():
    from hpo_bench.harness.stats import wilcoxon_min_p

    for n in range(1, 13):
        d = [0.01 * (i + 1) for i in range(n)]  # every seed won by a, no two differences equal
        assert wilcoxon_min_p(n) == pytest.approx(sps.wilcoxon(d, method="exact").pvalue, rel=1e-12), n
        assert wilcoxon_min_p(n) == pytest.approx(wilcoxon(d, [0.0] * n)["p"], rel=1e-12), n
        # no other sign pattern of these differences gets lower
        if n <= 8:
            ps = [sps.wilcoxon([x if (mask >> i) & 1 else -x for i, x in enumerate(d)], method="exact").pvalue
                  for mask in range(2 ** n)]
            assert min(ps) == pytest.approx(wilcoxon_min_p(n), rel=1e-12), n
    assert wilcoxon_min_p(0) == 1.0 and wilcoxon_min_p(1) == 1.0
    assert wilcoxon_min_p(4) == 0.125 and wilcoxon_min_p(5) > 0.05 > wilcoxon_min_p(6) == 0.03125
    with pytest.raises(ValueError):
        wilcoxon_min_p(-1)
