"""Locks the kernel releases when their process dies: no stale lock, no grace period to wait out.

* ``FlockJournalLock``: the write lock of an Optuna journal file. Optuna's default symlink lock is
  left behind by a process killed while writing, and the next process waits its 30 s grace period
  before breaking it; an ``flock`` ends with its process.
* ``repair_torn_tail``: a full disk or a kill during a journal write can leave a partial last line;
  the next append would be glued onto it and the journal unreadable for good. Under the write lock
  (so never while another process writes), the partial line is cut back to the last newline: it is
  the record that never completed, and Optuna had not read it.
* ``study_claim``: one process at a time runs a study (ARCHITECTURE.md: one worker per study keeps
  every method's behaviour that of a single process). Another process asking for the same study
  either waits or, with ``wait=False``, is told to do something else first.

All three work where ``fcntl.flock`` works: local file systems (and NFS with a lock manager).
``advisory_claim`` is ``study_claim`` for a ledger in PostgreSQL: a session advisory lock, which
the server releases when the claiming connection ends (the process died: at once; its machine was
lost: when TCP keepalive gives up, ``storage.KEEPALIVE``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["FlockJournalLock", "advisory_claim", "repair_torn_tail", "study_claim"]


class FlockJournalLock:
    """An exclusive ``flock`` on ``JOURNAL.flock``: the journal's write lock, for Optuna's
    ``JournalFileBackend(lock_obj=...)`` (the interface of its ``BaseJournalFileLock``, which the
    optuna.storages.journal package does not export: acquire() -> True, release())."""

    def __init__(self, journal: str | Path) -> None:
        self._path = f"{journal}.flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def repair_torn_tail(journal: str | Path) -> int:
    """Cut a partial last line off ``journal`` (under its write lock); returns the bytes cut."""
    path = Path(journal)
    if not path.is_file():
        return 0
    lock = FlockJournalLock(path)
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            end, chunk = size, 1 << 16
            keep = 0
            while end > 0:  # find the last newline, reading backwards
                start = max(0, end - chunk)
                f.seek(start)
                block = f.read(end - start)
                i = block.rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    break
                end = start
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    warnings.warn(f"hpo-bench: {path} ended in a partial record (a write cut short by a kill or a full "
                  f"disk); removed its {size - keep} bytes, every complete record is kept", RuntimeWarning,
                  stacklevel=2)
    return size - keep


_HELD: set[Any] = set()  # claims this process holds (a claim is re-entrant within its process)


@contextlib.contextmanager
def study_claim(ledger: str | Path | None, study: str, wait: bool = True) -> Iterator[bool]:
    """Hold the claim on ``study`` of the file ledger ``ledger`` while the block runs. Yields True
    once held; with ``wait=False``, yields False at once if another process holds it. For a ledger
    that is not a file here (None: in memory; a database URL), yields True: no claim is taken."""
    if ledger is None or "://" in str(ledger):
        yield True
        return
    ledger = Path(ledger).resolve()
    claims = ledger.with_name(f".{ledger.name}.claims")
    claims.mkdir(exist_ok=True)
    path = claims / f"{hashlib.sha256(study.encode()).hexdigest()[:24]}.lock"
    if path in _HELD:
        yield True
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        _HELD.add(path)
        try:
            yield True
        finally:
            _HELD.discard(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_id(study: str) -> int:
    """A study name as PostgreSQL's 64-bit advisory lock key (namespaced: no other application's
    lock on the same database collides but by a 2**-64 chance)."""
    return int.from_bytes(hashlib.sha256(f"hpo_bench.study:{study}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_claim(engine: Any, study: str, wait: bool = True) -> Iterator[bool]:
    """``study_claim`` on a PostgreSQL server (``engine``: a SQLAlchemy engine): a session
    advisory lock on a connection held while the block runs."""
    from sqlalchemy import text

    held = (str(engine.url), study)
    if held in _HELD:
        yield True
        return
    key = _lock_id(study)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if wait:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        elif not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            yield False
            return
        _HELD.add(held)
        try:
            yield True
        finally:
            _HELD.discard(held)
            with contextlib.suppress(Exception):  # a lost connection has released it already
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        conn.close()
