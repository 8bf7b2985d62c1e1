"""The caching evaluator's invariants (ARCHITECTURE.md 1, 2, 3, 6), each by a test that can fail."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hpo_bench.evaluate import Evaluator
from hpo_bench.evaluate import CachingEvaluator, CheckpointStore
from hpo_bench.harness import Budget, compare

ROOT = Path(__file__).resolve().parent.parent
CFG = {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 5, "batch_size": 256, "weight_decay": 1e-3}


def test_resumed_equals_fresh_bit_exact(tiny):
    ev = Evaluator(tiny)
    fresh = ev.start(CFG)
    fresh_curve = [fresh.train_epoch() for _ in range(5)]

    first = ev.start(CFG)
    curve = [first.train_epoch() for _ in range(2)]
    saved = {k: v.clone() for k, v in first.state().items()}
    resumed = ev.start(CFG)
    resumed.load_state(saved, 2)
    curve += [resumed.train_epoch() for _ in range(3)]

    assert curve == fresh_curve
    a, b = fresh.state(), resumed.state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prefix_resume_and_exact_hits(tiny, tmp_path):
    ce = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path))
    short = ce.evaluate({**CFG, "epochs": 2})
    assert short.info["cache"] == "miss" and short.info["epochs_trained"] == 2
    long = ce.evaluate(CFG)
    assert long.info["cache"] == "prefix" and long.info["epochs_trained"] == 3
    fresh = Evaluator(tiny).evaluate(CFG)
    assert long.curve == fresh.curve and long.values == fresh.values
    again = ce.evaluate({**CFG, "epochs": 3})  # shorter than what is stored: an exact hit
    assert again.info["cache"] == "hit" and again.info["epochs_trained"] == 0 and again.curve == fresh.curve[:3]


def test_hit_replays_values_so_the_pruner_stops_at_the_same_epoch(tiny, tmp_path):
    ce = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path))
    ce.evaluate(CFG)
    seen = []
    r = ce.evaluate(CFG, lambda e, v: seen.append((e, v)) or e == 3)
    assert r.pruned_at == 3 and r.nominal_epochs == 3 and r.info["epochs_trained"] == 0
    assert [v for _, v in seen] == r.curve


def test_pruned_trial_leaves_a_checkpoint_to_resume_from(tiny, tmp_path):
    ce = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path))
    r = ce.evaluate(CFG, lambda e, v: e == 2)
    assert r.pruned_at == 2 and r.info["epochs_trained"] == 2
    full = ce.evaluate(CFG)
    assert full.info["cache"] == "prefix" and full.info["epochs_trained"] == 3


def _records(result):
    return [(r.method, r.seed, [(t.params, t.state, t.values, t.curve, t.nominal_epochs) for t in r.trials])
            for r in result.runs]


def test_warm_cache_changes_nothing_but_the_cost(tiny, tmp_path):
    methods, budget, seeds = ["tpe-median", "tpe-hyperband", "random", "gp"], Budget(trials=8), [0, 1]
    cold_ev = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path / "cache"))
    cold = compare(tiny, methods, budget, seeds, evaluator=cold_ev, with_baseline=False)
    warm_ev = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path / "cache"))
    warm = compare(tiny, methods, budget, seeds, evaluator=warm_ev, with_baseline=False)
    plain = compare(tiny, methods, budget, seeds, evaluator=Evaluator(tiny), with_baseline=False)
    assert _records(cold) == _records(warm) == _records(plain)
    assert any(t.state == "PRUNED" for r in cold.runs for t in r.trials)  # pruning decisions were replayed
    assert sum(r.actual_epochs for r in warm.runs) == 0
    assert sum(r.nominal_epochs for r in warm.runs) == sum(r.nominal_epochs for r in cold.runs) > 0
    assert sum(r.actual_epochs for r in cold.runs) < sum(r.nominal_epochs for r in cold.runs)  # shared across seeds


def test_corrupt_checkpoint_is_dropped_and_recomputed(tiny, tmp_path):
    store = CheckpointStore(tmp_path)
    ce = CachingEvaluator(Evaluator(tiny), store)
    ce.evaluate({**CFG, "epochs": 2})
    blob = next(f for f in (tmp_path / "blobs").iterdir() if f.stat().st_size < 200_000 and
                store._db.execute("SELECT 1 FROM blobs WHERE path=? AND prefix IS NOT NULL", (f.name,)).fetchone())
    data = bytearray(blob.read_bytes())
    data[-7] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        r = ce.evaluate(CFG)
    assert r.info["cache"] == "miss" and r.info["epochs_trained"] == 5  # retrained from scratch
    assert r.curve == Evaluator(tiny).evaluate(CFG).curve


def test_eviction_keeps_the_results(tiny, tmp_path):
    store = CheckpointStore(tmp_path)
    ce = CachingEvaluator(Evaluator(tiny), store)
    for lr in (1e-3, 3e-3, 1e-2):
        ce.evaluate({**CFG, "lr": lr})
    assert store.evict(0) > 0 and store.stats()["checkpoints"] == 0
    r = ce.evaluate({**CFG, "lr": 3e-3})
    assert r.info["cache"] == "hit"


_WRITER = """
import sys, torch
from hpo_bench.evaluate import CheckpointStore
store = CheckpointStore(sys.argv[1])
big = {"w": torch.randn(1_000_000)}
for i in range(10_000):
    store.put_epoch("p", i + 1, float(i))
    print(i + 1, flush=True)          # committed: must survive the kill
    store.put_blob(f"p@{i + 1}", big, prefix="p", epoch=i + 1)
