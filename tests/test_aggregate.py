"""A suite's ranking across problems (harness/report/aggregate.py), each piece against an
independent reference: scipy, a hand computation, or a known distribution."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from hpo_bench.harness.report.aggregate import (aggregate, block_ranks, cd_groups, friedman, holm, iqm,
                                                min_wilcoxon_p, pairwise_wilcoxon, stratified_bootstrap,
                                                wilcoxon_needs)
from hpo_bench.harness.results import CompareResult, RunResult, TrialRecord

# ---------------------------------------------------------------------- Friedman: scipy and by hand
TABLE = [  # rows = blocks, columns = methods (regret: lower is better); no ties within a row
    [0.1, 0.5, 0.9],
    [0.2, 0.4, 0.8],
    [0.3, 0.1, 0.7],
    [0.05, 0.6, 0.2],
]


def test_friedman_matches_scipy_and_the_hand_formula_with_rows_as_blocks():
    got = friedman(TABLE)
    ref = sps.friedmanchisquare(*[[row[j] for row in TABLE] for j in range(3)])
    assert got["statistic"] == pytest.approx(ref.statistic) and got["p"] == pytest.approx(ref.pvalue)
    # by hand: ranks per block [1,2,3] [1,2,3] [2,1,3] [1,3,2] -> R = (5, 8, 11);
    # chi2 = 12 / (n k (k+1)) * sum R^2 - 3 n (k+1) = 0.25 * 210 - 48 = 4.5
    assert got["statistic"] == pytest.approx(4.5)
    assert got["blocks"] == 4 and got["methods"] == 3 and got["df"] == 2
    assert block_ranks(TABLE) == [[1, 2, 3], [1, 2, 3], [2, 1, 3], [1, 3, 2]]
    # the layout matters: blocks as columns is a different test (a bug swapping them is caught)
    swapped = sps.friedmanchisquare(*TABLE)
    assert swapped.statistic != pytest.approx(got["statistic"])


def test_friedman_needs_three_methods():
    assert friedman([[0.1, 0.2], [0.3, 0.1]])["p"] is None


# ---------------------------------------------------------------------- Holm by hand
def test_holm_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


# ---------------------------------------------------------------------- IQM by hand
def test_iqm_by_hand():
    # 8 values: cut 2 at each end of [1, 2, 3, 5, 7, 8, 9, 100] -> mean(3, 5, 7, 8) = 5.75
    assert iqm([5, 1, 9, 3, 7, 100, 2, 8]) == pytest.approx(5.75)
    # 10 values: cut floor(2.5) = 2 -> mean(3..8) = 5.5 (rliable: scipy's trim_mean)
    xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    assert iqm(xs) == pytest.approx(5.5) == pytest.approx(sps.trim_mean(xs, 0.25))
    # 7 values: cut floor(1.75) = 1 -> mean(1, 2, 3, 4, 10) = 4 (cutting round(1.75) = 2 would give 3)
    assert iqm([100, 0, 1, 2, 3, 4, 10]) == pytest.approx(4.0)


# ---------------------------------------------------------------------- the bootstrap's coverage
def _mixture_iqm(offsets):
    """True IQM of the equal mixture of Exp(1) shifted by each offset."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    def cdf(x):
        return sum(1 - math.exp(-(x - o)) for o in offsets if x > o) / len(offsets)

    def pdf(x):
        return sum(math.exp(-(x - o)) for o in offsets if x > o) / len(offsets)

    q25, q75 = (brentq(lambda x, q=q: cdf(x) - q, min(offsets), max(offsets) + 50) for q in (0.25, 0.75))
    return quad(lambda x: x * pdf(x), q25, q75, points=offsets, limit=200)[0] / 0.5


def test_stratified_bootstrap_covers_the_true_iqm_at_about_the_nominal_rate():
    offsets, n, draws = [0.0, 1.0, 3.0], 20, 200
    truth = _mixture_iqm(offsets)
    rng = np.random.default_rng(12345)
    hits = 0
    for d in range(draws):
        strata = [(o + rng.exponential(1.0, n)).tolist() for o in offsets]
        lo, hi = stratified_bootstrap(strata, resamples=1000, seed=d)
        hits += lo <= truth <= hi
    assert 0.9 <= hits / draws <= 0.99, hits / draws


