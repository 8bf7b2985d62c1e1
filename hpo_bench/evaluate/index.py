"""Where the checkpoint store's index lives: a SQLite file in the cache directory (one machine, the
default), or tables in a PostgreSQL database (several machines that mount one blob directory;
ARCHITECTURE.md, "Scale-out"). store.py writes its SQL once, in what both dialects accept: ``?``
placeholders (``%s`` for psycopg2, translated here) and ``INSERT ... ON CONFLICT`` (SQLite >= 3.24);
this module holds the rest of the difference: opening, transactions, the schema's types, the
driver's errors.

* ``SqliteIndex``: ``index.sqlite3`` in WAL mode, created under an ``flock`` (processes opening a
  new cache at once), moved aside and started anew if it is not a readable database.
* ``PostgresIndex``: the same tables in the schema ``hpo_bench_cache`` (never in the way of
  Optuna's own tables when the trial ledger shares the database), over one autocommit psycopg2
  connection with TCP keepalives, reconnected once when it was lost.

Both answer ``execute(sql, params)`` with a cursor (``fetchone``, ``fetchall``, iteration), and
``transaction()`` runs one writer at a time, as SQLite's ``BEGIN IMMEDIATE`` does.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._text import redacted

__all__ = ["SCHEMA", "Index", "PostgresIndex", "SqliteIndex", "open_index", "row_digest"]

#: The tables, in SQLite's types (PostgreSQL's are widened by ``_pg_types``).
SCHEMA = """
CREATE TABLE IF NOT EXISTS prefixes (
    prefix TEXT PRIMARY KEY, problem TEXT, fingerprint TEXT, config TEXT, seed INTEGER,
    device TEXT, static TEXT, created REAL, digest TEXT);
CREATE TABLE IF NOT EXISTS epochs (
    prefix TEXT, epoch INTEGER, accuracy REAL, digest TEXT, PRIMARY KEY (prefix, epoch));
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY, prefix TEXT, epoch INTEGER, path TEXT, sha256 TEXT, size INTEGER,
    created REAL, last_used REAL);
CREATE INDEX IF NOT EXISTS blobs_prefix ON blobs (prefix, epoch);
CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, value TEXT);
"""


def row_digest(*parts: Any) -> str:
    """The checksum of an index row's values (rows are checked as blobs are: a flipped bit in a
    stored accuracy is found, not served)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


class Index:
    """The protocol: ``execute`` (a cursor), ``executemany``, ``transaction`` (one writer at a time),
    ``close``; ``kind``, ``where`` (for messages and ``stats``) and ``errors`` (the driver's
    exceptions, which the store's writes catch to degrade to read-only)."""

    kind: str  # "sqlite" or "postgresql"
    where: str
    errors: tuple[type[BaseException], ...]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def open_index(root: Path, url: str | None) -> Index:
    """The index of a cache: None -> ``root/index.sqlite3``; a ``postgresql://`` URL -> that
    database. A URL of another kind, or a server that cannot be reached, is a one-line ValueError."""
    if url is None:
        return Serialized(SqliteIndex.open(root / "index.sqlite3", root / ".index.lock"))
    if not re.match(r"postgres(ql)?(\+\w+)?://", url):
        raise ValueError(f"cache index {redacted(url)!r}: give a postgresql:// URL "
                         "(or none: SQLite in the cache directory)")
    return Serialized(PostgresIndex(url))


