"""The checkpoint store's contract over both kinds of index (SQLite in the cache directory, tables in
PostgreSQL: hpo_bench/evaluate/index.py), and what a shared PostgreSQL index adds: stores on
several machines, one blob directory, each other's entries (ARCHITECTURE.md, "Scale-out").

The PostgreSQL cases run on a throwaway server (tests/pg_server.py, the ``pg_url`` fixture); without
its binaries they are skipped, except in CI.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings

import pytest
import torch

from hpo_bench.evaluate import CachingEvaluator, CheckpointStore, Evaluator

CFG = {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 2, "batch_size": 256, "weight_decay": 1e-3}
STATIC = {"sparsity": 0.8, "params": 1234.0}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def index(request):
    """None (SQLite, the default) or the URL of a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def make_store(index, tmp_path):
    """Stores on one cache directory and ``index`` (closed after the test)."""
    stores = []

    def make(**kwargs):
        stores.append(CheckpointStore(tmp_path / "cache", index=index, **kwargs))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


def _prefix(store, name="p", fingerprint="fp"):
    store.put_prefix(name, "tiny", fingerprint, {"lr": 0.01}, 0, "cpu", STATIC)


# ---------------------------------------------------------------------- the contract, both indexes
def test_epoch_values_first_write_wins_and_a_curve_stops_at_a_gap(make_store):
    store = make_store()
    exact = 0.1 + 0.2  # 0.30000000000000004: a 4-byte float column would change it (and its checksum)
    for epoch, acc in ((1, exact), (2, 0.5), (4, 0.7), (1, 0.9)):
        store.put_epoch("p", epoch, acc)
    assert store.curve("p") == [exact, 0.5] and store.curve("other") == []
    assert make_store().curve("p") == [exact, 0.5]  # what a second store (process, machine) reads


def test_static_metrics_and_prefixes(make_store):
    store = make_store()
    _prefix(store, "p", "fp1")
    store.put_prefix("p", "tiny", "fp1", {"lr": 0.5}, 0, "cpu", {"sparsity": 0.1})  # ignored: first wins
    _prefix(store, "q", "fp2")
    assert store.static("p") == STATIC and store.static("nope") is None
    assert [r["prefix"] for r in store.prefixes("fp1")] == ["p"] and len(store.prefixes()) == 2
    assert store.prefixes("fp1")[0]["config"] == {"lr": 0.01}


def test_blobs_round_trip_replace_and_latest_checkpoint(make_store):
    store = make_store()
    for epoch in (1, 3):
        store.put_blob(f"p@{epoch}", {"w": torch.full((5,), float(epoch))}, prefix="p", epoch=epoch)
    store.put_blob("p@3", {"w": torch.full((5,), 33.0)}, prefix="p", epoch=3)  # replaced: the old file goes
    assert len(list(store.blob_dir.iterdir())) == 2
    assert torch.equal(store.get_blob("p@3")["w"], torch.full((5,), 33.0)) and store.get_blob("nope") is None
    assert store.checkpoint_epochs("p") == [3, 1]
    epoch, tensors = store.latest_checkpoint("p", 2)
    assert epoch == 1 and torch.equal(tensors["w"], torch.ones(5))
    assert store.latest_checkpoint("p", 0) is None


def test_memo_first_write_wins(make_store):
    store = make_store()
    store.put_memo("k", {"x": [1, 2.5]})
    store.put_memo("k", "later")
    assert store.get_memo("k") == {"x": [1, 2.5]} and store.get_memo("nope") is None


def test_rows_that_fail_their_checksum_are_dropped_not_served(make_store):
    store = make_store()
    _prefix(store)
    for epoch in (1, 2, 3):
        store.put_epoch("p", epoch, epoch / 10)
    store._db.execute("UPDATE epochs SET accuracy = accuracy / 2 WHERE epoch = 2")
    with pytest.warns(RuntimeWarning, match="epoch 2's value fails its checksum"):
        assert store.curve("p") == [0.1]
    assert store._db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 1  # epoch 2 and later
    store._db.execute("UPDATE prefixes SET static = ?", (json.dumps({"sparsity": 0.5}),))
    with pytest.warns(RuntimeWarning, match="its metrics fail their checksum"):
        assert store.static("p") is None
    assert store.prefixes() == [] and store.curve("p") == []


