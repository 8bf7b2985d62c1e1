"""Cache concurrency drill: several processes open one fresh checkpoint cache at the same moment and
fill it, many times over, for each kind of index: SQLite in the cache directory, and PostgreSQL
(a throwaway server from tests/pg_server.py, when its binaries are here).

    python benchmarks/cache_concurrency.py [--reps 50] [--processes 4] [--json OUT.json]

Each rep: a fresh cache directory (for PostgreSQL also a fresh database, so the schema is created
by whichever process comes first); the processes, started once and kept across reps, wait at a
barrier, then open the store and write config rows, per-epoch values, a memo and checkpoint blobs,
under keys all of them write (contention on one row, one blob replaced by all) and keys of their
own, and read their own back. Errors, counted per kind: an exception in a process, a write the
store refused (it degraded to read-only: a warning there, an error here), and, checked by the
parent after the rep, a missing row or blob, a row or blob that fails its checksum, a blob file
nothing indexes. Exit status 1 on any error. ``wall``: all reps of one index, with creating each
fresh database and the parent's checks, not the processes' start-up; ``fill``: from handing out a
rep to the last process's report.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 5


def _kind(e: BaseException) -> str:
    """An error's kind: its type and first line, without what differs between reps (the URL,
    numbers)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {re.sub(r'[0-9]+', 'N', re.sub(r'[a-z+]+://[^: ]+', 'URL', first))[:120]}"


def fill(root: str, index: str | None, worker: int) -> None:
    """One process's share of a rep; raises on anything short of a clean fill."""
    import torch

    from hpo_bench.evaluate import CheckpointStore

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        store = CheckpointStore(root, index=index)
        for name in ("shared", f"own{worker}"):
            store.put_prefix(name, "drill", "fp", {"name": name}, 0, "cpu", {"sparsity": 0.5})
            for epoch in range(1, EPOCHS + 1):
                store.put_epoch(name, epoch, epoch / 10)
                store.put_blob(f"{name}@1", {"w": torch.full((256,), float(worker))}, prefix=name, epoch=1)
            store.put_memo(name, worker)
        if store.curve(f"own{worker}") != [e / 10 for e in range(1, EPOCHS + 1)]:
            raise AssertionError("a process does not read back its own per-epoch values")
        if store.get_blob(f"own{worker}@1") is None:
            raise AssertionError("a process does not read back its own checkpoint")
        degraded = store.degraded
        store.close()
    if degraded:
        raise RuntimeError(f"the store degraded to read-only: {degraded}")
    if seen:
        raise RuntimeError(f"warning: {seen[0].message}")


def worker_loop(worker: int, tasks, start, results) -> None:
    """A kept process: ready once its imports are done (so no rep pays for them), then for each
    (root, index) task: wait for the others, fill, report."""
    import torch

    import hpo_bench.evaluate  # noqa: F401

    torch.set_num_threads(1)
    results.put((worker, "ready", None))
    while (task := tasks.get()) is not None:
        try:
            start.wait(120)
            fill(*task, worker)
            results.put((worker, None, None))
        except BaseException as e:  # noqa: BLE001 - every failure is counted, none stops the drill
            results.put((worker, _kind(e), f"{type(e).__name__}: {e}"))


def check(root: Path, index: str | None, processes: int) -> list[tuple[str, str]]:
    """What the parent finds after a rep: (kind, detail) for every row or blob missing or corrupt,
    and every blob file nothing indexes."""
    from hpo_bench.evaluate import CheckpointStore

    problems = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        store = CheckpointStore(root, index=index)
        names = {"shared", *(f"own{w}" for w in range(processes))}
        found = {p["prefix"] for p in store.prefixes()}
        if found != names:
            problems.append(("config rows missing", f"{sorted(names - found)}"))
        for name in sorted(names):
            if len(store.curve(name)) != EPOCHS:
                problems.append(("per-epoch values missing", name))
            if store.get_memo(name) is None:
                problems.append(("memo missing", name))
        report = store.verify()
        store.close()
    if report["checked"] != len(names):
        problems.append(("checkpoints missing", f"{report['checked']} of {len(names)} indexed"))
    for key, kind in (("dropped", "checkpoints failing their checksum"), ("rows_dropped", "rows failing their checksum"),
                      ("orphans_removed", "blob files nothing indexes")):
        if report[key]:
            problems.append((kind, str(report[key])))
    problems += [("warning in the check", str(w.message)) for w in seen]
    return problems


def drill(label: str, make_index, reps: int, processes: int) -> dict:
    """``reps`` fresh caches filled by ``processes`` kept processes; ``make_index(rep)``: None or a
    fresh database's URL."""
    ctx = multiprocessing.get_context("spawn")
    tasks = [ctx.Queue() for _ in range(processes)]
    start, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=worker_loop, args=(w, tasks[w], start, results), daemon=True)
             for w in range(processes)]
    for p in procs:
        p.start()
    for _ in range(processes):
        results.get(timeout=300)
    base = Path(tempfile.mkdtemp(prefix="hpo-bench-concurrency-"))
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    fill_times = []
    t0 = time.perf_counter()
    try:
        for rep in range(reps):
            root, index = base / f"rep{rep}", make_index(rep)
            t = time.perf_counter()
            for q in tasks:
                q.put((str(root), index))
            for _ in range(processes):
                _, kind, detail = results.get(timeout=300)
                if kind is not None:
                    errors[kind] += 1
                    examples.setdefault(kind, detail)
            fill_times.append(time.perf_counter() - t)
            for kind, detail in check(root, index, processes):
                errors[kind] += 1
                examples.setdefault(kind, detail)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        for q in tasks:
            q.put(None)
        for p in procs:
            p.join(30)
        shutil.rmtree(base, ignore_errors=True)
    return {"index": label, "reps": reps, "processes": processes, "errors": sum(errors.values()),
            "by_kind": dict(errors), "examples": examples, "wall_s": round(time.perf_counter() - t0, 2),
            "fill_median_s": round(statistics.median(fill_times), 3), "fill_max_s": round(max(fill_times), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="fresh caches per kind of index (default 50)")
    ap.add_argument("--processes", type=int, default=4, help="processes filling each cache at once (default 4)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.reps < 1 or args.processes < 1:
        sys.exit("--reps and --processes must be >= 1")
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import PostgresServer, available

    print(f"{args.processes} processes open one fresh cache at once and fill it; {args.reps} reps per index", flush=True)
    rows = [drill("sqlite", lambda rep: None, args.reps, args.processes)]
    reason = available()
    if reason is None:
        with PostgresServer() as pg:
            rows.append(drill("postgresql", lambda rep: pg.create_database(f"rep{rep}"), args.reps, args.processes))
    print("\n| index | reps | processes | errors | wall | fill per rep (median, max) |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['index']} | {r['reps']} | {r['processes']} | {r['errors']} | {r['wall_s']:.1f} s | "
              f"{r['fill_median_s']:.2f} s, {r['fill_max_s']:.2f} s |")
    if reason is not None:
        print(f"| postgresql | skipped: {reason} | | | | |")
    for r in rows:
        for kind, n in sorted(r["by_kind"].items(), key=lambda kv: -kv[1]):
            print(f"{r['index']}: {n} x {kind}\n    e.g. {r['examples'][kind][:300]}")
    if not any(r["errors"] for r in rows):
        print("errors by kind: none")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    sys.exit(1 if any(r["errors"] for r in rows) else 0)


if __name__ == "__main__":
    main()