def test_bootstrap_is_seeded_and_resamples_within_strata():
    strata = [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]  # every resample keeps 4 zeros and 4 ones
    assert stratified_bootstrap(strata) == pytest.approx((0.5, 0.5))
    s = [[0.1, 0.5, 0.3], [0.9, 0.2, 0.4, 0.7]]
    assert stratified_bootstrap(s, seed=3) == stratified_bootstrap(s, seed=3)


# ---------------------------------------------------------------------- CD groups on constructed cases
def _pairs(methods, separated):
    sep = {frozenset(p) for p in separated}
    return [{"a": a, "b": b, "separated": frozenset((a, b)) in sep}
            for i, a in enumerate(methods) for b in methods[i + 1:]]


@pytest.mark.parametrize("separated, groups", [
    ([("a", "c"), ("a", "d"), ("b", "d")], [["a", "b"], ["b", "c"], ["c", "d"]]),
    ([("a", "d")], [["a", "b", "c"], ["b", "c", "d"]]),              # {c, d} is inside {b, c, d}: no bar
    ([], [["a", "b", "c", "d"]]),
    ([("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")], []),
    ([("b", "c")], [["a", "b"], ["c", "d"]]),  # a bar is a run on the rank axis: b-c breaks it
])
def test_cd_groups_on_constructed_cases(separated, groups):
    order = ["a", "b", "c", "d"]
    assert cd_groups(order, _pairs(order, separated)) == groups


# ---------------------------------------------------------------------- Wilcoxon: scipy, power
def test_pairwise_wilcoxon_matches_scipy_and_signs_the_effect():
    table = [[0.1, 0.3], [0.2, 0.25], [0.0, 0.4], [0.5, 0.45], [0.3, 0.3], [0.05, 0.6], [0.2, 0.9]]
    (p,) = pairwise_wilcoxon(["a", "b"], table)
    d = [r[1] - r[0] for r in table]
    ref = sps.wilcoxon([x for x in d if x != 0], alternative="two-sided")  # zero differences dropped
    assert p["p"] == pytest.approx(ref.pvalue) and p["nonzero"] == 6 and p["ties"] == 1
    assert (p["a_better"], p["b_better"]) == (5, 1)
    # by hand: |d| = .2 .05 .4 .05 .55 .7 -> ranks 3, 1.5, 4, 1.5(neg), 5, 6: W+ = 19.5, W- = 1.5
    assert p["rank_biserial"] == pytest.approx((19.5 - 1.5) / 21)
    assert p["p_holm"] == p["p"]  # one pair: nothing to adjust


@pytest.mark.parametrize("n", [4, 5, 6, 8, 10, 14])
def test_the_power_statement_against_scipy(n):
    all_one_side = sps.wilcoxon(list(range(1, n + 1)), method="exact")
    assert min_wilcoxon_p(n) == pytest.approx(all_one_side.pvalue)
    need = wilcoxon_needs(n)
    if 2 / 2 ** n >= 0.05:
        assert need is None
        return
    # the fewest on one side: with the others the smallest, p < 0.05 at `need`, not at need - 1
    def p_with(k_other):
        return sps.wilcoxon([-(i + 1) if i < k_other else i + 1 for i in range(n)], method="exact").pvalue
    assert p_with(n - need) < 0.05
    assert p_with(n - need + 1) >= 0.05


# ---------------------------------------------------------------------- a suite: normalized regret by hand
def _run(problem, method, seed, values, direction, objective, budget=2):
    trials = [TrialRecord(number=i, state="COMPLETE", params={}, values=[v], curve=[], nominal_epochs=1,
                          actual_epochs=1, seconds=0.0) for i, v in enumerate(values)]
    return RunResult(problem=problem, method=method, seed=seed, budget={"trials": budget, "epochs": None},
                     objectives=[objective], directions=[direction], study_name="", trials=trials)