def test_a_corrupt_blob_is_dropped(make_store):
    store = make_store()
    store.put_blob("p@1", {"w": torch.ones(100)}, prefix="p", epoch=1)
    (blob,) = store.blob_dir.iterdir()
    data = bytearray(blob.read_bytes())
    data[-3] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert store.get_blob("p@1") is None
    assert store.checkpoint_epochs("p") == [] and not blob.exists()


def test_eviction_drops_least_recently_used_blobs_and_keeps_the_values(make_store):
    store = make_store(max_bytes=None)
    for epoch in (1, 2, 3):
        store.put_epoch("p", epoch, epoch / 10)
        store.put_blob(f"p@{epoch}", {"w": torch.ones(1000)}, prefix="p", epoch=epoch)
        time.sleep(0.01)
    store.get_blob("p@1")  # used last: kept
    size = store.stats()["bytes"] // 3
    assert store.evict(2 * size) == 1 and store.checkpoint_epochs("p") == [3, 1]
    capped = make_store(max_bytes=2 * size)  # a cap evicts as it writes
    capped.put_blob("p@4", {"w": torch.ones(1000)}, prefix="p", epoch=4)
    assert capped.checkpoint_epochs("p") == [4, 1] and len(list(store.blob_dir.iterdir())) == 2
    assert store.curve("p") == [0.1, 0.2, 0.3]


def test_stats_verify_and_clear(make_store, index):
    store = make_store()
    _prefix(store)
    store.put_epoch("p", 1, 0.5)
    store.put_blob("p@1", {"w": torch.ones(10)}, prefix="p", epoch=1)
    stray, young = store.blob_dir / "stray.safetensors", store.blob_dir / "young.safetensors"
    stray.write_bytes(b"not indexed")
    os.utime(stray, (time.time() - 7200,) * 2)  # an orphan: unindexed for two hours
    young.write_bytes(b"being indexed")  # perhaps another worker's blob between its rename and its row
    stats = store.stats()
    assert (stats["configs"], stats["epoch_results"], stats["checkpoints"], stats["problems"]) == (1, 1, 1, {"tiny": 1})
    assert isinstance(stats["bytes"], int) and stats["bytes"] > 0
    if index is None:
        assert stats["index"] == str(store.root / "index.sqlite3")
    else:
        assert "hpo_bench_cache" in stats["index"] and not (store.root / "index.sqlite3").exists()
        assert sorted(f.name for f in store.root.iterdir()) == ["blobs"]  # the directory holds only blobs
    assert store.verify() == {"checked": 1, "dropped": 0, "orphans_removed": 1, "rows_checked": 2, "rows_dropped": 0}
    assert not stray.exists() and young.exists()
    other = make_store()
    store.clear()
    assert other.stats()["configs"] == other.stats()["checkpoints"] == 0 and other.curve("p") == []
    assert other.get_memo("k") is None and list(store.blob_dir.iterdir()) == []


def test_a_write_the_index_refuses_degrades_to_read_only(make_store, monkeypatch):
    store = make_store()
    store.put_epoch("p", 1, 0.5)

    def refuse(*args, **kwargs):
        raise store._db.errors[0]("the index refuses writes")

    monkeypatch.setattr(store._db, "execute", refuse)
    with pytest.warns(RuntimeWarning, match="cannot write"):
        store.put_epoch("p", 2, 0.6)
    assert store.degraded and "the index refuses writes" in store.degraded
    monkeypatch.undo()
    store.put_epoch("p", 2, 0.6)  # read-only from now on: not written, no second warning
    assert store.curve("p") == [0.5]


# ---------------------------------------------------------------------- many processes, both indexes
def _fill(root, index, start, worker, errors):
    """One process of ``test_processes_creating_and_filling_one_store_at_once`` (and of
    benchmarks/cache_concurrency.py's kind): open a fresh store at the same moment as the others,
    write rows and blobs that all of them write (contention on one key) and its own."""
    try:
        start.wait(120)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            store = CheckpointStore(root, index=index)
            for name in ("shared", f"own{worker}"):
                store.put_prefix(name, "tiny", "fp", {"w": name}, 0, "cpu", STATIC)
                for epoch in range(1, 6):
                    store.put_epoch(name, epoch, epoch / 10)
                    store.put_blob(f"{name}@1", {"w": torch.full((256,), float(worker))}, prefix=name, epoch=1)
                store.put_memo(name, worker)
            assert store.curve(f"own{worker}") == [0.1, 0.2, 0.3, 0.4, 0.5]
            assert torch.equal(store.get_blob(f"own{worker}@1")["w"], torch.full((256,), float(worker)))
            store.close()
        if store.degraded or seen:
            raise RuntimeError(store.degraded or "; ".join(str(w.message) for w in seen))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        errors.put(f"worker {worker}: {type(e).__name__}: {e}")