class _Rows:
    """A statement's result, read in full while the connection was held (``Serialized``)."""

    def __init__(self, cursor: Any) -> None:
        self._rows = list(cursor.fetchall()) if cursor.description else []
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class Serialized(Index):
    """One index connection shared by the threads of a process (``run --workers``: trials in
    threads, one store): one statement or transaction at a time, each statement's rows read before
    the connection is let go, so no thread reads another's cursor or lands in its transaction."""

    def __init__(self, inner: Index) -> None:
        self.inner, self.kind, self.where, self.errors = inner, inner.kind, inner.where, inner.errors
        self._lock = threading.RLock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        with self._lock:
            return _Rows(self.inner.execute(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self.inner.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock, self.inner.transaction():
            yield

    def close(self) -> None:
        with self._lock:
            self.inner.close()


# ---------------------------------------------------------------------- SQLite
class SqliteIndex(Index):
    kind = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._db, self.where = db, str(path)

    @classmethod
    def open(cls, path: Path, lock: Path) -> SqliteIndex:
        """Open (or create) the index. Creation is serialised by an ``flock`` on ``lock``: switching a
        new database to WAL needs an exclusive lock that SQLite's busy timeout does not wait for, so
        processes opening a new cache at once would fail. An index that is not a readable SQLite
        database is moved aside (with a warning) and started anew: its blobs are then unindexed, and
        ``cache verify`` removes them."""
        import fcntl

        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for attempt in (1, 2):
                db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=FULL")
                    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                        raise sqlite3.DatabaseError("quick_check failed")
                    db.executescript(SCHEMA)
                    _migrate(db)
                    return cls(db, path)
                except sqlite3.DatabaseError as e:
                    db.close()
                    if attempt == 2 or isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                        raise
                    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                    warnings.warn(f"hpo-bench cache: {path} is not a readable index ({e}); moved to {aside.name} "
                                  "and started a new one (its results will be recomputed)", RuntimeWarning,
                                  stacklevel=4)
                    os.replace(path, aside)
                    for extra in ("-wal", "-shm"):
                        Path(f"{path}{extra}").unlink(missing_ok=True)
            raise AssertionError("unreachable")
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


def _migrate(db: sqlite3.Connection) -> None:
    """An index written before rows had checksums gets them (its rows are trusted once)."""
    for table in ("prefixes", "epochs"):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        if "digest" in cols:
            continue
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"ALTER TABLE {table} ADD COLUMN digest TEXT")
        if table == "epochs":
            rows = db.execute("SELECT prefix, epoch, accuracy FROM epochs").fetchall()
            db.executemany("UPDATE epochs SET digest=? WHERE prefix=? AND epoch=?",
                           [(row_digest(p, e, a), p, e) for p, e, a in rows])
        else:
            rows = db.execute("SELECT prefix, static FROM prefixes").fetchall()
            db.executemany("UPDATE prefixes SET digest=? WHERE prefix=?", [(row_digest(p, s), p) for p, s in rows])
        db.execute("COMMIT")


# ---------------------------------------------------------------------- PostgreSQL
PG_SCHEMA = "hpo_bench_cache"
# pg_advisory_lock keys: creating the schema, and a write transaction (one at a time, as in SQLite).
_CREATE_LOCK = int.from_bytes(hashlib.sha256(b"hpo_bench_cache: create").digest()[:8], "big", signed=True)
_WRITE_LOCK = int.from_bytes(hashlib.sha256(b"hpo_bench_cache: write").digest()[:8], "big", signed=True)


@lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg2's ``%s`` (and a literal ``%`` escaped)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_types(ddl: str) -> str:
    """SQLite's column types in PostgreSQL: REAL is a 4-byte float there (a stored accuracy would
    change, and fail its checksum), INTEGER a 4-byte one (a blob over 2 GiB would not fit)."""
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", re.sub(r"\bINTEGER\b", "BIGINT", ddl))


class PostgresIndex(Index):
    """The index in a PostgreSQL database, schema ``hpo_bench_cache``: one autocommit connection per
    store, so every statement outside ``transaction()`` is its own transaction, as in SQLite."""

    kind = "postgresql"

    def __init__(self, url: str):
        self.url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)  # SQLAlchemy's +driver
        self.where = f"{redacted(self.url)} (schema {PG_SCHEMA})"
        try:
            import psycopg2
        except ImportError:
            raise ValueError(f"cache index {redacted(url)}: psycopg2 is not installed "
                             "(pip install psycopg2-binary, or hpo-bench[postgres])") from None
        self._pg = psycopg2
        self.errors = (psycopg2.Error,)
        self._in_transaction = False
        for what, step in (("cannot connect", self._connect), ("cannot create its tables", self._create_schema)):
            try:
                step()
            except psycopg2.Error as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise ValueError(f"cache index {redacted(url)}: {what} ({type(e).__name__}: {first})") from None

    def _connect(self) -> None:
        """Open an autocommit connection whose unqualified table names are the cache's schema; TCP
        keepalives find a dead server or a cut network in about a minute, not hours."""
        db = self._pg.connect(self.url, connect_timeout=10, keepalives=1, keepalives_idle=30,
                              keepalives_interval=10, keepalives_count=3, application_name="hpo-bench cache")
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute(f"SET search_path TO {PG_SCHEMA}")
        self._db = db

    def _create_schema(self) -> None:
        """Create the schema and tables if missing. Serialised by an advisory lock: in PostgreSQL,
        concurrent ``CREATE ... IF NOT EXISTS`` of one name can fail with a unique violation."""
        with self._db.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK,))
            try:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(_pg_types(statement))
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_LOCK,))

    def _run(self, sql: str, params: Sequence[Any], many: bool = False) -> Any:
        cur = self._db.cursor()
        (cur.executemany if many else cur.execute)(_pg_sql(sql), params)
        return cur

    def _retrying(self, sql: str, params: Any, many: bool = False) -> Any:
        """Run a statement; if the connection was lost (a restarted server, a dropped network), open
        a new one and run it once more. Every statement the store sends alone is safe to repeat (an
        insert that ignores a present key, an upsert, a delete); inside a transaction nothing is
        repeated: the lost transaction was rolled back by the server, and the error goes up."""
        try:
            return self._run(sql, params, many)
        except self._pg.Error:
            if not self._db.closed or self._in_transaction:
                raise
        self._connect()
        return self._run(sql, params, many)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retrying(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._retrying(sql, [tuple(r) for r in rows], many=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN")
        self._in_transaction = True
        try:
            self.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            yield
            self.execute("COMMIT")
        except BaseException:
            if not self._db.closed:
                with contextlib.suppress(self._pg.Error):
                    self._run("ROLLBACK", ())
            raise
        finally:
            self._in_transaction = False

    def close(self) -> None:
        self._db.close()
