"""Where the trial ledger lives: an Optuna storage from a path or URL, and the study names in it.

A path ending in .log/.jsonl/.journal is an Optuna journal file (the default under an output
directory, ``default_storage``); any other path, or ``sqlite:///path``, a SQLite file; any other
URL (``postgresql://...``, for several machines) goes to Optuna's RDB storage, with TCP keepalives
on both ends so that the server notices a lost worker within half a minute (``pg_engine_kwargs``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._text import redacted
from .locks import advisory_claim, study_claim

__all__ = ["JOURNAL_SUFFIXES", "Ledger", "default_storage", "open_ledger", "open_storage", "pg_engine_kwargs",
           "study_name"]

#: TCP keepalive of every PostgreSQL connection, set on the client (libpq) and asked of the server:
#: idle 10 s, then a probe every 5 s, 3 unanswered probes -> the connection is dead. A worker's
#: claims are session locks of its connection (locks.advisory_claim), so the server releases them
#: at once when the worker's process dies (its socket closes) and within ~25 s when its machine
#: or network is lost; then another worker takes the run.
KEEPALIVE = {"idle": 10, "interval": 5, "count": 3}


def sqlalchemy_url(url: str) -> str:
    """A database URL as SQLAlchemy should open it: plain ``postgresql://`` through psycopg2 (the
    driver the ``postgres`` extra installs; SQLAlchemy 2.1 would otherwise ask for psycopg 3)."""
    return "postgresql+psycopg2://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def pg_engine_kwargs() -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` arguments for a PostgreSQL connection (keepalives both ways,
    a dead pooled connection replaced before use)."""
    k = KEEPALIVE
    server = " ".join(f"-c tcp_keepalives_{n}={v}" for n, v in k.items())
    return {"pool_pre_ping": True,
            "connect_args": {"keepalives": 1, "keepalives_idle": k["idle"], "keepalives_interval": k["interval"],
                             "keepalives_count": k["count"], "connect_timeout": 10, "options": server}}

JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def default_storage(out_dir: Path) -> str:
    """The trial ledger of an output directory: ``studies.log``, an Optuna journal file (an
    append-only log: ~6x less time per trial than SQLite through SQLAlchemy here, resumable and
    safe for several processes on one machine, as SQLite is). A directory written before the
    journal became the default keeps its ``studies.db``, so rerunning there still resumes."""
    legacy = out_dir / "studies.db"
    return str(legacy) if legacy.exists() else str(out_dir / "studies.log")


def open_storage(storage: str | None) -> Any:
    """An Optuna storage: None -> in memory; a path ending in .log/.jsonl/.journal -> an Optuna
    journal file; any other path or ``sqlite:///path`` -> that SQLite file (a path's directory must
    exist); any other URL (``postgresql://...``, for several machines) is handed to Optuna as is."""
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    url = storage if "://" in storage else f"sqlite:///{storage}"
    path = _file_of(storage)
    if path is not None:  # a file here, journal or SQLite
        if not path.parent.is_dir():
            raise ValueError(f"storage directory {str(path.parent)!r} does not exist")
        if "://" not in storage and path.suffix in JOURNAL_SUFFIXES:
            from optuna.storages.journal import JournalFileBackend

            from .locks import FlockJournalLock, repair_torn_tail

            repair_torn_tail(path)
            return optuna.storages.JournalStorage(JournalFileBackend(storage, lock_obj=FlockJournalLock(path)))
    if not url.startswith("sqlite"):
        kwargs = pg_engine_kwargs() if url.startswith("postgresql") else {}
        for attempt in range(3):  # workers starting at once on a new database race to create its tables
            try:
                return optuna.storages.RDBStorage(sqlalchemy_url(url), engine_kwargs=kwargs)
            except ImportError as e:  # e.g. postgresql:// without a driver
                raise ValueError(f"storage {redacted(url)}: {e} (for PostgreSQL: pip install psycopg2-binary)") from None
            except Exception as e:  # noqa: BLE001 - unreachable server, bad credentials, a bad URL: one line
                from sqlalchemy.exc import IntegrityError, ProgrammingError

                if isinstance(e, (IntegrityError, ProgrammingError)) and attempt < 2:
                    import time

                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise ValueError(f"storage {redacted(url)}: cannot connect ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})") from None
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    _fast_sqlite(storage.engine)
    return storage


@dataclass
class Ledger:
    """An open trial ledger: the Optuna storage, and where a process claims a study before running
    it: the file it lives in (``locks.study_claim``), or the PostgreSQL server that holds it
    (``locks.advisory_claim``); neither for memory (nothing to share)."""

    storage: Any
    path: Path | None = None

    def claim(self, study: str, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
        engine = getattr(self.storage, "engine", None)
        if self.path is None and engine is not None and engine.dialect.name == "postgresql":
            return advisory_claim(engine, study, wait)
        return study_claim(self.path, study, wait)


def open_ledger(storage: str | Ledger | Any | None) -> Ledger:
    """A ``Ledger`` from a path or URL (``open_storage``), a Ledger, or an Optuna storage object
    (taken as is: no claims)."""
    if isinstance(storage, Ledger):
        return storage
    if storage is None or isinstance(storage, str):
        return Ledger(open_storage(storage), _file_of(storage))
    return Ledger(storage, None)


def _file_of(storage: str | None) -> Path | None:
    """The file a ledger path or ``sqlite:///`` URL names; None for memory or a database server."""
    if storage is None or ("://" in storage and not storage.startswith("sqlite:///")):
        return None
    return Path(storage.removeprefix("sqlite:///"))


def _fast_sqlite(engine: Any) -> None:
    """WAL journal + synchronous=NORMAL: one fsync per checkpoint instead of several per trial.
    A killed process loses nothing (the OS holds the written WAL); only a power cut can drop the
    last transactions, never corrupt the file."""
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it


def study_name(problem: str, method: str, seed: int, budget: str, eval_seed: int, n_workers: int = 1) -> str:
    """The study of one search: everything that defines it that the problem's fingerprint does not
    (invariant 7). The same command rerun continues it; another budget, evaluation seed or number
    of trials run at once is another study in the same storage, never a continuation of this one.
    ``budget``: ``Budget.tag``."""
    name = f"{problem}/{method}/seed{seed}/{budget}/eval{eval_seed}"
    return name if n_workers == 1 else f"{name}/workers{n_workers}"