"""


def test_kill_9_during_writes_leaves_no_trusted_bad_entry(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    committed = 0
    while committed < 6:
        committed = int(proc.stdout.readline())
    time.sleep(0.05)  # land somewhere inside a blob write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = CheckpointStore(tmp_path)
    assert len(store.curve("p")) >= committed  # no completed result lost
    for epoch in store.checkpoint_epochs("p"):  # every indexed blob is whole
        assert store.get_blob(f"p@{epoch}") is not None
    report = store.verify()
    assert report["dropped"] == 0


_FILLER = """
import json, sys
sys.path.insert(0, sys.argv[3])
from conftest import tiny_problem
from hpo_bench.evaluate import Evaluator
from hpo_bench.evaluate import CachingEvaluator, CheckpointStore
p = tiny_problem()
ce = CachingEvaluator(Evaluator(p), CheckpointStore(sys.argv[1]))
out = {}
for lr in json.loads(sys.argv[2]):
    for epochs in (1, 3):
        r = ce.evaluate({"sparsity": 0.8, "pattern": "unstructured", "lr": lr, "epochs": epochs, "batch_size": 256})
        out[f"{lr}/{epochs}"] = r.curve
print(json.dumps(out))
"""


def test_two_processes_fill_one_cache(tmp_path, tiny):
    lrs = [1e-3, 2e-3, 5e-3, 1e-2]
    cache = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-c", _FILLER, str(cache), json.dumps(order), str(ROOT / "tests")],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for order in (lrs, lrs[::-1])]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]  # same config, same result, whichever process computed it
    store = CheckpointStore(cache)
    assert store.verify()["dropped"] == 0
    fresh = Evaluator(tiny).evaluate({"sparsity": 0.8, "pattern": "unstructured", "lr": 5e-3, "epochs": 3, "batch_size": 256})
    assert outs[0]["0.005/3"] == fresh.curve


def test_table_problem_answers_a_filled_grid_from_the_cache(tiny, tmp_path, monkeypatch):
    from hpo_bench import problems
    from hpo_bench.harness import search
    from hpo_bench.evaluate.table import table_problem

    monkeypatch.setitem(problems.PROBLEMS, "tiny", lambda: tiny)
    ce = CachingEvaluator(Evaluator(tiny), CheckpointStore(tmp_path))
    grid = search(tiny, "grid", Budget(trials=8), seed=0, evaluator=ce)
    search(tiny, "random", Budget(trials=2), seed=9, evaluator=ce)  # strays beside the grid are left out
    table = table_problem(f"tiny@{tmp_path}")
    assert table.space.grid(10_000) and all(
        set(table.space[n].choices) == {t.params[n] for t in grid.trials} for n in table.space if n != "epochs")
    run = search(table, "tpe-hyperband", Budget(trials=12), seed=1)
    assert len(run.trials) == 12 and sum(t.actual_epochs for t in run.trials) == 0
    fresh = Evaluator(tiny)
    for t in run.complete()[:3]:  # the table's answers are the real evaluations
        assert t.curve == fresh.evaluate(tiny.config(t.params)).curve
    with pytest.raises(ValueError, match="holds no result"):
        table.evaluator_factory("cpu", 0).evaluate(tiny.config({**grid.trials[0].params, "lr": 0.5}))
    # the untuned default is the source problem's, answered from the cache once it was evaluated there
    assert table.baseline_config() == tiny.baseline_config()
    ce.evaluate(tiny.baseline_config())
    assert table.evaluator_factory("cpu", 0).evaluate(table.baseline_config()).values == \
        Evaluator(tiny).evaluate(tiny.baseline_config()).values


def test_gp_suggestions_are_memoised_in_the_cache(tiny, tmp_path):
    from hpo_bench.harness import search

    store = CheckpointStore(tmp_path)
    first = search(tiny, "gp", Budget(trials=7), seed=4, evaluator=CachingEvaluator(Evaluator(tiny), store), memo=store)
    gp_memos = "SELECT COUNT(*) FROM memo WHERE key NOT LIKE 'train-plan:%'"  # (not the training plans)
    n_memo = store._db.execute(gp_memos).fetchone()[0]
    assert n_memo == 7
    again = search(tiny, "gp", Budget(trials=7), seed=4, evaluator=CachingEvaluator(Evaluator(tiny), store), memo=store)
    plain = search(tiny, "gp", Budget(trials=7), seed=4)
    assert [t.params for t in again.trials] == [t.params for t in first.trials] == [t.params for t in plain.trials]
    assert store._db.execute(gp_memos).fetchone()[0] == n_memo


def test_latency_objective_is_served_from_the_cache(tiny, tmp_path):
    import dataclasses

    timed = dataclasses.replace(tiny, name="tiny-latency", objectives=("accuracy", "latency_ms"))
    ce = CachingEvaluator(Evaluator(timed), CheckpointStore(tmp_path))
    first = ce.evaluate({**CFG, "epochs": 1})
    again = ce.evaluate({**CFG, "epochs": 1})
    assert again.info["cache"] == "hit" and again.values == first.values and first.values["latency_ms"] > 0
