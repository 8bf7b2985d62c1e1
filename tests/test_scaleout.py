"""Scale-out (harness/queue.py, harness/worker.py): queued runs taken by worker processes give the
result one process gives; a killed worker loses nothing and duplicates nothing; claims keep two
processes off one study; trial-level parallelism keeps its exact budget.

The reference is always the plain in-process ``compare`` on its own storage: worker runs must match
it trial for trial (same params, values, states), which a dropped, doubled or reordered trial would
break."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo_bench.cli import main
from hpo_bench.harness.compare import RunsPending, collect, compare, submit
from hpo_bench.harness.queue import RunQueue, queue_url
from hpo_bench.harness.runner import search
from hpo_bench.harness.storage import open_ledger
from hpo_bench.harness.worker import start_workers, wait_workers, work

# a synthetic problem small enough that a run takes about a second, rebuilt by name in workers
ARGS = {"n_train": 200, "n_val": 100, "width": 24, "pretrain_epochs": 2}
METHODS, SEEDS, BUDGET = ["random", "tpe"], [0, 1, 2], 3


def trials(result):
    """Each run's counted trials in order (an interrupted trial keeps its Optuna number in the
    ledger, so the retry's number is one higher: the order, not the number, is the identity)."""
    return {(r.method, r.seed): [(t.state, t.params, t.values, t.nominal_epochs) for t in r.trials] for r in result.runs}


@pytest.fixture(scope="module")
def reference():
    """The comparison run by one process, in memory: what every worker setup must reproduce."""
    return trials(compare("synthetic-mlp", METHODS, BUDGET, SEEDS, None, problem_args=ARGS, with_baseline=False))


# ---------------------------------------------------------------------- the queue
def test_queue_submit_is_idempotent_and_refuses_another_spec(tmp_path):
    q = RunQueue(tmp_path)
    assert q.url == f"sqlite:///{(tmp_path / 'queue.sqlite3').resolve()}"
    spec = {"problem": "p", "methods": ["random"], "seeds": [0, 1]}
    runs = [("random", 0, "p/random/seed0"), ("random", 1, "p/random/seed1")]
    assert q.submit("c", spec, runs) == 2
    assert q.submit("c", spec, runs) == 0
    assert q.counts(["c"]) == {"queued": 2, "running": 0, "done": 0, "failed": 0}
    with pytest.raises(ValueError, match="already in the queue .* with other settings.*seeds"):
        q.submit("c", {**spec, "seeds": [0]}, runs[:1])
    q.mark("c", "p/random/seed0", "failed", error="boom")
    q.submit("c", spec, runs)  # a resubmission retries failed runs
    assert q.state("c", "p/random/seed0") == "queued"


def test_queue_url_of_a_ledger_file_is_its_directory_queue(tmp_path):
    assert queue_url(tmp_path / "studies.log") == queue_url(tmp_path) == queue_url(tmp_path / "queue.sqlite3")
    with pytest.raises(ValueError, match="does not exist"):
        queue_url(tmp_path / "missing" / "studies.log")


def test_submit_refuses_what_workers_cannot_rebuild(tmp_path, tiny):
    with pytest.raises(ValueError, match="rebuild a comparison's problem by its registered name"):
        submit(tiny, ["random"], 2, [0], str(tmp_path / "studies.log"))
    with pytest.raises(ValueError, match="not memory"):
        submit("synthetic-mlp", ["random"], 2, [0], None, problem_args=ARGS)


