"""A throwaway PostgreSQL server for tests and benchmarks: no dependency beyond the standard library
and the server's own binaries (Debian's ``postgresql`` package).

    with PostgresServer() as pg:          # initdb + start in a fresh temporary directory
        url = pg.create_database("t1")    # postgresql://postgres@127.0.0.1:PORT/t1, empty

The server trusts every local connection (no password), listens on 127.0.0.1 on a free port and on
a unix socket inside its own directory (never /var/run/postgresql, never the port of a cluster the
machine may already run), and runs with fsync off: a test database need not survive a power cut.
PostgreSQL refuses to run as root, so as root its binaries run as the ``postgres`` user through
``runuser``; as anyone else, directly as that user. ``available()`` says why a server cannot be
started (None when it can), so a test can skip or fail with the reason.

Benchmarks import it with ``sys.path.insert(0, "tests")``.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "available", "bindir"]

_NOT_FOUND = "PostgreSQL 15 binaries not found: install the Debian package postgresql"
_NEEDED = ("initdb", "pg_ctl", "postgres", "pg_isready", "createdb", "dropdb")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def bindir() -> Path | None:
    """The directory of the server binaries: ``pg_config --bindir`` if it holds them (it may be a
    client-only install), else the newest /usr/lib/postgresql/*/bin that does."""
    candidates = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass

    def version(d: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(d).parent.name))

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for d in candidates:
        if all(os.access(Path(d) / b, os.X_OK) for b in _NEEDED):
            return Path(d)
    return None


def _as_root() -> bool:
    return os.geteuid() == 0


def available() -> str | None:
    """None if a server can be started here, else why not (one line)."""
    if bindir() is None:
        return _NOT_FOUND
    if _as_root():
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing: PostgreSQL refuses to run as root"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user (install the package postgresql)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scratch_dir() -> Path:
    """A fresh directory the server's user can enter: as root, under the temporary directory only if
    the postgres user can reach it (a $TMPDIR under /root cannot be), else under /tmp."""
    base = tempfile.gettempdir()
    if _as_root() and not all(os.stat(p).st_mode & 0o001 for p in [base, *map(str, Path(base).parents)]):
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix="hpo-bench-pg-", dir=base))
    if _as_root():
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _exit_on_sigterm() -> None:
    """A plain ``kill`` of the process holding a server runs its exit handlers (``stop``): by
    default SIGTERM ends Python without them and leaves the server running, orphaned."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


class PostgresServer:
    """A PostgreSQL server in a fresh temporary directory, stopped and removed on ``stop()`` (or at
    the end of a ``with`` block, or at interpreter exit if neither ran)."""

    def __init__(self, timeout: float = 60.0, max_connections: int = 200):
        self.timeout = timeout
        self.max_connections = max_connections
        self.dir: Path | None = None
        self.port: int | None = None
        self._bin: Path | None = None
        self._proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._url("postgres")

    def start(self) -> PostgresServer:
        """initdb, then start the server and wait until it accepts connections; on failure, a
        RuntimeError with the server log's tail, and nothing left behind."""
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        self._bin = bindir()
        self.dir = _scratch_dir()
        atexit.register(self.stop)
        _exit_on_sigterm()
        try:
            self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync", as_server=True)
            for attempt in range(3):  # a free port can be taken between choosing it and binding it
                if self._launch(_free_port()):
                    return self
                if attempt < 2 and "already in use" in self._log_tail():
                    continue
                raise RuntimeError(f"PostgreSQL did not start: {self._log_tail()}")
            raise RuntimeError(f"PostgreSQL did not start (no free port after 3 tries): {self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int) -> bool:
        """Start the postmaster on ``port``; True once pg_isready answers, False if it exited."""
        self.port = port
        log = open(self.dir / "server.log", "ab")
        options = {"listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(self.dir),
                   "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                   "max_connections": str(self.max_connections), "shared_buffers": "32MB"}
        cmd = [str(self._bin / "postgres"), "-D", str(self.dir / "data")]
        for k, v in options.items():
            cmd += ["-c", f"{k}={v}"]
        try:
            # its own session: a Ctrl-C meant for the tests does not stop the server under them
            self._proc = subprocess.Popen(self._as_server(cmd), cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            # asked through the socket in our own directory: on 127.0.0.1:port another server may answer
            ready = subprocess.run([str(self._bin / "pg_isready"), "-q", "-h", str(self.dir), "-p", str(port),
                                    "-U", "postgres", "-d", "postgres", "-t", "1"], cwd=self.dir)
            if ready.returncode == 0:
                return True
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections within {self.timeout:.0f} s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: the data is thrown away) and remove its directory.
        Safe to call twice."""
        if self._proc is not None:
            try:
                self._run("pg_ctl", "stop", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "-t", "30",
                          as_server=True, check=False)
                self._proc.wait(timeout=30)
            except (OSError, subprocess.SubprocessError):
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ------------------------------------------------------------------ databases
    def create_database(self, name: str) -> str:
        """A fresh, empty database ``name`` (dropped first if it exists; lowercase letters, digits and
        ``_``, at most 63); returns its URL."""
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use lowercase letters, digits and _ (at most 63)")
        if self._proc is None:
            raise RuntimeError("the PostgreSQL server is not running (call start() or use it in a with block)")
        conn = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._run("dropdb", *conn, "--if-exists", "--force", name)
        self._run("createdb", *conn, "-T", "template0", name)
        return self._url(name)

    def _url(self, database: str) -> str:
        if self.port is None:
            raise RuntimeError("the PostgreSQL server is not running (call start() or use it in a with block)")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    # ------------------------------------------------------------------ helpers
    def _as_server(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if _as_root() else cmd

    def _run(self, tool: str, *args: str, as_server: bool = False, check: bool = True) -> None:
        cmd = [str(self._bin / tool), *args]
        out = subprocess.run(self._as_server(cmd) if as_server else cmd, cwd=self.dir, capture_output=True,
                             text=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise RuntimeError(f"{tool} failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-2000:]}")

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = (self.dir / "server.log").read_text(errors="replace").strip()
        except (OSError, TypeError):
            return "(no server log)"
        return "server log: " + " | ".join(text.splitlines()[-lines:]) if text else "(empty server log)"
