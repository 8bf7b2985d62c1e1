"""Comparisons end to end on the tiny problem: equal budgets, resume = uninterrupted, the report."""
from __future__ import annotations

import json
import math

import pytest

from hpo_bench.harness import Budget, compare, search
from hpo_bench.harness.report import load_compare, summarize, within_budget, write_report
from hpo_bench.harness.stats import hypervolume_2d
from hpo_bench.methods import METHODS

SINGLE = [m for m, spec in METHODS.items() if spec.supports(False)]


def _timeless(summary):
    return json.loads(json.dumps(summary, default=str))


def test_equal_trial_budget_for_every_method(tiny):
    methods = [m for m in SINGLE if m != "gp"]  # gp: in the resume test (its fit is slow, not its budget)
    res = compare(tiny, methods, Budget(trials=5), seeds=[0, 1], with_baseline=False)
    assert {json.dumps(r.budget) for r in res.runs} == {json.dumps({"trials": 5, "epochs": None})}
    assert sorted({r.method for r in res.runs}) == sorted(methods)
    for r in res.runs:
        want = len(tiny.space.grid(5)) if r.method == "grid" else 5
        assert len(r.trials) == want, r.method
        assert len(within_budget(r)) == len(r.trials)


def _grid_cost(problem, b):
    return sum(p["epochs"] for p in problem.space.grid(b))


def test_grid_for_an_epoch_budget_is_the_largest_that_fits(tiny):
    for cap in (1, 4, 9, 20):
        b = Budget(epochs=cap).trials_for(tiny.space, tiny.fixed, budget_matched=True)
        assert b == 1 or _grid_cost(tiny, b) <= cap
        assert all(_grid_cost(tiny, b2) > cap for b2 in range(b + 1, cap + 1))
    assert Budget(trials=3, epochs=100).trials_for(tiny.space, tiny.fixed, budget_matched=True) == 3


def test_equal_epoch_budget_for_every_method(tiny):
    cap = 9
    res = compare(tiny, ["grid", "random", "tpe", "tpe-hyperband"], Budget(epochs=cap), seeds=[0, 1],
                  with_baseline=False)
    for r in res.runs:
        assert sum(t.nominal_epochs for t in within_budget(r)) <= cap, r.method
        if r.method == "grid":                      # the largest grid that fits, run whole, not cut
            b = Budget(epochs=cap).trials_for(tiny.space, tiny.fixed, budget_matched=True)
            assert sorted(map(repr, (t.params for t in r.trials))) == sorted(map(repr, tiny.space.grid(b)))
            assert r.nominal_epochs <= cap
        else:                                       # ran until spent; only the last trial crosses it
            assert r.nominal_epochs >= cap
            assert r.nominal_epochs - r.trials[-1].nominal_epochs < cap


def test_grid_rerun_adds_no_duplicate_point(tiny, tmp_path):
    db = str(tmp_path / "g.db")
    first = search(tiny, "grid", Budget(trials=7), seed=0, storage=db)
    assert len(first.trials) == len(tiny.space.grid(7)) < 7
    again = search(tiny, "grid", Budget(trials=7), seed=0, storage=db)
    assert [t.params for t in again.trials] == [t.params for t in first.trials]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("budget, methods", [
    (Budget(trials=4), ["grid", "random", "gp", "tpe-hyperband"]),
    (Budget(epochs=6), ["random", "tpe-hyperband"]),
], ids=["trials", "epochs"])
def test_resumed_compare_summarises_as_uninterrupted(tiny, tmp_path, budget, methods):
    seeds = [0, 1]
    whole = compare(tiny, methods, budget, seeds, out=tmp_path / "whole", with_baseline=False)
    seen = []

    def stop_after(method, seed, rec, n=5):
        seen.append(rec)
        if len(seen) == n:
            raise Interrupt
    with pytest.raises(Interrupt):
        compare(tiny, methods, budget, seeds, out=tmp_path / "cut", with_baseline=False, on_trial=stop_after)
    partial = load_compare(tmp_path / "cut")
    assert sum(len(r.trials) for r in partial.runs) < sum(len(r.trials) for r in whole.runs)
    resumed = compare(tiny, methods, budget, seeds, out=tmp_path / "cut", with_baseline=False)
    assert _timeless(summarize(resumed)) == _timeless(summarize(whole))
    assert [[t.params for t in r.trials] for r in resumed.runs] == [[t.params for t in r.trials] for r in whole.runs]


