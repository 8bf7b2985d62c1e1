"""The command line as a user meets it: listings, a real run, and one-line errors (exit 2)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpo_bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("tiny_registry")  # conftest.py: the tiny problems by name


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def run(*args):
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--problem", "nope"], "unknown problem 'nope'"),
        (["run", "--problem", "digits-mlp", "--method", "nope"], "unknown method 'nope'"),
        (["run", "--problem", "digits-mlp", "--budget", "0"], "budget trials must be an integer from 1"),
        (["compare", "--problem", "digits-mlp", "--budget", "-3"], "budget trials"),
        (["run", "--problem", "digits-mlp", "--storage", "/no/such/dir/s.db"], "'/no/such/dir' does not exist"),
        (["run", "--problem", "digits-mlp", "--out", "/no/such/dir/out"], "'/no/such/dir' does not exist"),
        (["compare", "--problem", "digits-mlp", "--methods", "nsga2"], "single-objective"),
        (["compare", "--problem", "digits-mlp", "--seeds", "x"], "--seeds"),
        (["compare", "--problem", "digits-mlp", "--out", "a-file"], "is a file, not a directory"),
        (["report", "a-file"], "is not a directory"),
        (["compare", "--problem", "digits-mlp", "--cache-max-gb", "nan"], "--cache-max-gb must be"),
        (["compare", "--problem", "digits-mlp", "--cache-max-gb", "-1"], "--cache-max-gb must be"),
        (["compare", "--problem", "digits-mlp", "--cache", "a-file"], "is a file, not a directory"),
        (["compare", "--problem", "digits-mlp", "--methods", "random,random"], "method 'random' is given twice"),
        (["compare", "--problem", "digits-mlp", "--seeds", "0,0,1"], "seed 0 is given twice"),
        (["run", "--problem", "digits-mlp", "--method", "grid", "--budget", "1000000000"], "from 1 to 100,000"),
        (["run", "--problem", "digits-mlp", "--storage", "postgresql://nobody:pw@127.0.0.1:1/x"], "nobody:***@"),
        (["report", "."], "compare.json' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, cli, tmp_path):
    (tmp_path / "a-file").write_text("not a directory\n")  # the cli fixture runs in tmp_path
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_listings_as_json(capsys):
    assert main(["methods", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)["methods"]]
    assert {"grid", "random", "gp", "tpe", "tpe-median", "tpe-hyperband", "random-mo", "nsga2", "tpe-mo"} <= set(names)
    assert main(["problems", "--json"]) == 0
    assert "digits-mlp" in [p["name"] for p in json.loads(capsys.readouterr().out)["problems"]]


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hpo_bench.cli", "compare", "--problem", "nope"],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    # (the list of known problems grows; this test is about one line and no traceback)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("hpo-bench: error: unknown problem 'nope'; known: digits-mlp, ")


def test_run_prints_best_config_and_writes_json(cli, tmp_path):
    r = cli("run", "--problem", "tiny-mo", "--method", "random-mo", "--budget", "3",
             "--out", str(tmp_path / "o"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "Pareto front" in r.stdout and "best accuracy" in r.stdout and "untuned default" in r.stdout
    data = json.loads((tmp_path / "o" / "run.json").read_text())
    assert len(data["result"]["trials"]) == 3 and data["result"]["pareto"]
    assert (tmp_path / "o" / "studies.log").exists() and not (tmp_path / "o" / "studies.db").exists()


def test_an_output_directory_with_a_sqlite_ledger_keeps_it(cli, tmp_path):
    # Written before the journal file became the default: a rerun must resume there, not restart.
    from conftest import tiny_problem

    from hpo_bench.harness import Budget, search

    def ctrl_c_after_two(rec):
        if rec.number == 1:
            raise KeyboardInterrupt

    (tmp_path / "o").mkdir()
    with pytest.raises(KeyboardInterrupt):
        search(tiny_problem(), "random", Budget(trials=3), storage=str(tmp_path / "o" / "studies.db"),
               on_trial=ctrl_c_after_two)
    again = cli("run", "--problem", "tiny", "--method", "random", "--budget", "3", "--out", str(tmp_path / "o"), "--json")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "o" / "studies.log").exists()
    import optuna

    from hpo_bench.harness.storage import open_storage

    ledger = open_storage(str(tmp_path / "o" / "studies.db"))
    (study,) = optuna.get_all_study_summaries(ledger)
    assert study.n_trials == 3  # the two of the first call, and one more


def test_compare_summary_table_and_json(cli, tmp_path):
    r = cli("compare", "--problem", "tiny", "--methods", "random,tpe", "--budget", "2",
             "--seeds", "2", "--out", str(tmp_path / "c"), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["method"] for s in data["summary"]] == ["random", "tpe"]
    assert len(data["runs"]) == 4 and all(len(run["trials"]) == 2 for run in data["runs"])
    assert data["baseline"]["values"]["accuracy"] > 0
    table = cli("compare", "--problem", "tiny", "--methods", "random,tpe", "--budget", "2",
                "--seeds", "2", "--out", str(tmp_path / "c")).stdout  # resumed: nothing left to run
    assert "median" in table and "untuned default" in table and "best found" in table


def test_own_model_example_runs():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "own_model.py"), "--budget", "3"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "3 trials; best accuracy" in r.stdout
    acc = float(r.stdout.split("best accuracy ")[1].split()[0])
    assert acc > 0.6  # two balanced classes: better than chance after pruning 90% and fine-tuning


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "hpo_bench", "methods"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "tpe-hyperband" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "hpo_bench", "run", "--problem", "nope"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "unknown problem 'nope'" in bad.stderr


def test_progress_lines_for_unattended_logs(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_BENCH_PROGRESS", "lines")
    r = cli("compare", "--problem", "tiny", "--methods", "random", "--budget", "2", "--seeds", "1",
            "--out", str(tmp_path / "c"), "--no-cache")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if " trial " in ln]
    assert len(lines) == 2 and all(ln.startswith("[") and "random seed 0" in ln and "epochs" in ln for ln in lines)


def test_run_and_compare_never_share_a_ledger_by_default(cli, tmp_path):
    assert cli("run", "--problem", "tiny", "--method", "random", "--budget", "2", "--no-cache").returncode == 0
    assert cli("compare", "--problem", "tiny", "--methods", "random", "--budget", "3", "--seeds", "1",
               "--no-cache").returncode == 0
    assert (tmp_path / "runs" / "tiny" / "run" / "run.json").is_file()
    assert (tmp_path / "runs" / "tiny" / "compare.json").is_file()
    assert (tmp_path / "runs" / "tiny" / "run" / "studies.log") != (tmp_path / "runs" / "tiny" / "studies.log")
    compared = json.loads((tmp_path / "runs" / "tiny" / "compare.json").read_text())
    assert [len(r["trials"]) for r in compared["runs"]] == [3]


def test_a_table_problem_gets_a_plain_folder_name():
    from hpo_bench.cli.args import folder_name

    assert folder_name("table:digits-mlp@/some/cache") == "table-digits-mlp"
    assert folder_name("digits-mlp") == "digits-mlp"


def test_cache_stats_is_a_table_for_people_and_json_for_machines(cli, tmp_path):
    from hpo_bench.evaluate.store import DEFAULT_MAX_BYTES

    assert cli("run", "--problem", "tiny", "--method", "random", "--budget", "2", "--cache", str(tmp_path / "c")).returncode == 0
    text = cli("cache", "stats", "--cache", str(tmp_path / "c")).stdout
    assert "per-epoch results" in text and "GiB" in text and "{" not in text
    assert any(line.split()[:2] == ["tiny", "3"] for line in text.splitlines())  # 2 trials + the untuned default
    data = json.loads(cli("cache", "stats", "--cache", str(tmp_path / "c"), "--json").stdout)
    assert data["problems"] == {"tiny": 3} and data["max_bytes"] == DEFAULT_MAX_BYTES > 0


def test_a_shown_config_omits_what_its_pattern_ignores():
    from hpo_bench.compression import effective_config

    assert effective_config({"sparsity": 0.84, "pattern": "2:4", "lr": 0.1}) == {"pattern": "2:4", "lr": 0.1}
    assert effective_config({"sparsity": 0.84, "pattern": "block4"}) == {"sparsity": 0.84, "pattern": "block4"}