def _cmp(problem, objective, direction, default, runs):
    return CompareResult(problem=problem, objectives=[objective], directions=[direction],
                         budget={"trials": 2, "epochs": None}, seeds=[0, 1],
                         runs=[_run(problem, m, s, vals, direction, objective) for (m, s), vals in runs.items()],
                         baseline={"config": {}, "values": {objective: default}})


def _suite():
    # acc (maximize; default 0.80): x finds 0.90 and 0.85, y 0.95 and 0.80 -> best known 0.95
    acc = _cmp("acc", "accuracy", "maximize", 0.80, {
        ("x", 0): [0.85, 0.90], ("x", 1): [0.85, 0.70], ("y", 0): [0.95, 0.60], ("y", 1): [0.80, 0.80]})
    # loss (minimize; default 2.0): x 1.0 and 1.5, y 2.5 and 1.25 -> best known 1.0
    loss = _cmp("loss", "val_loss", "minimize", 2.0, {
        ("x", 0): [1.0, 3.0], ("x", 1): [1.5, 1.6], ("y", 0): [2.5, 2.6], ("y", 1): [1.9, 1.25]})
    return [{"name": "acc", "result": acc}, {"name": "loss", "result": loss}]


def test_normalized_regret_by_hand_with_opposite_directions():
    agg = aggregate(_suite(), resamples=200)
    acc, loss = agg["problems"]
    assert (acc["default"], acc["best_known"], loss["default"], loss["best_known"]) == (0.8, 0.95, 2.0, 1.0)
    # (value - best) / (default - best)
    assert agg["regret"]["x"]["acc"] == pytest.approx([1 / 3, 2 / 3])   # (0.90-0.95)/(-0.15), (0.85-0.95)/(-0.15)
    assert agg["regret"]["y"]["acc"] == pytest.approx([0.0, 1.0])
    assert agg["regret"]["x"]["loss"] == pytest.approx([0.0, 0.5])      # (1.5-1)/(2-1)
    assert agg["regret"]["y"]["loss"] == pytest.approx([1.5, 0.25])     # worse than the default: > 1, kept
    assert agg["blocks"] == 4
    # blocks: acc0 y, acc1 x, loss0 x, loss1 y best -> both mean rank 1.5
    assert agg["ranking"]["mean_rank"] == {"x": 1.5, "y": 1.5}
    assert agg["iqm"]["methods"]["y"]["worse_than_default"] == 1
    # best-so-far AUC of x on acc seed 0: regret 1 on [0, .5), 2/3 on [.5, 1) -> 0.5 + 1/3
    assert agg["anytime"]["auc"]["x"]["acc"][0] == pytest.approx(0.5 + 1 / 3)
    for p in agg["ranking"]["pairwise"]:
        assert {"test", "alternative", "zero_method", "correction", "blocks", "p", "p_holm"} <= set(p)


def test_best_known_from_the_suite_file_allows_negative_regret_and_says_who_beat_it():
    suite = _suite()
    suite[1]["best_known"] = 1.25
    agg = aggregate(suite, resamples=200)
    loss = agg["problems"][1]
    assert loss["best_known_source"] == "suite file"
    assert agg["regret"]["x"]["loss"] == pytest.approx([(1.0 - 1.25) / 0.75, (1.5 - 1.25) / 0.75])
    assert loss["beats_best_known"] == [{"method": "x", "seed": 0, "value": 1.0}]


def test_a_default_no_worse_than_the_best_known_is_left_out_with_its_reason():
    suite = _suite()
    suite[0]["result"].baseline = {"config": {}, "values": {"accuracy": 0.97}}
    agg = aggregate(suite, resamples=200)
    assert not agg["problems"][0]["included"] and "no scale" in agg["problems"][0]["reason"]
    assert list(agg["regret"]["x"]) == ["loss"] and agg["blocks"] == 2


