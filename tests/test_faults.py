"""Faults: nothing lost, nothing silently wrong (ARCHITECTURE.md invariant 6).

Each test stages one fault that used to change a result or crash a run: several processes on one
output folder, a journal cut mid-record, a lock left by a killed process, a full disk under the
cache, a corrupt cache index or row, bad input found late."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from hpo_bench.evaluate import CachingEvaluator, CheckpointStore, Evaluator
from hpo_bench.harness import Budget, compare, search
from hpo_bench.harness.report import summarize

ROOT = Path(__file__).resolve().parent.parent

_COMPARE = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_problem
from hpo_bench.evaluate import CachingEvaluator, CheckpointStore, Evaluator
from hpo_bench.harness import Budget, compare
from hpo_bench.harness.report import summarize
import torch; torch.set_num_threads(1)
p = tiny_problem()
res = compare(p, ["grid", "random", "tpe"], Budget(trials=4), [0, 1, 2], out={out!r},
              evaluator=CachingEvaluator(Evaluator(p), CheckpointStore({cache!r})))
print(json.dumps(summarize(res)))
"""


def test_processes_sharing_one_out_share_the_work_and_agree(tiny, tmp_path):
    script = _COMPARE.format(tests=str(ROOT / "tests"), out=str(tmp_path / "out"), cache=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    single = compare(tiny, ["grid", "random", "tpe"], Budget(trials=4), [0, 1, 2], evaluator=Evaluator(tiny))
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    expected = json.loads(json.dumps(summarize(single)))  # the same JSON round trip

    def results(summary):  # what the cache saved differs (one process trains what another reads)
        for row in summary["summary"].values():
            row.pop("actual_epochs", None)
        return summary

    expected = results(expected)
    for s in summaries:
        assert results(s) == expected
    again = compare(tiny, ["grid", "random", "tpe"], Budget(trials=4), [0, 1, 2], out=tmp_path / "out")
    # no study got more trials than a single process gives it
    assert [len(r.trials) for r in again.runs] == [len(r.trials) for r in single.runs]


def test_a_journal_cut_mid_record_is_repaired_and_the_rerun_is_exact(tiny, tmp_path):
    db = tmp_path / "s.log"
    first = search(tiny, "tpe", Budget(trials=4), seed=1, storage=str(db))
    with open(db, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 3, "us')  # a write cut short
    with pytest.warns(RuntimeWarning, match="partial record"):
        again = search(tiny, "tpe", Budget(trials=6), seed=1, storage=str(db))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired for good: no warning, no error the next time
        search(tiny, "tpe", Budget(trials=6), seed=1, storage=str(db))
    assert [t.params for t in search(tiny, "tpe", Budget(trials=4), seed=1, storage=str(db)).trials] == \
        [t.params for t in first.trials]
    assert [t.params for t in again.trials] == [t.params for t in search(tiny, "tpe", Budget(trials=6), seed=1).trials]


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    import fcntl

    from hpo_bench.harness.locks import FlockJournalLock

    journal = tmp_path / "s.log"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from hpo_bench.harness.locks import FlockJournalLock\n"
        "FlockJournalLock(%r).acquire(); print('held', flush=True); time.sleep(600)") % (str(ROOT), str(journal))],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    fd = os.open(f"{journal}.flock", os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # really held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free the moment its holder died: no grace period
    os.close(fd)
    lock = FlockJournalLock(journal)
    assert lock.acquire()
    lock.release()


class DiskFullAt:
    """The real evaluator, but evaluation number ``at`` meets a full disk."""

    def __init__(self, inner, at):
        self.inner, self.at, self.calls, self.seed = inner, at, 0, inner.seed

    def evaluate(self, config, reporter=None):
        self.calls += 1
        if self.calls == self.at:
            raise OSError(28, "No space left on device")
        return self.inner.evaluate(config, reporter)


def test_a_machine_fault_is_not_charged_and_the_rerun_is_exact(tiny, tmp_path):
    db = str(tmp_path / "s.log")
    with pytest.raises(OSError, match="No space left"):
        search(tiny, "gp", Budget(epochs=8), seed=0, storage=db, evaluator=DiskFullAt(Evaluator(tiny), 3))
    resumed = search(tiny, "gp", Budget(epochs=8), seed=0, storage=db)
    fresh = search(tiny, "gp", Budget(epochs=8), seed=0)
    assert [(t.state, t.params, t.values) for t in resumed.trials] == [(t.state, t.params, t.values) for t in fresh.trials]


def test_a_cache_that_cannot_be_written_degrades_to_no_cache(tiny, tmp_path, monkeypatch):
    import safetensors.torch

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store = CheckpointStore(tmp_path / "cache")
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.warns(RuntimeWarning, match="cannot write"):
        run = search(tiny, "random", Budget(trials=3), seed=0, evaluator=CachingEvaluator(Evaluator(tiny), store))
    fresh = search(tiny, "random", Budget(trials=3), seed=0)
    assert [(t.state, t.values) for t in run.trials] == [(t.state, t.values) for t in fresh.trials]
    assert store.degraded and not list((tmp_path / "cache" / "blobs").iterdir())  # no half-written file


def test_processes_creating_one_cache_at_once_do_not_fail(tmp_path):
    opener = ("import sys; sys.path.insert(0, %r)\n"
              "from hpo_bench.evaluate import CheckpointStore\n"
              "s = CheckpointStore(sys.argv[1]); s.put_epoch('p', 1, 0.5); print(s.stats()['epoch_results'])") % str(ROOT)
    for round_ in range(4):
        cache = tmp_path / f"c{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", opener, str(cache)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in results]


