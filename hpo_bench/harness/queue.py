"""The run queue: the runs of comparisons waiting for workers, kept beside their studies.

The unit of distributed work is one run (problem, method, seed) of a comparison, as in benchmark
harnesses (CARP-S, HPOBench). A comparison is submitted as a *group*: its spec (problem, methods,
seeds, budget, evaluation seed, the ledger its studies live in) and one row per run. Workers
(worker.py) take the runs in order, each under the claim of its study (``Ledger.claim``: an
``flock`` for a ledger file, a PostgreSQL advisory lock for a database), so the queue itself needs
no locks: its rows only say what is wanted and what is done.

Where it lives: in the database that holds the studies when that is PostgreSQL (tables
``hpo_bench_groups`` and ``hpo_bench_runs`` beside Optuna's), else in ``queue.sqlite3`` beside the
ledger file (``queue_url``). A run's state is ``queued``, ``running`` (a worker took it; if that
worker dies the claim goes with it and any worker may take the run again), ``done`` or ``failed``
(the run's own settings are wrong: retrying would fail again; the error is kept).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._text import redacted
from .storage import JOURNAL_SUFFIXES

__all__ = ["QUEUE_FILE", "Group", "QueuedRun", "RunQueue", "is_database", "queue_url"]

QUEUE_FILE = "queue.sqlite3"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hpo_bench_groups (
        name TEXT PRIMARY KEY, spec TEXT NOT NULL, baseline TEXT, created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hpo_bench_runs (
        grp TEXT NOT NULL, position INTEGER NOT NULL, study TEXT NOT NULL, method TEXT NOT NULL,
        seed INTEGER NOT NULL, state TEXT NOT NULL, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        updated DOUBLE PRECISION, error TEXT, PRIMARY KEY (grp, study))""",
)


def is_database(storage: str | None) -> bool:
    """Whether a storage string names a database server (not a file here, not memory)."""
    return storage is not None and "://" in storage and not storage.startswith("sqlite:")


def queue_url(location: str | Path) -> str:
    """Where the queue of a storage lives, as a SQLAlchemy URL: a database URL is its own queue;
    a ledger file (``DIR/studies.log``), a queue file or a directory -> ``DIR/queue.sqlite3``."""
    loc = str(location)
    if is_database(loc):
        return loc
    path = Path(loc.removeprefix("sqlite:///"))
    if path.is_dir():
        path = path / QUEUE_FILE
    elif path.suffix in JOURNAL_SUFFIXES or path.suffix == ".db":
        path = path.with_name(QUEUE_FILE)
    if not path.parent.is_dir():
        raise ValueError(f"queue directory {str(path.parent)!r} does not exist")
    return f"sqlite:///{path.resolve()}"


@dataclass(frozen=True)
class Group:
    """A submitted comparison: ``spec`` holds problem, problem_args, methods, seeds, budget,
    eval_seed, storage (the ledger of its studies; None: the queue's own database) and threads."""

    name: str
    spec: dict[str, Any]
    baseline: dict[str, Any] | None


@dataclass(frozen=True)
class QueuedRun:
    group: str
    position: int
    study: str
    method: str
    seed: int
    state: str
    worker: str | None = None
    attempts: int = 0
    error: str | None = None