# ---------------------------------------------------------------------- claims
def _try_claim_elsewhere(storage: str, study: str) -> bool:
    code = ("import sys; from hpo_bench.harness.storage import open_ledger\n"
            "with open_ledger(sys.argv[1]).claim(sys.argv[2], wait=False) as held: print(held)")
    out = subprocess.run([sys.executable, "-c", code, storage, study], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_a_claim_keeps_other_processes_off_its_study_and_dies_with_its_holder(kind, tmp_path, request):
    storage = str(tmp_path / "studies.log") if kind == "journal" else request.getfixturevalue("pg_url")
    ledger = open_ledger(storage)
    with ledger.claim("s1") as held:
        assert held
        with ledger.claim("s1") as again:  # re-entrant in its own process (compare -> search)
            assert again
        assert not _try_claim_elsewhere(storage, "s1")
        assert _try_claim_elsewhere(storage, "s2")
    assert _try_claim_elsewhere(storage, "s1")
    # a holder killed with SIGKILL: its claim is released by the kernel / the server at once
    code = ("import sys, time; from hpo_bench.harness.storage import open_ledger\n"
            "with open_ledger(sys.argv[1]).claim('s3'):\n    print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, storage], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    assert not _try_claim_elsewhere(storage, "s3")
    p.send_signal(signal.SIGKILL)
    p.wait()
    for _ in range(50):  # the server notices the closed socket within moments
        if _try_claim_elsewhere(storage, "s3"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the claim of a killed process was not released")


# ---------------------------------------------------------------------- workers
def test_workers_on_a_journal_file_reproduce_one_process(tmp_path, reference):
    res = compare("synthetic-mlp", METHODS, BUDGET, SEEDS, out=tmp_path / "cmp", problem_args=ARGS, workers=2,
                  with_baseline=False, quiet_workers=True)
    assert trials(res) == reference
    assert res.workers == 2
    q = RunQueue(tmp_path / "cmp")
    assert q.counts() == {"queued": 0, "running": 0, "done": len(METHODS) * len(SEEDS), "failed": 0}
    workers = {r.worker.rpartition(":")[2] for r in q.runs()}
    assert len(workers) >= 1 and str(os.getpid()) not in workers  # the runs ran in the worker processes


def test_submit_then_worker_then_collect_on_postgres(pg_url, reference):
    q = submit("synthetic-mlp", METHODS, BUDGET, SEEDS, pg_url, name="cmp", problem_args=ARGS)
    with pytest.raises(RunsPending, match=r"0 of 6 runs done \(6 queued"):
        collect(q, "cmp")
    with pytest.raises(ValueError, match="no comparison 'other'.*known: cmp"):
        collect(q, "other")
    assert work(pg_url) == 6  # this process as the worker
    res = collect(pg_url, "cmp")
    assert trials(res) == reference
    assert res.baseline is not None and "accuracy" in res.baseline["values"]
    assert work(pg_url) == 0  # nothing left: a second worker finds no work and stops


def test_killing_workers_loses_and_duplicates_nothing(pg_url, reference):
    """Kill -9 a worker while it runs a run, twice: the run is taken up by another worker and the
    comparison ends exactly as one process ends it."""
    q = submit("synthetic-mlp", METHODS, BUDGET, SEEDS, pg_url, name="cmp", problem_args=ARGS)
    procs = start_workers(q, 2, groups=["cmp"], quiet=True)
    kills = 0
    deadline = time.time() + 240
    while kills < 2 and time.time() < deadline and any(p.is_alive() for p in procs):
        running = [r for r in q.runs(["cmp"], states=("running",)) if r.worker]
        victims = [p for p in procs if p.is_alive() and any(r.worker.endswith(f":{p.pid}") for r in running)]
        if victims:
            time.sleep(0.3)  # into the run: its first trial is under way
            victims[0].kill()
            victims[0].join()
            kills += 1
            procs.append(start_workers(q, 1, groups=["cmp"], quiet=True)[0])
        time.sleep(0.05)
    codes = wait_workers(procs)
    assert kills == 2 and codes.count(-signal.SIGKILL) == 2, codes
    res = collect(q, "cmp")
    assert trials(res) == reference
    attempts = {r.study: r.attempts for r in q.runs(["cmp"])}
    assert sum(attempts.values()) >= len(attempts) + 1  # a killed run was taken again


def test_suite_by_workers_on_postgres_equals_the_suite_by_one_process(tmp_path, pg_url):
    from hpo_bench.harness.suite import load_suite, run_suite

    f = tmp_path / "s.toml"
    f.write_text('name = "s"\nseeds = 2\n[[comparison]]\nproblem = "synthetic-mlp"\nmethods = ["random", "gp"]\n'
                 'budget = { trials = 3 }\nproblem_args = { n_train = 200, n_val = 100, width = 24, '
                 'pretrain_epochs = 2 }\n')
    suite = load_suite(f)
    one = run_suite(suite, tmp_path / "one")
    many = run_suite(suite, tmp_path / "many", storage=pg_url, workers=2, quiet_workers=True)
    strip = ("seconds", "wall", "timing", "dir")

    def results(payload):
        def clean(x):
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items() if not any(s in k for s in strip)}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        return clean(payload["comparisons"])

    assert results(one) == results(many)


# ---------------------------------------------------------------------- trial-level parallelism
def test_run_with_workers_spends_exactly_its_budget(tmp_path, tiny):
    storage = str(tmp_path / "studies.log")
    res = search(tiny, "random", 20, 0, storage, n_workers=4)
    numbers = [t.number for t in res.trials]
    assert len(res.trials) == 20 and len(set(numbers)) == 20
    assert len({tuple(sorted(t.params.items())) for t in res.trials}) == 20
    assert res.n_workers == 4 and res.study_name.endswith("/workers4")
    again = search(tiny, "random", 20, 0, storage, n_workers=4)  # a rerun adds nothing
    assert [t.number for t in again.trials] == numbers
    single = search(tiny, "random", 20, 0, storage)  # one worker: another study
    assert single.study_name != res.study_name and len(single.trials) == 20


# ---------------------------------------------------------------------- the command line
def test_cli_bad_scale_out_input_is_one_line(tmp_path, capsys):
    assert main(["compare", "--problem", "synthetic-mlp", "--workers", "0", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "hpo-bench: error: --workers must be >= 1, got 0"
    assert main(["compare", "--problem", "synthetic-mlp", "--out", str(tmp_path / "o"),
                 "--storage", "postgresql://u:secret@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hpo-bench: error: --storage postgresql://u:***@127.0.0.1:1/db: cannot connect")
    assert "secret" not in err and len(err.splitlines()) == 1
    assert main(["worker", "--storage", "nosuchdb://x"]) == 2
    assert "--storage nosuchdb://x" in capsys.readouterr().err
    assert main(["run", "--problem", "synthetic-mlp", "--workers", "0", "--out", str(tmp_path / "r")]) == 2
    capsys.readouterr()
    # a worker pointed at nothing says so (exit 2), and leaves no empty queue behind
    assert main(["worker", "--storage", str(tmp_path / "typo")]) == 2
    assert "no run queue at" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    RunQueue(tmp_path).submit("c", {"problem": "p"}, [("random", 0, "p/random/seed0")])
    assert main(["worker", "--storage", str(tmp_path), "--name", "nope"]) == 2
    assert "no comparison or suite 'nope' in the queue" in capsys.readouterr().err


def test_cli_submit_worker_report(tmp_path, pg_url, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--problem", "synthetic-mlp", "--methods", "random", "--seeds", "2", "--budget", "2", "--storage", pg_url]
    assert main(["compare", *base, "--submit", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "queued 2 runs of c" in out and "hpo-bench worker --storage" in out
    assert main(["report", "--storage", pg_url]) == 1
    assert "0 of 2 runs done" in capsys.readouterr().err
    assert main(["worker", "--storage", pg_url, "--no-cache"]) == 0
    assert "2 runs done here" in capsys.readouterr().out
    assert main(["report", "--storage", pg_url, "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "compare.json").is_file()
    assert Path(tmp_path / "rep" / "summary.json").is_file()


def test_a_suite_sets_trials_at_once_per_comparison(tmp_path, tiny_registry):
    from hpo_bench.harness.results import load_compare
    from hpo_bench.harness.suite import load_suite, run_suite

    f = tmp_path / "s.toml"
    body = 'seeds = 1\n[[comparison]]\nproblem = "tiny"\nmethods = ["random"]\nbudget = { trials = 6 }\n'
    f.write_text(body + "study_workers = 0\n")
    with pytest.raises(ValueError, match="study_workers must be an integer >= 1, got 0"):
        load_suite(f)
    f.write_text(body + "study_workers = 3\n")
    run_suite(load_suite(f), tmp_path / "out")
    (run,) = load_compare(tmp_path / "out" / "tiny").runs
    assert run.n_workers == 3 and run.study_name.endswith("/workers3") and len(run.trials) == 6


def test_the_dense_model_is_the_same_whatever_the_thread_count():
    """A worker's thread count (cores // workers) must not change the model every trial starts
    from: 2 threads' sums differ from 1's in the last bits, which a high-lr fine-tune amplifies."""
    import torch

    from hpo_bench.evaluate.pretrained import pretrain_dense
    from hpo_bench.problems import get_problem

    problem = get_problem("synthetic-mlp", **ARGS)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pretrain_dense(problem)
        torch.set_num_threads(2)
        two = pretrain_dense(problem)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_run_with_workers_shares_one_cache_between_its_threads(tmp_path, tiny):
    from hpo_bench.evaluate import make_evaluator
    from hpo_bench.evaluate.store import CheckpointStore

    store = CheckpointStore(tmp_path / "cache")
    res = search(tiny, "random", 8, 0, str(tmp_path / "studies.log"), n_workers=4, memo=store,
                 evaluator=make_evaluator(tiny, "cpu", 0, store))
    assert len(res.trials) == 8 and all(t.state == "COMPLETE" for t in res.trials)
    assert store.stats()["configs"] == 8


def test_a_worker_without_the_shared_blobs_keeps_the_shared_entries(tmp_path, pg_url):
    """One machine given the wrong --cache must not throw away what the others rely on."""
    import torch

    from hpo_bench.evaluate.store import CheckpointStore

    mounted = CheckpointStore(tmp_path / "shared", index=pg_url)
    mounted.put_blob("k", {"w": torch.ones(3)})
    elsewhere = CheckpointStore(tmp_path / "elsewhere", index=pg_url)
    with pytest.warns(RuntimeWarning, match="give every worker the same --cache"):
        assert elsewhere.get_blob("k") is None
    assert torch.equal(mounted.get_blob("k")["w"], torch.ones(3))
