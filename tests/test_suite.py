"""Suite files: the shipped ones load, bad ones fail in one line (exit 2), a tiny suite runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo_bench.cli import main
from hpo_bench.harness.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "benchmarks" / "suites").glob("*.toml"))


pytestmark = pytest.mark.usefixtures("tiny_registry")  # conftest.py: the tiny problems by name


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_shipped_suites_load(path):
    suite = load_suite(path)
    assert suite.comparisons
    for c in suite.comparisons:
        assert len(c.seeds) >= 6          # enough for a paired test to reach p < 0.05
        if not c.problem_args:            # (load_suite checked problem_args against the factory)
            assert c.make_problem().name == c.problem


def test_default_suite_is_what_make_run_runs():
    suite = load_suite(ROOT / "benchmarks" / "suites" / "default.toml")
    (c,) = suite.comparisons
    assert c.problem == "digits-mlp"
    assert c.methods == ["grid", "random", "gp", "tpe", "tpe-hyperband"]
    assert c.budget.epochs is not None
    assert "benchmarks/suites/default.toml" in (ROOT / "Makefile").read_text()


GOOD = '''
seeds = 2
threads = 1
[[comparison]]
problem = "tiny"
methods = ["random", "tpe"]
budget = { trials = 3 }
'''


@pytest.mark.parametrize("text, message", [
    (GOOD.replace('"tiny"', '"nope"'), "unknown problem 'nope'"),
    (GOOD.replace('"tpe"]', '"tpx"]'), "unknown method 'tpx'"),
    (GOOD.replace('budget = { trials = 3 }', ''), "missing key 'budget'"),
    (GOOD.replace('problem = "tiny"', ''), "missing key 'problem'"),
    (GOOD.replace('seeds = 2', ''), "missing key 'seeds'"),
    (GOOD.replace('trials = 3', 'trials = 0'), "budget trials must be an integer from 1"),
    (GOOD.replace('trials = 3', 'trials = [4]'), "budget trials must be an integer from 1"),
    (GOOD.replace('problem = "tiny"', 'problem = ["tiny"]', 1), "unknown problem ['tiny']"),
    (GOOD.replace('methods = ["random", "tpe"]', 'methods = ["random", "random"]', 1), "methods repeat"),
    (GOOD.replace('trials = 3', 'epoch = 3'), "unknown budget key 'epoch'"),
    (GOOD.replace('seeds = 2', 'seeds = 2\nseed = 3'), "unknown key 'seed'"),
    (GOOD + 'problem_args = { width = 3 }\n', "takes no argument 'width'"),
    (GOOD.replace('"tiny"', '"synthetic-mlp"') + 'problem_args = { width = "many" }\n',
     "problem_args {'width': 'many'}: width must be an integer"),
    (GOOD.replace('[[comparison]]', '[[comparisons]]'), "unknown key 'comparisons'"),
    ("seeds = 2\n", "no [[comparison]] table"),
    ("seeds = [\n", "not valid TOML"),
    (GOOD + '[[comparison]]\nproblem = "tiny"\nmethods = ["grid"]\nbudget = 2\n', "repeats another comparison"),
])
def test_bad_suite_files_fail_in_one_line(tmp_path, capsys, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(f)
    assert main(["suite", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpo-bench: error:") and err.count("\n") == 1 and message in err


def test_missing_suite_file_exits_2(tmp_path, capsys):
    assert main(["suite", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_tiny_suite_runs_and_reports(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(GOOD + '\n[[comparison]]\nname = "mo"\nproblem = "tiny-mo"\nmethods = ["random-mo"]\n'
                 'budget = { trials = 2 }\nseeds = [4]\n')
    out = tmp_path / "out"
    assert main(["suite", str(f), "--out", str(out), "--no-cache", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "random vs tpe" in text and "harness overhead" in text
    payload = json.loads((out / "suite.json").read_text())
    assert [c["name"] for c in payload["comparisons"]] == ["tiny", "mo"]
    for d in ("tiny", "mo"):
        assert (out / d / "report.md").is_file() and (out / d / "summary.json").is_file()
    assert (out / "mo" / "pareto.png").is_file()
    assert "tiny/report.md" in (out / "report.md").read_text()
    # rerunning the suite continues (nothing left to do) and gives the same summary
    first = json.loads((out / "tiny" / "summary.json").read_text())
    assert main(["suite", str(f), "--out", str(out), "--no-cache", "--device", "cpu"]) == 0
    assert json.loads((out / "tiny" / "summary.json").read_text()) == first
    # `report` on the suite's folder rewrites every comparison's report and the suite's
    (out / "report.md").unlink()
    (out / "mo" / "summary.json").unlink()
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "tiny/report.md" in (out / "report.md").read_text() and (out / "mo" / "summary.json").is_file()
    assert json.loads((out / "tiny" / "summary.json").read_text()) == first
    assert "suite report:" in capsys.readouterr().out


def test_synthetic_problem_is_small_by_default_and_sized_by_arguments():
    from hpo_bench.problems import PROBLEMS, get_problem

    p = get_problem("synthetic-mlp")
    assert len(p.train) == 4000 and p.model()[0].in_features == 32
    big = PROBLEMS["synthetic-mlp"](n_train=100, n_val=20, n_features=8, width=16, depth=3)
    assert len(big.train) == 100 and sum(isinstance(m, __import__("torch").nn.Linear) for m in big.model()) == 4
    assert big.fingerprint() != p.fingerprint()
    assert PROBLEMS["synthetic-mlp"](n_train=100).train[0][0].tolist() == PROBLEMS["synthetic-mlp"](n_train=100).train[0][0].tolist()
    with pytest.raises(ValueError, match="width"):
        PROBLEMS["synthetic-mlp"](width=0)


def test_nuisance_problem_adds_one_ignored_float():
    from hpo_bench.problems import get_problem

    base, nuis = get_problem("digits-mlp"), get_problem("digits-mlp-nuisance")
    assert set(nuis.space) - set(base.space) == {"nuisance"}
    assert nuis.fixed == base.fixed and nuis.default_config == base.default_config
    assert len(nuis.space.grid_levels(8)["nuisance"]) == 2   # listed first: the grid spends levels on it


def test_compare_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--problem", "tiny", "--methods", "random,tpe", "--budget", "2", "--seeds", "2",
                 "--out", str(out), "--no-cache", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "random vs tpe" in text and "harness overhead" in text
    for name in ("report.md", "summary.json", "trajectories.png", "finals.png", "compare.json"):
        assert (out / name).is_file(), name
    assert main(["report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["methods"] == ["random", "tpe"]


def test_time_spent_choosing_trials_is_measured_apart_from_the_harness(tiny, monkeypatch):
    # A sampler that takes 50 ms to choose: the run reports at least that much suggestion time,
    # and timing_of splits the wall time into parts that add up.
    import time as _time

    from optuna.samplers import RandomSampler

    from hpo_bench.harness.budget import Budget
    from hpo_bench.harness.compare import compare
    from hpo_bench.harness.timing import timing_line, timing_of
    from hpo_bench.methods import registry

    class Slow(RandomSampler):
        def sample_independent(self, *a, **k):
            _time.sleep(0.05 / len(tiny.space))
            return super().sample_independent(*a, **k)

    spec = registry.get_method("random")
    monkeypatch.setitem(registry.METHODS, "random", registry.Method(
        spec.name, spec.objectives, spec.description, lambda c: (Slow(seed=c.seed), None)))
    t0 = _time.perf_counter()
    res = compare(tiny, ["random"], Budget(trials=3), [0], with_baseline=False)
    t = timing_of(res, _time.perf_counter() - t0)
    (run,) = res.runs
    assert run.suggest_seconds >= 3 * 0.05
    assert t["suggest_s"] == pytest.approx(run.suggest_seconds)
    assert t["trial_s"] + t["baseline_s"] + t["suggest_s"] + t["harness_s"] == pytest.approx(t["wall_s"])
    assert "methods choosing trials" in timing_line(t)