class RunQueue:
    """The queue tables of one database (PostgreSQL, or a SQLite file for one machine)."""

    def __init__(self, location: str | Path, create: bool = True) -> None:
        """``create`` False: a local queue file must exist already (a worker or a report reads
        what was submitted; a typo must not leave an empty queue behind)."""
        from sqlalchemy import create_engine, event, text

        self.url = queue_url(location)
        if not create and self.url.startswith("sqlite") and not Path(self.url.removeprefix("sqlite:///")).is_file():
            raise ValueError(f"no run queue at {location} ({QUEUE_FILE} not found): submit runs there first "
                             "(compare or suite with --submit or --workers)")
        self.text = text
        if self.url.startswith("sqlite"):
            self.engine = create_engine(self.url, connect_args={"timeout": 60})

            @event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()
        else:
            from .storage import pg_engine_kwargs, sqlalchemy_url

            self.engine = create_engine(sqlalchemy_url(self.url), **pg_engine_kwargs())
        try:
            self._create()
        except Exception as e:  # noqa: BLE001 - unreachable server, bad URL, a file that is not a database
            self.engine.dispose()
            raise ValueError(f"queue {redacted(self.url)}: cannot open it ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None

    def _create(self) -> None:
        with self.engine.begin() as c:
            if self.engine.dialect.name == "postgresql":  # CREATE TABLE IF NOT EXISTS races in PostgreSQL
                c.execute(self.text("SELECT pg_advisory_xact_lock(7286315519)"))
            for stmt in _SCHEMA:
                c.execute(self.text(stmt))

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as c:
            return list(c.execute(self.text(sql), params))

    # ------------------------------------------------------------------ submitting
    def submit(self, name: str, spec: dict[str, Any], runs: list[tuple[str, int, str]]) -> int:
        """Queue group ``name`` with its ``runs`` (method, seed, study name); returns how many
        runs were new. Submitting the same group again adds nothing and re-queues its failed runs;
        a group of that name with another spec is an error (it would mix two comparisons)."""
        text = json.dumps(spec, sort_keys=True)
        suite, _, member = name.partition("/")
        for g in self.groups():
            if (member and g.name == suite) or (not member and g.name.startswith(f"{name}/")):
                raise ValueError(f"the queue {redacted(self.url)} holds {'a comparison' if member else 'a suite'} "
                                 f"named {(suite if member else name)!r}; give this one another name")
        with self.engine.begin() as c:
            c.execute(self.text("INSERT INTO hpo_bench_groups (name, spec, created) VALUES (:n, :s, :t) "
                                "ON CONFLICT (name) DO NOTHING"), {"n": name, "s": text, "t": time.time()})
            stored = c.execute(self.text("SELECT spec FROM hpo_bench_groups WHERE name=:n"), {"n": name}).scalar()
            if json.loads(stored) != json.loads(text):
                raise ValueError(f"comparison {name!r} is already in the queue {redacted(self.url)} with other "
                                 f"settings ({_difference(json.loads(stored), spec)}); give it another name")
            new = 0
            for i, (method, seed, study) in enumerate(runs):
                new += c.execute(self.text(
                    "INSERT INTO hpo_bench_runs (grp, position, study, method, seed, state, updated) "
                    "VALUES (:g, :p, :s, :m, :seed, 'queued', :t) ON CONFLICT (grp, study) DO NOTHING"),
                    {"g": name, "p": i, "s": study, "m": method, "seed": int(seed), "t": time.time()}).rowcount
            c.execute(self.text("UPDATE hpo_bench_runs SET state='queued', error=NULL WHERE grp=:g AND state='failed'"),
                      {"g": name})
        return new

    # ------------------------------------------------------------------ reading
    def groups(self, names: list[str] | None = None) -> list[Group]:
        rows = self._rows("SELECT name, spec, baseline FROM hpo_bench_groups ORDER BY created, name")
        out = [Group(n, json.loads(s), json.loads(b) if b else None) for n, s, b in rows]
        return out if names is None else [g for g in out if g.name in names]

    def group(self, name: str) -> Group | None:
        found = self.groups([name])
        return found[0] if found else None

    def members(self, names: list[str]) -> list[str]:
        """The groups ``names`` stand for: a comparison's own name, or a suite's (``SUITE`` ->
        every ``SUITE/NAME``). A name that stands for none is a ValueError naming what is there."""
        groups = [g.name for g in self.groups()]
        out = []
        for n in names:
            found = [g for g in groups if g == n or g.startswith(f"{n}/")]
            if not found:
                there = sorted({g.partition("/")[0] for g in groups})
                raise ValueError(f"no comparison or suite {n!r} in the queue {redacted(self.url)}; it holds: "
                                 f"{', '.join(there) or 'nothing'}")
            out += [g for g in found if g not in out]
        return out

    def runs(self, groups: list[str] | None = None, states: tuple[str, ...] | None = None) -> list[QueuedRun]:
        """Runs in the order workers take them: groups by submission, then each group's order."""
        rows = self._rows(
            "SELECT r.grp, r.position, r.study, r.method, r.seed, r.state, r.worker, r.attempts, r.error "
            "FROM hpo_bench_runs r JOIN hpo_bench_groups g ON g.name = r.grp ORDER BY g.created, r.grp, r.position")
        out = [QueuedRun(*r) for r in rows]
        return [r for r in out if (groups is None or r.group in groups) and (states is None or r.state in states)]

    def state(self, group: str, study: str) -> str | None:
        rows = self._rows("SELECT state FROM hpo_bench_runs WHERE grp=:g AND study=:s", g=group, s=study)
        return rows[0][0] if rows else None

    def counts(self, groups: list[str] | None = None) -> dict[str, int]:
        """Runs per state (queued, running, done, failed) of ``groups`` (default: all)."""
        out = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for r in self.runs(groups):
            out[r.state] = out.get(r.state, 0) + 1
        return out

    def not_done(self, groups: list[str], label: str) -> str | None:
        """None when every run of ``groups`` is done; else one line saying how many are, what is
        open, and the first failure's error (``label``: what the groups are, for the line)."""
        counts = self.counts(groups)
        if not (counts["queued"] or counts["running"] or counts["failed"]):
            return None
        failed = self.runs(groups, states=("failed",))[:1]
        why = "".join(f"; first failure: {r.study}: {r.error}" for r in failed)
        return (f"{label}: {counts['done']} of {sum(counts.values())} runs done ({counts['queued']} queued, "
                f"{counts['running']} running, {counts['failed']} failed{why})")

    # ------------------------------------------------------------------ workers
    def mark(self, group: str, study: str, state: str, worker: str | None = None, error: str | None = None) -> None:
        """Record a run's state; ``running`` also counts an attempt. A run done or failed under
        another group that shares its study is that group's business (each group marks its own)."""
        extra = ", attempts = attempts + 1" if state == "running" else ""
        with self.engine.begin() as c:
            c.execute(self.text(f"UPDATE hpo_bench_runs SET state=:st, worker=:w, error=:e, updated=:t{extra} "
                                "WHERE grp=:g AND study=:s"),
                      {"st": state, "w": worker, "e": error, "t": time.time(), "g": group, "s": study})

    def set_baseline(self, group: str, baseline: dict[str, Any]) -> None:
        """The problem's untuned default and its values, evaluated once by some worker for the
        report (every worker would get the same values: evaluations are pure)."""
        with self.engine.begin() as c:
            c.execute(self.text("UPDATE hpo_bench_groups SET baseline=:b WHERE name=:n AND baseline IS NULL"),
                      {"b": json.dumps(baseline), "n": group})


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])