def test_report_files_and_summary(tiny, tmp_path):
    out = tmp_path / "cmp"
    res = compare(tiny, ["random", "tpe"], Budget(trials=3), seeds=[0, 1, 2], out=out)
    summary = write_report(out)
    for name in ("report.md", "summary.json", "trajectories.png", "finals.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "pareto.png").exists()
    assert (out / "trajectories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text()) == _timeless(summary)
    assert _timeless(summarize(load_compare(out))) == _timeless(summarize(res))
    md = (out / "report.md").read_text()
    assert "random vs tpe" in md and "![best so far](trajectories.png)" in md
    finals = summary["summary"]["random"]["finals"]
    assert finals == [r.best().values[0] for r in res.runs if r.method == "random"]
    assert (out / "time_to_target.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![time to target](time_to_target.png)" in md
    assert set(summary["time_to_target"]["methods"]) == {"random", "tpe"}
    # provenance: compare.json records it when the comparison ran, summary.json carries it on
    recorded = json.loads((out / "compare.json").read_text())["provenance"]
    assert set(recorded) >= {"git_commit", "versions", "device", "n_workers", "workers"}
    assert recorded["device"] == "cpu" and recorded["workers"] == 1
    assert recorded["n_workers"] == {m: {str(s): 1 for s in (0, 1, 2)} for m in ("random", "tpe")}
    assert set(recorded["versions"]) == {"torch", "optuna", "scikit-optimize", "numpy", "scipy", "python",
                                         "hpo_bench"}
    assert summary["provenance"] == recorded and list(summary)[-1] == "provenance"
    d = json.loads((out / "compare.json").read_text())
    d["provenance"]["git_commit"] = "from-the-run"
    (out / "compare.json").write_text(json.dumps(d))
    assert write_report(out)["provenance"] == {**recorded, "git_commit": "from-the-run"}  # the run's, not now's


def test_multi_objective_hypervolume_and_pareto_plot(tiny_mo, tmp_path):
    out = tmp_path / "mo"
    res = compare(tiny_mo, ["random-mo", "nsga2"], Budget(trials=5), seeds=[0, 1], out=out, with_baseline=False)
    summary = write_report(out)
    assert (out / "pareto.png").stat().st_size > 0
    assert summary["hv_reference"] == [0.0, 0.0]
    for r in res.runs:
        hv = hypervolume_2d([t.values for t in r.pareto()], [0.0, 0.0], r.directions)
        assert summary["summary"][r.method]["finals"][[0, 1].index(r.seed)] == pytest.approx(hv)
        curve = summary["trajectories"][r.method]["trials"]["median"]
        assert all(a <= b + 1e-12 for a, b in zip(curve, curve[1:]))   # hypervolume never shrinks
    assert (out / "time_to_target.png").stat().st_size > 0
    tables = _md_tables((out / "report.md").read_text(), "## Pareto fronts")
    assert list(tables) == ["random-mo", "nsga2"]
    for r in res.runs:
        rows = [row for row in tables[r.method][1] if row[0] == str(r.seed)]
        assert len(rows) == len(summary["fronts"][r.method][str(r.seed)]) == len(r.pareto())


def test_report_errors_are_one_line(tmp_path, capsys):
    from hpo_bench.cli import main

    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpo-bench: error:") and err.count("\n") == 1
    (tmp_path / "compare.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2


# ---------------------------------------------------------------------- hand-made comparisons
def _trial(n, value, epochs):
    """One trial: ``value`` a number or a tuple of numbers (COMPLETE), 'P' (PRUNED) or 'F' (FAIL)."""
    from hpo_bench.harness.results import TrialRecord

    state = {"P": "PRUNED", "F": "FAIL"}[value] if isinstance(value, str) else "COMPLETE"
    values = None if state != "COMPLETE" else (list(value) if isinstance(value, tuple) else [value])
    return TrialRecord(number=n, state=state, params={"n": n}, values=values, curve=[], nominal_epochs=epochs,
                       actual_epochs=epochs, seconds=0.0)


def _hand(runs, budget, objectives=("accuracy",), directions=("maximize",)):
    """A comparison from ``{method: {seed: [(value, nominal epochs), ...]}}``."""
    from hpo_bench.harness.results import CompareResult, RunResult

    seeds = sorted({s for per in runs.values() for s in per})
    res = CompareResult(problem="hand", objectives=list(objectives), directions=list(directions),
                        budget=budget, seeds=seeds)
    for m, per in runs.items():
        for s, trials in per.items():
            res.runs.append(RunResult(problem="hand", method=m, seed=s, budget=budget, objectives=list(objectives),
                                      directions=list(directions), study_name=f"{m}-{s}",
                                      trials=[_trial(i, v, e) for i, (v, e) in enumerate(trials)]))
    return res


def _hand_so():
    # an epoch budget of 10, maximised: c's seed 1 never completes a trial; a's seed 2 finds 0.95 only
    # in the trial that crosses the budget (run, not credited)
    return _hand({
        "a": {0: [(0.5, 2), (0.8, 3), (0.85, 2), (0.9, 3)], 1: [(0.7, 4), ("P", 1), (0.88, 4), (0.6, 2)],
              2: [(0.6, 3), (0.7, 3), (0.75, 3), (0.95, 3)]},
        "b": {0: [(0.9, 2), (0.91, 2), ("F", 1), (0.5, 5)], 1: [(0.86, 1), (0.92, 2), (0.6, 3), (0.7, 4)],
              2: [(0.4, 2), (0.89, 2), (0.9, 2), (0.3, 2), (0.93, 2)]},
        "c": {0: [(0.3, 5), (0.96, 5)], 1: [("P", 4), ("F", 4), ("P", 4)],
              2: [(0.2, 3), (0.5, 3), (0.7, 3), (0.8, 3)]},
    }, {"trials": None, "epochs": 10})


def _hand_min():
    # a trial budget, minimised (a loss): the target lies above the best
    return _hand({
        "a": {0: [(2.0, 1), (1.5, 2), (1.2, 1)], 1: [(1.8, 2), (1.0, 1), (1.1, 1)]},
        "b": {0: [(1.01, 3), (3.0, 1), (0.99, 1)], 1: [(2.5, 1), ("P", 1), (2.0, 2)]},
    }, {"trials": 3, "epochs": None}, objectives=("loss",), directions=("minimize",))


def _hand_mo():
    # two objectives, both maximised (hypervolume against the reference (0, 0)); y's seed 0 has two
    # trials on the same point, both on its front
    return _hand({
        "x": {0: [((0.9, 0.5), 2), ((0.5, 0.9), 2), ((0.8, 0.8), 3), ((0.7, 0.6), 1)],
              1: [((0.95, 0.3), 2), ("P", 1), ((0.6, 0.7), 2), ((0.9, 0.5), 2)]},
        "y": {0: [((0.2, 0.2), 1), ((0.85, 0.85), 4), ((0.85, 0.85), 1), ((0.9, 0.7), 2)],
              1: [((0.6, 0.6), 3), ((0.7, 0.4), 3), ((0.4, 0.95), 1), ((0.99, 0.1), 3)]},
    }, {"trials": 4, "epochs": None}, objectives=("accuracy", "sparsity"), directions=("maximize", "maximize"))


def _brute_credited(run):
    """Credited trials, by the definition: under an epoch budget, those whose cumulative nominal epochs
    stay within it (a trial budget: all)."""
    cap = run.budget.get("epochs")
    return [t for i, t in enumerate(run.trials)
            if cap is None or sum(u.nominal_epochs for u in run.trials[:i + 1]) <= cap]


def _brute_metric(run, trials):
    done = [t.values for t in trials if t.state == "COMPLETE"]
    if len(run.objectives) > 1:
        return hypervolume_2d([v[:2] for v in done], [0.0, 0.0], run.directions[:2])
    vals = [v[0] for v in done]
    if not vals:
        return None
    return max(vals) if run.directions[0] == "maximize" else min(vals)


def _brute_median(xs):
    import statistics

    med = statistics.median([math.inf if x is None else x for x in xs])
    return None if math.isinf(med) else med


@pytest.mark.parametrize("make", [_hand_so, _hand_min, _hand_mo], ids=["epochs-max", "trials-min", "multi"])
@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_time_to_target_matches_brute_force(make, fraction):
    from hpo_bench.harness.report.summary import time_to_target

    res = make()
    maximize = len(res.objectives) > 1 or res.directions[0] == "maximize"
    finals = [_brute_metric(r, _brute_credited(r)) for r in res.runs]
    best = (max if maximize else min)(v for v in finals if v is not None)
    target = fraction * best if maximize else (2 - fraction) * best  # every hand-made value is positive
    got = time_to_target(res, fraction)
    assert got["fraction"] == fraction and got["best"] == pytest.approx(best)
    assert got["target"] == pytest.approx(target)
    assert got["direction"] == ("maximize" if maximize else "minimize")
    assert list(got["methods"]) == list(res.by_method())
    for m, runs in res.by_method().items():
        epochs, trials = [], []
        for r in sorted(runs, key=lambda r: r.seed):
            credited = _brute_credited(r)
            hit = None
            for k in range(1, len(credited) + 1):
                v = _brute_metric(r, credited[:k])
                if v is not None and (v >= target - 1e-12 if maximize else v <= target + 1e-12):
                    hit = k
                    break
            trials.append(hit)
            epochs.append(sum(t.nominal_epochs for t in credited[:hit]) if hit else None)
        d = got["methods"][m]
        assert d["seeds"] == sorted(r.seed for r in runs)
        assert d["epochs"] == epochs and d["trials"] == trials, (m, fraction)
        assert d["reached"] == sum(e is not None for e in epochs)
        assert d["median_epochs"] == _brute_median(epochs) and d["median_trials"] == _brute_median(trials)


def test_time_to_target_by_hand():
    from hpo_bench.harness.report.summary import time_to_target

    got = time_to_target(_hand_so(), 0.9)  # best 0.96 (c, seed 0): the target 0.864
    assert got["best"] == 0.96 and got["target"] == pytest.approx(0.864)
    assert got["methods"]["a"] == {"seeds": [0, 1, 2], "epochs": [10, 9, None], "trials": [4, 3, None],
                                   "reached": 2, "median_epochs": 10.0, "median_trials": 4.0}
    assert got["methods"]["b"]["epochs"] == [2, 3, 4] and got["methods"]["b"]["median_epochs"] == 3.0
    assert got["methods"]["c"]["epochs"] == [10, None, None] and got["methods"]["c"]["median_epochs"] is None
    low = time_to_target(_hand_min(), 0.9)  # best loss 0.99: the target 1.089, above it
    assert low["target"] == pytest.approx(1.089)
    assert low["methods"]["a"]["epochs"] == [None, 3] and low["methods"]["b"]["epochs"] == [3, None]


# summarize()'s keys before time to target was added: the new keys only come after them.
_OLD_KEYS = ["problem", "objectives", "directions", "budget", "seeds", "methods", "metric", "metric_direction",
             "summary", "pairwise", "trajectories", "baseline"]


@pytest.mark.parametrize("make, name", [(_hand_so, "epochs-max"), (_hand_min, "trials-min"), (_hand_mo, "multi")],
                         ids=["epochs-max", "trials-min", "multi"])
def test_summary_keeps_every_earlier_key(make, name):
    res = make()
    summary = _timeless(summarize(res))
    old = [k for k in summary if k not in ("time_to_target", "front_trials", "front_hypervolumes",
                                            "baseline_hypervolume", "best_found")]
    assert old == _OLD_KEYS + (["hv_reference", "fronts"] if name == "multi" else [])  # the same keys, in order
    assert list(summary)[:len(old)] == old  # new keys only after the old ones
    assert summary["time_to_target"]["fraction"] == 0.99
    assert [lev["fraction"] for lev in summary["time_to_target"]["levels"]] == [0.9, 0.95, 0.99]


def _brute_front(run):
    done = [t for t in _brute_credited(run) if t.state == "COMPLETE"]
    return sorted((t for t in done if not any(all(a >= b for a, b in zip(u.values, t.values)) and u.values != t.values
                                              for u in done)), key=lambda t: t.values)


def _md_tables(md, heading):
    """The rows of the code-block table under each ``### method`` heading of section ``heading``."""
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
    out = {}
    for block in section.split("\n### ")[1:]:
        name = block.split("\n", 1)[0].strip()
        table = block.split("```\n", 1)[1].split("\n```", 1)[0].splitlines()
        out[name] = (table[0].split(), [line.split() for line in table[2:]])
    return out


def test_multi_objective_report_has_pareto_tables_and_says_hypervolume(tmp_path):
    res = _hand_mo()
    summary = write_report(tmp_path, res)
    for name in ("trajectories.png", "time_to_target.png", "finals.png", "pareto.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (tmp_path / "report.md").read_text()
    tables = _md_tables(md, "## Pareto fronts")
    assert list(tables) == ["x", "y"]
    for r in res.runs:
        headers, rows = tables[r.method]
        assert headers == ["seed", "trial", "accuracy", "sparsity"]
        mine = [row for row in rows if row[0] == str(r.seed)]
        front = _brute_front(r)
        assert len(mine) == len(front), (r.method, r.seed)
        assert [int(row[1]) for row in mine] == [t.number for t in front]
        assert [[float(c) for c in row[2:]] for row in mine] == [pytest.approx(t.values, abs=1e-4) for t in front]
        assert summary["front_trials"][r.method][str(r.seed)] == [t.number for t in front]
        assert summary["front_hypervolumes"][r.method][str(r.seed)] == pytest.approx(
            hypervolume_2d([t.values for t in front], [0.0, 0.0], r.directions))
    assert len(tables["y"][1]) == 3 + 4  # seed 0: two trials on one point, both kept; seed 1: all four
    # hypervolume named wherever the numbers are hypervolumes
    assert "HV median" in md and "P(HV(a) > HV(b))" in md and "hypervolume(accuracy, sparsity)" in md
    assert "## Time to target" in md and "hypervolume any seed" in md
    assert "Untuned default" not in md  # no baseline given


def test_single_objective_report_has_time_to_target_table(tmp_path):
    res = _hand_so()
    summary = write_report(tmp_path, res)
    assert (tmp_path / "time_to_target.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "pareto.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "## Pareto fronts" not in md and "HV" not in md
    assert "![time to target](time_to_target.png)" in md
    block = md.split("## Time to target", 1)[1].split("```\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert block[0].split() == ["method", "0.9:", "seeds", "0.9:", "epochs", "0.95:", "seeds", "0.95:", "epochs",
                                "0.99:", "seeds", "0.99:", "epochs"]
    rows = {line.split()[0]: line.split()[1:] for line in block[2:]}
    assert list(rows) == ["a", "b", "c"]
    for m, cells in rows.items():
        for i, lev in enumerate(summary["time_to_target"]["levels"]):
            d = lev["methods"][m]
            assert cells[2 * i] == f"{d['reached']}/3"
            assert cells[2 * i + 1] == ("-" if d["median_epochs"] is None else f"{d['median_epochs']:g}")
    assert rows["b"][:2] == ["3/3", "3"]


@pytest.mark.parametrize("make", [_hand_so, _hand_min], ids=["max", "min"])
def test_best_found_is_the_best_credited_trial_of_any_run(make, tmp_path):
    res = make()
    done = [(r, t) for r in res.runs for t in _brute_credited(r) if t.state == "COMPLETE"]
    sign = 1 if res.directions[0] == "maximize" else -1
    top = max(sign * t.values[0] for _, t in done)
    best = summarize(res)["best_found"]
    assert sign * best["values"][res.objectives[0]] == top
    assert any(t.params == best["params"] and r.method == best["method"] and r.seed == best["seed"]
               for r, t in done if sign * t.values[0] == top)
    write_report(tmp_path, res)
    assert "Best found:" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------------- what a p is, and how small it can get
_OLD_PAIR_KEYS = ["a", "b", "wins", "losses", "ties", "p", "rank_biserial", "statistic", "p_a_beats_b"]


def _sweep(n_seeds, methods=("a", "b")):
    """``a`` better than ``b`` on every one of ``n_seeds`` seeds, by different margins."""
    return _hand({m: {s: [(0.9 - 0.01 * s - (0.1 if m != methods[0] else 0.0) * (1 + s / 10), 1)]
                      for s in range(n_seeds)} for m in methods},
                 {"trials": 1, "epochs": None})


@pytest.mark.parametrize("make", [_hand_so, _hand_min, _hand_mo], ids=["epochs-max", "trials-min", "multi"])
def test_pairwise_rows_say_what_test_they_hold(make):
    from hpo_bench.harness.stats import wilcoxon

    summary = _timeless(summarize(make()))
    for row in summary["pairwise"]:
        assert list(row)[:len(_OLD_PAIR_KEYS)] == _OLD_PAIR_KEYS     # old keys keep their place
        assert {k: row[k] for k in ("test", "alternative", "correction")} == {
            "test": "Wilcoxon signed-rank", "alternative": "two-sided", "correction": "none"}
        assert "dropped" in row["zero_differences"] and "wilcox" in row["zero_differences"]
        goods = {m: summary["summary"][m]["finals"] for m in (row["a"], row["b"])}
        paired = [(x, y) for x, y in zip(goods[row["a"]], goods[row["b"]]) if x is not None and y is not None]
        assert row["n"] == len(paired)
        sign = -1 if summary["metric_direction"] == "minimize" else 1
        w = wilcoxon([sign * x for x, _ in paired], [sign * y for _, y in paired])
        assert row["n_nonzero"] == w["n_nonzero"] and row["p"] == pytest.approx(w["p"])
        assert row["min_p"] == pytest.approx(2 / 2 ** row["n"])


@pytest.mark.parametrize("n_seeds, reachable", [(4, False), (5, False), (6, True), (8, True)])
def test_the_smallest_possible_p_is_said_under_the_pairwise_table(n_seeds, reachable, tmp_path):
    from hpo_bench.harness.report.text import pairwise_table

    res = _sweep(n_seeds)
    summary = write_report(tmp_path, res)
    (pair,) = summary["pairwise"]
    assert (pair["wins"], pair["losses"]) == (n_seeds, 0)
    assert pair["min_p"] == 2 / 2 ** n_seeds == pytest.approx(pair["p"])   # a clean sweep reaches it
    text = pairwise_table(summary)
    note = text.splitlines()[-1]
    assert note.startswith(f"with {n_seeds} paired seeds the smallest possible p") and f"{2 / 2 ** n_seeds:.3g}" in note
    assert ("no difference can reach p < 0.05" in note) == (not reachable)
    assert ("not that they are equal" in note) == reachable
    assert note not in pairwise_table(summary, note=False)
    md = (tmp_path / "report.md").read_text()
    block_end = md.index("a vs b")
    inside, after = md[block_end:].split("```", 1)
    assert "smallest possible p" not in inside          # under the table, not in its code block
    assert after.lstrip("\n").startswith(f"With {n_seeds} paired seeds the smallest possible p")
    assert "no correction for the number of pairs" in md


def test_no_pairwise_note_without_a_pair():
    from hpo_bench.harness.report.text import pairwise_note, pairwise_table

    summary = summarize(_hand({"a": {0: [(0.9, 1)], 1: [(0.8, 1)]}}, {"trials": 1, "epochs": None}))
    assert summary["pairwise"] == [] and pairwise_note(summary) == ""
    assert "smallest possible p" not in pairwise_table(summary)


def test_a_tied_seed_is_in_n_but_not_in_the_test():
    res = _sweep(7)
    tied = next(r for r in res.runs if r.method == "b" and r.seed == 3)
    tied.trials[0].values = list(next(r for r in res.runs if r.method == "a" and r.seed == 3).trials[0].values)
    (pair,) = summarize(res)["pairwise"]
    assert (pair["wins"], pair["ties"], pair["losses"]) == (6, 1, 0)
    assert pair["n"] == 7 and pair["n_nonzero"] == 6 and pair["min_p"] == 2 / 2 ** 7
    assert pair["p"] == pytest.approx(2 / 2 ** 6)        # the tie is dropped: the sweep of the other six
