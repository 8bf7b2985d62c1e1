"""Honest reruns: an interrupted comparison, rerun with the same command, ends with exactly the
summary of one never interrupted (ARCHITECTURE.md invariant 6). Interrupts land mid-fine-tune, in
every method of the default suite, with an epoch budget (so crediting depends on the order too)."""
from __future__ import annotations

import pytest

from hpo_bench.evaluate import Evaluator
from hpo_bench.harness import Budget, compare, search
from hpo_bench.harness.report import summarize

METHODS = ["grid", "random", "gp", "tpe", "tpe-hyperband"]
BUDGET = Budget(epochs=8)
SEEDS = [0, 1]


class CtrlCAt:
    """The real evaluator, but the ``at``-th evaluation is interrupted (KeyboardInterrupt, as
    Ctrl-C raises) after its first fine-tuning epoch has been reported."""

    def __init__(self, inner: Evaluator, at: int):
        self.inner, self.at, self.calls, self.seed = inner, at, 0, inner.seed

    def evaluate(self, config, reporter=None):
        self.calls += 1
        if self.calls != self.at:
            return self.inner.evaluate(config, reporter)

        def interrupting(epoch, value):
            if reporter is not None:
                reporter(epoch, value)
            raise KeyboardInterrupt

        return self.inner.evaluate(config, interrupting)



@pytest.fixture(scope="module")
def uninterrupted(tiny):
    return summarize(compare(tiny, METHODS, BUDGET, SEEDS, evaluator=Evaluator(tiny)))


@pytest.mark.parametrize("at", [2, 9, 23])  # first trial of grid; within random; within gp/tpe
def test_ctrl_c_then_rerun_equals_uninterrupted(tiny, tmp_path, uninterrupted, at):
    out = tmp_path / "cmp"
    with pytest.raises(KeyboardInterrupt):
        compare(tiny, METHODS, BUDGET, SEEDS, out=out, evaluator=CtrlCAt(Evaluator(tiny), at))
    resumed = compare(tiny, METHODS, BUDGET, SEEDS, out=out, evaluator=Evaluator(tiny))
    assert summarize(resumed) == uninterrupted
    assert all(t.state != "FAIL" for r in resumed.runs for t in r.trials)  # the interrupted one is not charged


@pytest.mark.parametrize("method", ["grid", "tpe-hyperband"])
def test_ctrl_c_mid_trial_is_retried_with_the_same_config(tiny, tmp_path, method):
    db = str(tmp_path / "s.log")
    fresh = search(tiny, method, BUDGET, seed=3)
    with pytest.raises(KeyboardInterrupt):
        search(tiny, method, BUDGET, seed=3, storage=db, evaluator=CtrlCAt(Evaluator(tiny), 3))
    resumed = search(tiny, method, BUDGET, seed=3, storage=db)

    def trials(run):
        return [(t.state, t.params, t.values, t.curve, t.nominal_epochs) for t in run.trials]

    assert trials(resumed) == trials(fresh)


def test_a_resumed_call_times_only_its_own_work(tiny, tmp_path):
    from hpo_bench.harness.timing import timing_of

    out = tmp_path / "cmp"
    compare(tiny, ["random"], Budget(trials=3), [0], out=out)
    again = compare(tiny, ["random"], Budget(trials=3), [0], out=out)  # nothing left to run
    t = timing_of(again, again.wall_seconds)
    assert again.runs[0].evaluated_seconds == 0.0
    assert 0.0 <= t["trial_s"] + t["baseline_s"] <= t["wall_s"] and t["harness_s"] >= 0.0


def test_the_study_marks_credited_trials_and_agrees_with_the_report(tiny, tmp_path):
    import optuna

    from hpo_bench.harness.report import final
    from hpo_bench.harness.storage import open_storage

    db = str(tmp_path / "s.log")
    res = compare(tiny, ["random", "tpe"], BUDGET, [0, 1, 2], db, evaluator=Evaluator(tiny), with_baseline=False)
    crossed = 0
    for run in res.runs:
        study = optuna.load_study(study_name=run.study_name, storage=open_storage(db))
        credited = [t for t in study.trials if t.user_attrs.get("credited")]
        crossed += sum(t.user_attrs.get("credited") is False for t in study.trials)
        spent = sum(t.user_attrs["nominal_epochs"] for t in credited)
        assert spent <= BUDGET.epochs
        best = max((t.value for t in credited if t.state.name == "COMPLETE"), default=None)
        assert best == final(run)
        assert [t.credited for t in run.trials] == [t.user_attrs["credited"] for t in study.trials]
    assert crossed > 0  # the budget-crossing trials are there, and marked
