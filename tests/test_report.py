"""Comparisons end to end on the tiny problem: equal budgets, resume = uninterrupted, the report."""
from __future__ import annotations

import json

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


def test_report_errors_are_one_line(tmp_path, capsys):
    from hpo_bench.cli import main

    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpo-bench: error:") and err.count("\n") == 1
    (tmp_path / "compare.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