def test_a_corrupt_index_is_moved_aside_and_rebuilt(tiny, tmp_path):
    cache = tmp_path / "cache"
    ev = CachingEvaluator(Evaluator(tiny), CheckpointStore(cache))
    cfg = {**tiny.baseline_config(), "epochs": 2}
    first = ev.evaluate(cfg)
    ev.store.close()
    (cache / "index.sqlite3").write_bytes(b"garbage, not a database" * 100)
    for extra in ("-wal", "-shm"):
        Path(f"{cache / 'index.sqlite3'}{extra}").unlink(missing_ok=True)
    with pytest.warns(RuntimeWarning, match="not a readable index"):
        store = CheckpointStore(cache)
    again = CachingEvaluator(Evaluator(tiny), store).evaluate(cfg)
    assert again.values == first.values and again.info["cache"] == "miss"
    assert list(cache.glob("index.sqlite3.corrupt-*"))


def test_a_flipped_bit_in_a_stored_value_is_found_not_served(tiny, tmp_path):
    store = CheckpointStore(tmp_path / "cache")
    ev = CachingEvaluator(Evaluator(tiny), store)
    cfg = {**tiny.baseline_config(), "epochs": 2}
    truth = ev.evaluate(cfg)
    store._db.execute("UPDATE epochs SET accuracy = accuracy / 2 WHERE epoch = 2")  # one corrupt value
    report = store.verify()
    assert report["rows_dropped"] == 1
    store._db.execute("UPDATE epochs SET accuracy = accuracy / 2 WHERE epoch = 1")
    with pytest.warns(RuntimeWarning, match="checksum"):
        again = ev.evaluate(cfg)
    assert again.curve == truth.curve and again.info["cache"] != "hit"


def test_bad_problems_fail_when_built_not_at_the_first_trial(tiny):
    import dataclasses

    from hpo_bench.space import Float, SearchSpace

    with pytest.raises(ValueError, match="lr must be > 0"):
        dataclasses.replace(tiny, space=SearchSpace({**tiny.space, "lr": Float(-0.1, 0.1)}))
    state = {k: torch.full_like(v, float("nan")) for k, v in tiny.model().state_dict().items()}
    with pytest.raises(ValueError, match="contains NaN"):
        dataclasses.replace(tiny, pretrain=None, pretrained_state=state)
