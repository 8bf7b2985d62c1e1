"""Fault drill: disturb a real comparison every way a machine can, then check that rerunning the
same command ends with exactly the summary of an undisturbed run (ARCHITECTURE.md invariant 6).

    python benchmarks/fault_drill.py [--tries 10] [--json OUT.json]

The comparison: ``hpo-bench compare --problem digits-mlp --methods grid,gp,tpe-hyperband
--budget-epochs 12 --seeds 2`` (a real CLI process each time). Drills:

* kill: SIGKILL or SIGINT at a random moment (start-up, mid-trial, mid-write), then the same command
  again; a ledger cut mid-record is part of it when the kill lands in a write;
* processes: 4 processes run the command into one --out at once;
* corrupt: the cache index overwritten with garbage, a checkpoint blob's bytes flipped, a stored
  per-epoch value changed; then the command again;
* full disk: the cache on a 3 MiB tmpfs (needs root to mount; skipped otherwise), so checkpoint
  writes fail part-way.

For every try: whether each process ended (exit 0 on the final run), trials lost (trials a process
had finished that the final ledger does not hold), and whether the final summary differs from the
undisturbed one (every number but ``actual_epochs``, which depends on what the cache held).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["compare", "--problem", "digits-mlp", "--methods", "grid,gp,tpe-hyperband", "--budget-epochs", "12",
        "--seeds", "2", "--device", "cpu"]


def command(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "hpo_bench", *ARGS, "--out", str(out), "--cache", str(cache)]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(out: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, cache), capture_output=True, text=True, env=env(), timeout=1800)


def results(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for row in summary["summary"].values():
        row.pop("actual_epochs", None)
    return summary


def finished_trials(out: Path) -> set[tuple[str, int, str]]:
    """(study, trial number, params) of every trial the ledger holds as finished and counted."""
    import optuna

    from hpo_bench.harness.storage import open_storage
    from hpo_bench.methods.ledger import counted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ledger = out / "studies.log"
    if not ledger.exists():
        return set()
    try:
        storage = open_storage(str(ledger))
        out_set = set()
        for s in optuna.get_all_study_summaries(storage):
            for t in optuna.load_study(study_name=s.study_name, storage=storage).trials:
                if counted(t):
                    out_set.add((s.study_name, t.number, json.dumps(t.params, sort_keys=True)))
        return out_set
    except Exception:  # noqa: BLE001 - a ledger the drill cannot read counts as everything lost
        return set()


def drill_kill(reference: dict, work: Path, rng: random.Random, duration: float) -> dict:
    out, cache = work / "out", work / "cache"
    sig = rng.choice([signal.SIGKILL, signal.SIGINT])
    p = subprocess.Popen(command(out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    time.sleep(rng.uniform(0.2, duration))
    p.send_signal(sig)
    p.wait()
    before = finished_trials(out)
    final = run(out, cache)
    after = finished_trials(out)
    return {"drill": f"kill ({signal.Signals(sig).name})", "ok": final.returncode == 0,
            "lost": len(before - after), "differs": final.returncode != 0 or results(out) != reference,
            "error": final.stderr[-300:] if final.returncode else ""}


def drill_processes(reference: dict, work: Path, n: int = 4) -> dict:
    out, cache = work / "out", work / "cache"
    procs = [subprocess.Popen(command(out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
             for _ in range(n)]
    codes = [p.wait(timeout=1800) for p in procs]
    errors = [p.stderr.read()[-300:] for p, c in zip(procs, codes) if c]
    return {"drill": f"{n} processes, one --out", "ok": codes == [0] * n, "lost": 0,
            "differs": any(codes) or results(out) != reference, "error": "; ".join(errors)}


def drill_corrupt(reference: dict, work: Path, rng: random.Random) -> dict:
    out, cache = work / "out", work / "cache"
    first = run(out, cache)
    if first.returncode:
        return {"drill": "corrupt cache", "ok": False, "lost": 0, "differs": True, "error": first.stderr[-300:]}
    what = rng.choice(["index", "blob", "value"])
    if what == "index":
        (cache / "index.sqlite3").write_bytes(os.urandom(4096))
        for extra in ("-wal", "-shm"):
            Path(f"{cache / 'index.sqlite3'}{extra}").unlink(missing_ok=True)
    elif what == "blob":
        blobs = sorted((cache / "blobs").glob("*.safetensors"))
        blob = rng.choice(blobs)
        data = bytearray(blob.read_bytes())
        for _ in range(8):
            data[rng.randrange(len(data))] ^= 0xFF
        blob.write_bytes(bytes(data))
    else:
        db = sqlite3.connect(cache / "index.sqlite3")
        db.execute("UPDATE epochs SET accuracy = accuracy * 0.5 WHERE rowid = (SELECT rowid FROM epochs ORDER BY random() LIMIT 1)")
        db.commit()
        db.close()
    shutil.rmtree(out)  # the comparison again, from the (corrupted) cache
    final = run(out, cache)
    return {"drill": f"corrupt cache ({what})", "ok": final.returncode == 0, "lost": 0,
            "differs": final.returncode != 0 or results(out) != reference, "error": final.stderr[-300:] if final.returncode else ""}


def drill_full_disk(reference: dict, work: Path) -> dict | None:
    mount = work / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode:
        return None
    try:
        out, cache = work / "out", mount / "cache"
        final = run(out, cache)
        return {"drill": "full disk under the cache (3 MiB)", "ok": final.returncode == 0, "lost": 0,
                "differs": final.returncode != 0 or results(out) != reference,
                "error": final.stderr[-300:] if final.returncode else ""}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tries", type=int, default=10, help="kill drills (and corruption drills: a third as many)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every try's outcome here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="hpo-bench-drill-"))
    t0 = time.perf_counter()
    (base / "ref").mkdir()
    ref = run(base / "ref" / "out", base / "ref" / "cache")
    if ref.returncode:
        sys.exit(f"the undisturbed run failed:\n{ref.stderr}")
    duration = time.perf_counter() - t0
    reference = results(base / "ref" / "out")
    print(f"undisturbed run: {duration:.0f} s", flush=True)
    tries: list[dict] = []

    def fresh(name: str) -> Path:
        d = base / name
        d.mkdir()
        return d

    for i in range(args.tries):
        tries.append(drill_kill(reference, fresh(f"kill{i}"), rng, duration))
        print(tries[-1], flush=True)
    tries.append(drill_processes(reference, fresh("procs")))
    print(tries[-1], flush=True)
    for i in range(max(1, args.tries // 3)):
        tries.append(drill_corrupt(reference, fresh(f"corrupt{i}"), rng))
        print(tries[-1], flush=True)
    full = drill_full_disk(reference, fresh("full"))
    if full is None:
        print("full disk: skipped (mounting a tmpfs needs root)")
    else:
        tries.append(full)
        print(tries[-1], flush=True)

    rows: dict[str, list[int]] = {}
    for t in tries:
        kind = t["drill"].split(" (")[0]
        r = rows.setdefault(kind, [0, 0, 0, 0])
        r[0] += 1
        r[1] += not t["ok"]
        r[2] += t["lost"]
        r[3] += t["differs"]
    print("\n| drill | tries | failed runs | lost trials | differing results |\n|---|---:|---:|---:|---:|")
    for kind, (n, failed, lost, differs) in rows.items():
        print(f"| {kind} | {n} | {failed} | {lost} | {differs} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": ARGS, "tries": tries}, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if any(not t["ok"] or t["lost"] or t["differs"] for t in tries) else 0)


if __name__ == "__main__":
    main()