def test_one_comparison_suite_aggregates_over_its_seeds_and_plots(tmp_path):
    from hpo_bench.harness.report.markdown import aggregate_markdown
    from hpo_bench.harness.report.plots import plot_anytime, plot_cd, plot_iqm

    agg = aggregate(_suite()[1:], resamples=200)
    assert agg["blocks"] == 2 and agg["ranking"]["friedman"]["p"] is None   # 2 methods: no Friedman
    assert agg["ranking"]["power"]["needs_one_side"] is None                # 2 blocks can never reach 0.05
    plots = {k: f(agg, tmp_path / f"{k}.png") for k, f in (("cd", plot_cd), ("iqm", plot_iqm),
                                                            ("anytime", plot_anytime))}
    assert all(p.stat().st_size > 0 for p in plots.values())
    md = "\n".join(aggregate_markdown(agg, plots))
    assert "With n = 2 blocks" in md and "no difference can reach" in md and "![critical" in md


# ---------------------------------------------------------------------- the suite file's key
def test_load_suite_reads_best_known(tmp_path, tiny_registry):
    from hpo_bench.harness.suite import load_suite

    f = tmp_path / "s.toml"
    text = 'seeds = 2\n[[comparison]]\nproblem = "tiny"\nmethods = ["random"]\nbudget = 3\n'
    f.write_text(text + "best_known = 0.97\n")
    assert load_suite(f).comparisons[0].best_known == 0.97
    f.write_text(text)
    assert load_suite(f).comparisons[0].best_known is None
    f.write_text(text + 'best_known = "high"\n')
    with pytest.raises(ValueError, match="best_known must be a number"):
        load_suite(f)


def test_a_multi_objective_comparison_enters_by_its_hypervolume():
    """Accuracy and sparsity (both maximized, reference point (0, 0)): each run's value is the
    hypervolume of its trials, the default's that of its one point; worked by hand."""
    def run(method, seed, points):
        trials = [TrialRecord(number=i, state="COMPLETE", params={}, values=list(p), curve=[], nominal_epochs=1,
                              actual_epochs=1, seconds=0.0) for i, p in enumerate(points)]
        return RunResult(problem="mo", method=method, seed=seed, budget={"trials": 2, "epochs": None},
                         objectives=["accuracy", "sparsity"], directions=["maximize", "maximize"], study_name="",
                         trials=trials)

    res = CompareResult(problem="mo", objectives=["accuracy", "sparsity"], directions=["maximize", "maximize"],
                        budget={"trials": 2, "epochs": None}, seeds=[0, 1],
                        runs=[run("a", 0, [(0.8, 0.5)]), run("a", 1, [(0.6, 0.9)]),
                              run("b", 0, [(0.5, 0.5), (0.4, 0.9)]), run("b", 1, [(0.9, 0.2)])],
                        baseline={"config": {}, "values": {"accuracy": 0.3, "sparsity": 0.5}})
    agg = aggregate([{"name": "mo", "result": res}], resamples=100)
    (p,) = agg["problems"]
    assert p["included"] and p["objective"] == "hypervolume(accuracy, sparsity)" and p["direction"] == "maximize"
    # hypervolumes: a0 0.40, a1 0.54, b0 0.25 + 0.4 * 0.4 = 0.41, b1 0.18; default 0.15; best known 0.54
    assert p["default"] == pytest.approx(0.15) and p["best_known"] == pytest.approx(0.54)
    expect = {"a": [0.14 / 0.39, 0.0], "b": [0.13 / 0.39, 0.36 / 0.39]}
    for m, vals in expect.items():
        assert agg["regret"][m]["mo"] == pytest.approx(vals)


def test_the_console_shows_the_ranking_in_rank_order():
    from hpo_bench.harness.report.text import aggregate_text

    agg = aggregate(_suite(), resamples=100)
    text = aggregate_text(agg)
    rows = [line.split()[0] for line in text.splitlines()[3:3 + len(agg["methods"])]]
    assert rows == agg["ranking"]["order"] and "2 blocks" not in text and f"{agg['blocks']} blocks" in text
    assert aggregate_text(None) == ""
