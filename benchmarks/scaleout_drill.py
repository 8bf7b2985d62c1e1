"""Scale-out drill: many workers give the answer one process gives, whatever happens to them.

    python benchmarks/scaleout_drill.py [--suite benchmarks/suites/default.toml] [--kills 10]

Everything runs through the ``hpo-bench`` command line, as a user would, each setup on a cold cache
of its own, against a throwaway PostgreSQL server on this machine (tests/pg_server.py):

1. ``suite`` by one process (journal files): the reference, and its wall time.
2. ``suite --workers 2`` (journal files, one queue.sqlite3): its wall time beside 1's.
3. ``suite --storage PG --workers 4``: the runs in PostgreSQL, four worker processes.
4. ``suite --storage PG --submit``, then four ``hpo-bench worker --storage PG`` processes; once runs
   are under way, at random moments (1-6 s apart) a worker that is running a run (the queue says
   which) is killed with SIGKILL and a fresh one started, ``--kills`` times; then
   ``hpo-bench report --storage PG``.
5. ``run --workers 4 --budget 20``: exactly 20 trials, no trial number twice.

Every setup's ``summary.json`` must equal the reference's (times and the cache's actual epochs aside); the
queue must hold every run done once and none failed. Exit status 1 on any difference.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
BIN = [sys.executable, "-m", "hpo_bench"]
# what differs between runs of the same work: times, folders, and the epochs really trained here (the
# cache's saving: which of two runs asking for one config trains it depends on who gets there first;
# the nominal epochs, the budget's currency, must match)
TIMES = ("seconds", "wall", "timing", "dir", "_s", "actual_epochs")


def hpo(*args: str, cache: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HPO_BENCH_CACHE": str(cache)}
    return subprocess.run([*BIN, *args], env=env, check=check, text=True, capture_output=True, **kw)


def results(path: Path) -> object:
    """A summary.json without what differs between runs of the same work (times, folders)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not any(t in k for t in TIMES)}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return clean(json.loads(path.read_text()))


def summaries(out: Path) -> dict[str, object]:
    return {p.parent.name: results(p) for p in sorted(out.glob("*/summary.json"))}


def timed(label: str, *args: str, cache: Path) -> float:
    t0 = time.perf_counter()
    hpo(*args, cache=cache)
    wall = time.perf_counter() - t0
    print(f"{label}: {wall:.1f} s", flush=True)
    return wall


def kill_drill(url: str, suite: str, out: Path, cache: Path, kills: int, seed: int) -> int:
    """Four workers, one killed at random moments and replaced, ``kills`` times; returns the kills."""
    hpo("suite", suite, "--storage", url, "--submit", "--out", str(out), cache=cache)
    env = {**os.environ, "HPO_BENCH_CACHE": str(cache)}

    def start() -> subprocess.Popen:
        return subprocess.Popen([*BIN, "worker", "--storage", url, "--poll", "0.5"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    from hpo_bench.harness.queue import RunQueue

    queue = RunQueue(url)
    rng = random.Random(seed)
    workers = [start() for _ in range(4)]
    done = 0
    while done < kills:
        time.sleep(rng.uniform(1.0, 6.0))
        running = {r.worker.rpartition(":")[2]: r for r in queue.runs(states=("running",)) if r.worker}
        busy = [w for w in workers if w.poll() is None and str(w.pid) in running]
        if not busy:
            if not queue.runs(states=("queued", "running")):
                break  # all done before the last kill
            continue
        victim = rng.choice(busy)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        done += 1
        workers.append(start())
        run = running[str(victim.pid)]
        print(f"  kill {done}: worker {victim.pid} during {run.study} (attempt {run.attempts})", flush=True)
    for w in workers:
        w.wait()
    return done


def main() -> int:
    import pg_server

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default=str(ROOT / "benchmarks/suites/default.toml"))
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = p.parse_args()
    if (why := pg_server.available()) is not None:
        print(f"PostgreSQL unavailable: {why}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="scaleout-"))
    print(f"load average {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}; in {work}", flush=True)
    failures = []
    with pg_server.PostgresServer() as pg:
        one = timed("1 process", "suite", args.suite, "--out", str(work / "one"), cache=work / "c1")
        two = timed("2 workers", "suite", args.suite, "--workers", "2", "--out", str(work / "two"), cache=work / "c2")
        print(f"wall ratio 1 process / 2 workers: {one / two:.2f}", flush=True)
        reference = summaries(work / "one")
        url = pg.create_database("drill_four")
        timed("4 workers, PostgreSQL", "suite", args.suite, "--storage", url, "--workers", "4", "--out",
              str(work / "four"), cache=work / "c4")
        url_k = pg.create_database("drill_kill")
        kills = kill_drill(url_k, args.suite, work / "kill", work / "ck", args.kills, args.seed)
        rep = hpo("report", "--storage", url_k, "--out", str(work / "kill"), cache=work / "ck", check=False)
        if rep.returncode != 0:
            failures.append(f"report after the kills: {rep.stderr.strip()}")
        for label, out in (("2 workers", work / "two"), ("4 workers, PostgreSQL", work / "four"),
                           (f"4 workers, {kills} kills", work / "kill")):
            same = summaries(out) == reference
            print(f"{label}: summary.json {'identical to' if same else 'DIFFERENT from'} 1 process's", flush=True)
            if not same:
                failures.append(label)
        from hpo_bench.harness.queue import RunQueue

        for url_q in (url, url_k):
            counts = RunQueue(url_q).counts()
            print(f"queue {url_q.rsplit('/', 1)[1]}: {counts}")
            if counts["queued"] or counts["running"] or counts["failed"]:
                failures.append(f"queue {url_q}: {counts}")
        run = hpo("run", "--problem", "digits-mlp", "--method", "tpe", "--workers", "4", "--budget", "20", "--json",
                  "--out", str(work / "run"), cache=work / "c1")
        trials = json.loads(run.stdout)["result"]["trials"]
        numbers = [t["number"] for t in trials]
        print(f"run --workers 4 --budget 20: {len(trials)} trials, {len(set(numbers))} distinct numbers")
        if len(trials) != 20 or len(set(numbers)) != 20:
            failures.append("run --workers 4")
    print("FAILED: " + "; ".join(failures) if failures else "all identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
