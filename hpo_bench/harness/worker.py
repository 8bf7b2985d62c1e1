"""Workers: processes on any machine that take queued runs (queue.py) and run them until none is left.

A worker walks the open runs in queue order. For each it tries the claim of the run's study without
waiting (``Ledger.claim``: an ``flock`` beside a ledger file, a PostgreSQL advisory lock for a
database); a run another worker holds is skipped. Under the claim it reads the run's state again
(another worker may have finished it since the listing), marks it running and calls ``search``,
which continues the study wherever an earlier worker left it: trials a killed worker left RUNNING
are marked interrupted, not charged, and run again, so a run resumed here ends exactly as it would
have uninterrupted (ARCHITECTURE.md invariants 2 and 6). One process per study at a time keeps
every method's behaviour that of a single process, so the number of workers never changes a
result (invariant 7).

When every open run is held by another worker, a worker waits and looks again: a run whose worker
died is claimable at once (its claim died with it) and is taken here. It stops when no run is open
(``forever``: it keeps polling for new submissions).
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..evaluate import make_evaluator
from .queue import Group, QueuedRun, RunQueue, is_database
from .runner import search
from .storage import Ledger, open_ledger

__all__ = ["CacheSpec", "group_budget", "group_problem", "start_workers", "wait_workers", "work", "worker_id"]


@dataclass(frozen=True)
class CacheSpec:
    """How a worker opens the checkpoint store (``evaluate.store.CheckpointStore``): its blob
    directory ``root`` (None: the default cache), size cap, and index (None: SQLite under root; a
    ``postgresql://`` URL: that database, shared by every worker on every machine)."""

    root: str | None = None
    max_bytes: int | None = None
    index: str | None = None

    @classmethod
    def of(cls, store: Any) -> CacheSpec | None:
        """The spec of an open store (None: no store, no cache)."""
        if store is None:
            return None
        return cls(str(store.root), store.max_bytes, getattr(store, "index_url", None))

    def open(self) -> Any:
        from ..evaluate.store import CheckpointStore

        kwargs = {"index": self.index} if self.index else {}
        return CheckpointStore(self.root, max_bytes=self.max_bytes, **kwargs)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def group_problem(spec: dict[str, Any]) -> Any:
    """The problem of a submitted comparison, rebuilt by name (with its factory arguments)."""
    from ..evaluate import load_problem
    from ..problems import get_problem

    args = spec.get("problem_args") or {}
    return get_problem(spec["problem"], **args) if args else load_problem(spec["problem"])


def group_budget(spec: dict[str, Any]) -> Any:
    """The budget of a submitted comparison."""
    from .budget import Budget

    return Budget(trials=spec["budget"].get("trials"), epochs=spec["budget"].get("epochs"))


class _GroupContext:
    """What a worker builds once per comparison: the problem, its evaluator and its ledger."""

    def __init__(self, queue: RunQueue, group: Group, store: Any, device: str) -> None:
        spec = group.spec
        self.problem = group_problem(spec)
        self.budget = group_budget(spec)
        self.eval_seed = int(spec.get("eval_seed", 0))
        self.study_workers = int(spec.get("study_workers", 1))
        self.threads = spec.get("threads")
        if self.threads is not None:  # before any of the group's work: the baseline below included
            import torch

            torch.set_num_threads(int(self.threads))
        self.store = store
        self.evaluator = make_evaluator(self.problem, device, self.eval_seed, store)
        self.ledger: Ledger = open_ledger(spec.get("storage") or queue.url)
        if group.baseline is None:  # for the report: the untuned default, evaluated once by someone
            cfg = self.problem.baseline_config()
            queue.set_baseline(group.name, {"config": cfg, "values": self.evaluator.evaluate(cfg).values})


def work(
    queue: RunQueue | str,
    *,
    groups: list[str] | None = None,
    cache: CacheSpec | None = None,
    device: str = "cpu",
    forever: bool = False,
    poll: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> int:
    """Take and run the open runs of ``groups`` (default: every group) until none is left;
    returns how many runs this worker finished. ``cache``: the checkpoint store every run uses
    (None: no cache). A run whose settings are wrong (a ``ValueError``, e.g. a study that belongs
    to another version of its problem) is marked failed with its error and the worker goes on;
    any other exception (Ctrl-C, a full disk) leaves the run to be taken again and is raised."""
    q = queue if isinstance(queue, RunQueue) else RunQueue(queue)
    me = worker_id()
    say = log or (lambda _line: None)
    store = cache.open() if cache is not None else None
    contexts: dict[str, _GroupContext] = {}
    finished = 0
    while True:
        open_runs = q.runs(groups, states=("queued", "running"))
        if not open_runs:
            if not forever:
                return finished
            time.sleep(poll)
            continue
        ran = False
        for run in open_runs:
            if run.group not in contexts:
                group = q.group(run.group)
                if group is None:
                    continue
                contexts[run.group] = _GroupContext(q, group, store, device)
            ctx = contexts[run.group]
            with ctx.ledger.claim(run.study, wait=False) as held:
                if not held or q.state(run.group, run.study) not in ("queued", "running"):
                    continue
                _run(q, run, ctx, me, say)
                finished += 1
                ran = True
            break  # look at the queue afresh: new runs, and runs other workers finished meanwhile
        if not ran:
            time.sleep(poll)  # every open run is held by another worker: wait for them


def _run(q: RunQueue, run: QueuedRun, ctx: _GroupContext, me: str, say: Callable[[str], None]) -> None:
    if ctx.threads is not None:
        import torch

        torch.set_num_threads(int(ctx.threads))
    q.mark(run.group, run.study, "running", worker=me)
    t0 = time.perf_counter()
    try:
        res = search(ctx.problem, run.method, ctx.budget, run.seed, ctx.ledger, evaluator=ctx.evaluator,
                     memo=ctx.store, n_workers=ctx.study_workers)
    except ValueError as e:  # the run's own settings: another attempt would fail the same way
        q.mark(run.group, run.study, "failed", worker=me, error=str(e))
        say(f"worker {me}: {run.study} failed: {e}")
        return
    except BaseException:
        q.mark(run.group, run.study, "queued")
        raise
    q.mark(run.group, run.study, "done", worker=me)
    say(f"worker {me}: {run.study} done ({len(res.trials)} trials, {time.perf_counter() - t0:.1f} s)")


# ---------------------------------------------------------------------- local worker processes
def _worker_main(queue_url: str, groups: list[str] | None, cache: CacheSpec | None, device: str,
                 quiet: bool, threads: int | None) -> None:
    import sys

    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    work(queue_url, groups=groups, cache=cache, device=device, log=say)


def start_workers(queue: RunQueue | str, n: int, *, groups: list[str] | None = None, cache: CacheSpec | None = None,
                  device: str = "cpu", quiet: bool = False) -> list[Any]:
    """Start ``n`` worker processes on this machine (``multiprocessing``, spawned: nothing of this
    process's state is shared). On the CPU each gets an equal share of the cores as torch threads
    (unless its comparison sets ``threads``): n processes with every core each would thrash. With
    ``device`` cuda and several GPUs, worker i sees GPU i mod count only (``CUDA_VISIBLE_DEVICES``),
    so each worker has its own."""
    import multiprocessing

    url = queue.url if isinstance(queue, RunQueue) else str(queue)
    if not is_database(url) and not url.startswith("sqlite"):
        from .queue import queue_url

        url = queue_url(url)
    gpus = _gpu_count() if device.startswith("cuda") and ":" not in device else 0
    threads = None if device.startswith("cuda") else max(1, (os.cpu_count() or 1) // n)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        for i in range(n):
            if gpus > 1:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
            p = ctx.Process(target=_worker_main, args=(url, groups, cache, device, quiet, threads), name=f"hpo-bench-worker-{i}")
            p.start()
            procs.append(p)
    finally:
        if gpus > 1:
            if before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = before
    return procs


def wait_workers(procs: list[Any]) -> list[int]:
    """Wait for every worker process; returns their exit codes (a worker killed by a signal: -N).
    Ctrl-C here stops them too (their runs stay queued: rerunning continues them)."""
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    return [p.exitcode for p in procs]


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