def test_processes_creating_and_filling_one_store_at_once(index, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_fill, args=(tmp_path / "cache", index, start, w, errors)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    reported = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert [p.exitcode for p in procs] == [0] * 4 and reported == []
    store = CheckpointStore(tmp_path / "cache", index=index)
    assert len(store.prefixes()) == 5 and all(store.curve(p["prefix"]) == [0.1, 0.2, 0.3, 0.4, 0.5]
                                              for p in store.prefixes())
    # every replaced blob's file went with it: none lost, none left unindexed
    assert store.verify() == {"checked": 5, "dropped": 0, "orphans_removed": 0, "rows_checked": 30, "rows_dropped": 0}


# ---------------------------------------------------------------------- PostgreSQL only
@pytest.mark.postgres
def test_two_stores_on_one_index_and_blob_dir_see_each_others_entries(tiny, pg_url, tmp_path):
    blobs = tmp_path / "shared-mount"
    first = CachingEvaluator(Evaluator(tiny), CheckpointStore(blobs, index=pg_url))
    second = CachingEvaluator(Evaluator(tiny), CheckpointStore(blobs, index=pg_url))
    miss = first.evaluate(CFG)
    hit = second.evaluate(CFG)  # found by the first, a hit for the second
    assert miss.info["cache"] == "miss" and hit.info["cache"] == "hit" and hit.info["epochs_trained"] == 0
    assert hit.curve == miss.curve and hit.values == miss.values
    longer = second.evaluate({**CFG, "epochs": 3})  # resumes from the first's checkpoint
    assert longer.info["cache"] == "prefix" and longer.info["epochs_trained"] == 1
    assert longer.curve == Evaluator(tiny).evaluate({**CFG, "epochs": 3}).curve
    assert first.evaluate({**CFG, "epochs": 3}).info["cache"] == "hit"


@pytest.mark.postgres
def test_the_index_keeps_out_of_optunas_tables_in_one_database(pg_url, tmp_path):
    import optuna
    import psycopg2

    # one URL for both (SQLAlchemy 2.1 takes a bare postgresql:// to mean psycopg 3: name the driver)
    url = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    store = CheckpointStore(tmp_path / "cache", index=url)
    store.put_epoch("p", 1, 0.5)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 2 and store.curve("p") == [0.5]
    with psycopg2.connect(pg_url) as db, db.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'hpo_bench_cache'")
        assert sorted(r[0] for r in cur.fetchall()) == ["blobs", "epochs", "memo", "prefixes"]
    db.close()
    storage.remove_session()


@pytest.mark.postgres
def test_a_lost_connection_is_opened_again(pg_url, tmp_path):
    import psycopg2

    store = CheckpointStore(tmp_path / "cache", index=pg_url)
    store.put_epoch("p", 1, 0.5)
    with psycopg2.connect(pg_url) as db, db.cursor() as cur:  # the server ends the store's session
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hpo-bench cache'")
    db.close()
    assert store.curve("p") == [0.5]
    store.put_epoch("p", 2, 0.6)
    store.put_blob("p@2", {"w": torch.ones(3)}, prefix="p", epoch=2)
    assert store.curve("p") == [0.5, 0.6] and store.degraded is None


def test_an_index_that_cannot_be_reached_is_one_line_naming_it(tmp_path):
    pytest.importorskip("psycopg2")
    url = "postgresql://me:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(ValueError, match=r"cache index postgresql://me:\*\*\*@127.0.0.1:1/nowhere: cannot connect") as e:
        CheckpointStore(tmp_path / "cache", index=url)
    assert "s3cret" not in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="give a postgresql:// URL"):
        CheckpointStore(tmp_path / "cache", index="mysql://me@host/db")
