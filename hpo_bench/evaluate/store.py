"""The checkpoint store: per-epoch results and fine-tuned checkpoints on local disk, shared safely
between processes. ``CachingEvaluator`` (cached.py) answers from it and fills it; ``table:`` problems
(table.py) answer from it alone; the dense pre-trained model (pretrained.py) is a blob like any other.

* the index (``index.sqlite3``, or with ``index=URL`` tables in a PostgreSQL database: index.py):
  per (config prefix, epoch) the validation accuracy (kept forever: tiny), per prefix the metrics
  fixed by pruning, per checkpoint blob its path, sha256, size and last use, and a memo of pure,
  costly computations (a GP's suggestions).
* ``blobs/``: safetensors files of fine-tuned weights, masks and optimizer state, and the dense
  pre-trained model of each problem. With a PostgreSQL index, the cache directory holds only these:
  every worker on every machine mounts the same one (a shared file system), and the index names
  blobs relative to it.

A *prefix* (``prefix_key``) names everything about an evaluation except its epoch count: the
problem's fingerprint, the config without ``epochs``, the evaluation seed and the device type. Since
epoch e of a fine-tune does not depend on how many epochs were asked for (evaluator.py), one prefix
serves every length.

Safety (ARCHITECTURE.md invariant 6): a blob is written to a temporary file, fsynced, renamed, and
only then indexed; a blob is verified by checksum on read, and a corrupt one is dropped (with a
warning) and recomputed. The index serialises writers, so several processes (with a PostgreSQL index,
on several machines) can share one cache.
A size cap evicts least recently used blobs, never the per-epoch values.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._io import cache_root
from .index import open_index
from .index import row_digest as _digest

__all__ = ["DEFAULT_MAX_BYTES", "CheckpointStore", "default_cache_dir", "prefix_key"]

#: The default size cap of a cache's checkpoint blobs: least recently used ones are evicted beyond
#: it (their per-epoch values stay, so exact hits still answer). ``--cache-max-gb`` overrides it.
DEFAULT_MAX_BYTES = 10 * 2**30

# A blob replaced under its key (INSERT OR REPLACE, written in the form both SQLite and PostgreSQL read).
_PUT_BLOB = ("INSERT INTO blobs VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET prefix=excluded.prefix, "
             "epoch=excluded.epoch, path=excluded.path, sha256=excluded.sha256, size=excluded.size, "
             "created=excluded.created, last_used=excluded.last_used")


def default_cache_dir() -> Path:
    """``$HPO_BENCH_CACHE``, else ~/.cache/hpo-bench."""
    return cache_root()


def prefix_key(fingerprint: str, config: Mapping[str, Any], seed: int, device: str, train_path: str = "dense") -> str:
    """The name of an evaluation up to its epoch count (see the module docstring); ``device`` is
    the device type (``cpu``, ``cuda``); ``train_path`` the problem's mode of fine-tuning pruned
    layers (``Problem.train_path``: other modes round differently, so they never share a result;
    ``dense`` keys are those of every result stored before the mode existed)."""
    rest = {k: v for k, v in config.items() if k != "epochs"}
    identity = {"problem": fingerprint, "config": rest, "seed": int(seed), "device": device}
    if train_path != "dense":
        identity["train_path"] = train_path
    text = json.dumps(identity, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """Per-epoch results and checkpoint blobs in one directory, shared safely between processes."""

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 index: str | None = None):
        """``root``: the directory (default ``default_cache_dir()``); ``max_bytes``: the size cap of
        the checkpoint blobs (default ``DEFAULT_MAX_BYTES``; None: no cap); ``index``: None (SQLite,
        ``root/index.sqlite3``) or a ``postgresql://`` URL (then ``root`` holds only the blobs). An
        index that cannot be reached is a one-line ValueError naming it (password redacted)."""
        self.root = Path(root) if root is not None else default_cache_dir()
        if not self.root.parent.exists():
            raise ValueError(f"cache directory's parent {str(self.root.parent)!r} does not exist")
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.degraded: str | None = None  # why writes stopped (a full disk, a read-only directory)
        self._db = open_index(self.root, index)
        self.index = self._db.where
        self.index_url = index  # what another process opens to share this index (None: SQLite under root)
        self._missing_warned = False

    def close(self) -> None:
        self._db.close()

    def _write(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Run a write; if the machine refuses it (a full disk, a read-only directory, a locked or
        broken index), warn once and stop writing: the cache degrades to read-only, the evaluation
        goes on with the same result, and nothing is charged to a method."""
        if self.degraded is not None:
            return
        from safetensors import SafetensorError

        try:
            fn(*args, **kwargs)
        except (OSError, SafetensorError, *self._db.errors) as e:
            self.degraded = f"{what}: {type(e).__name__}: {e}"
            where = self.root if self._db.kind == "sqlite" else f"{self.root} (index {self.index})"
            warnings.warn(f"hpo-bench cache: cannot write to {where} ({self.degraded}); going on without "
                          "storing results (fix the disk and rerun to fill the cache)", RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ small rows
    def put_prefix(self, prefix: str, problem: str, fingerprint: str, config: Mapping[str, Any],
                   seed: int, device: str, static: Mapping[str, float]) -> None:
        text = json.dumps(dict(static))
        self._write("a config's row", self._db.execute,
                    "INSERT INTO prefixes VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (prefix, problem, fingerprint, json.dumps(dict(config), sort_keys=True, default=repr), int(seed),
                     device, text, time.time(), _digest(prefix, text)))

    def static(self, prefix: str) -> dict[str, float] | None:
        row = self._db.execute("SELECT static, digest FROM prefixes WHERE prefix=?", (prefix,)).fetchone()
        if row is None:
            return None
        if row[1] != _digest(prefix, row[0]):
            self._drop_rows(prefix, None, "its metrics fail their checksum")
            return None
        return json.loads(row[0])

    def put_epoch(self, prefix: str, epoch: int, accuracy: float) -> None:
        self._write("a per-epoch result", self._db.execute,
                    "INSERT INTO epochs VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                    (prefix, int(epoch), float(accuracy), _digest(prefix, int(epoch), float(accuracy))))

    def curve(self, prefix: str) -> list[float]:
        """Stored per-epoch values 1, 2, ... as far as they run without a gap (a row that fails its
        checksum is dropped, with a warning, and ends the curve there: it will be recomputed)."""
        rows = self._db.execute("SELECT epoch, accuracy, digest FROM epochs WHERE prefix=? ORDER BY epoch",
                                (prefix,)).fetchall()
        out: list[float] = []
        for epoch, acc, digest in rows:
            if epoch != len(out) + 1:
                break
            if digest != _digest(prefix, epoch, acc):
                self._drop_rows(prefix, epoch, f"epoch {epoch}'s value fails its checksum")
                break
            out.append(acc)
        return out

    def _drop_rows(self, prefix: str, epoch: int | None, why: str) -> None:
        """Forget a corrupt row: an epoch's value and every later one (``epoch``), or a config's
        metrics with all its values (``epoch`` None), so they are recomputed, never trusted."""
        warnings.warn(f"hpo-bench cache: dropping a corrupt entry of config {prefix} ({why}); it will be recomputed",
                      RuntimeWarning, stacklevel=3)
        if epoch is None:
            self._write("dropping a corrupt row", self._db.execute, "DELETE FROM prefixes WHERE prefix=?", (prefix,))
            epoch = 1
        self._write("dropping a corrupt row", self._db.execute, "DELETE FROM epochs WHERE prefix=? AND epoch>=?",
                    (prefix, int(epoch)))

    def put_memo(self, key: str, value: Any) -> None:
        """Keep the JSON-able result of a pure, costly computation (a GP's suggestion)."""
        self._write("a memo", self._db.execute, "INSERT INTO memo VALUES (?,?) ON CONFLICT DO NOTHING",
                    (key, json.dumps(value)))

    def get_memo(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM memo WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def prefixes(self, fingerprint: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT prefix, problem, fingerprint, config, seed, device, static FROM prefixes"
        rows = self._db.execute(q + (" WHERE fingerprint=?" if fingerprint else ""), (fingerprint,) if fingerprint else ())
        return [{"prefix": r[0], "problem": r[1], "fingerprint": r[2], "config": json.loads(r[3]), "seed": r[4],
                 "device": r[5], "static": json.loads(r[6])} for r in rows]

    # ------------------------------------------------------------------ blobs
    def put_blob(self, key: str, tensors: Mapping[str, torch.Tensor], *, prefix: str | None = None,
                 epoch: int | None = None) -> None:
        """Write atomically (temp file, fsync, rename, fsync dir), then index; a blob replaced under
        the same key is deleted only after the new index row is committed. A write the machine
        refuses leaves no file behind and degrades the store to read-only (``_write``)."""
        self._write("a checkpoint", self._put_blob, key, tensors, prefix, epoch)

    def _put_blob(self, key: str, tensors: Mapping[str, torch.Tensor], prefix: str | None, epoch: int | None) -> None:
        from safetensors.torch import save_file

        name = f"{hashlib.sha256(key.encode()).hexdigest()[:24]}-{uuid.uuid4().hex[:8]}.safetensors"
        final = self.blob_dir / name
        tmp = self.blob_dir / f".{name}.tmp"
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        digest, size = _sha256(tmp), tmp.stat().st_size
        os.replace(tmp, final)
        _fsync_dir(self.blob_dir)
        now = time.time()
        try:
            with self._db.transaction():
                old = self._db.execute("SELECT path FROM blobs WHERE key=?", (key,)).fetchone()
                self._db.execute(_PUT_BLOB, (key, prefix, epoch, name, digest, size, now, now))
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        if old and old[0] != name:
            (self.blob_dir / old[0]).unlink(missing_ok=True)
        if self.max_bytes is not None and self._blob_bytes() > self.max_bytes:
            self.evict(self.max_bytes)

    def get_blob(self, key: str) -> dict[str, torch.Tensor] | None:
        """The blob's tensors, or None if absent; a corrupt blob is dropped with a warning."""
        from safetensors.torch import load_file

        row = self._db.execute("SELECT path, sha256 FROM blobs WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        path = self.blob_dir / row[0]
        if not path.exists() and self._db.kind != "sqlite":
            # A shared index names a blob this machine does not have: its --cache is not the
            # directory the other workers mount. The entry is theirs and sound: keep it.
            if not self._missing_warned:
                self._missing_warned = True
                warnings.warn(f"hpo-bench cache: the shared index ({self.index}) names checkpoints that {self.blob_dir} "
                              "does not hold: give every worker the same --cache directory (a shared file system); "
                              "they are recomputed here", RuntimeWarning, stacklevel=2)
            return None
        try:
            if _sha256(path) != row[1]:
                raise ValueError("checksum mismatch")
            tensors = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - missing, truncated or corrupt: recompute
            warnings.warn(f"hpo-bench cache: dropping corrupt entry {key} ({path.name}: {e}); it will be recomputed",
                          RuntimeWarning, stacklevel=2)
            self._drop(key, row[0])
            return None
        self._db.execute("UPDATE blobs SET last_used=? WHERE key=?", (time.time(), key))
        return tensors

    def _drop(self, key: str, name: str) -> None:
        self._db.execute("DELETE FROM blobs WHERE key=? AND path=?", (key, name))
        (self.blob_dir / name).unlink(missing_ok=True)

    def checkpoint_epochs(self, prefix: str) -> list[int]:
        rows = self._db.execute("SELECT epoch FROM blobs WHERE prefix=? ORDER BY epoch DESC", (prefix,))
        return [r[0] for r in rows]

    def latest_checkpoint(self, prefix: str, max_epoch: int) -> tuple[int, dict[str, torch.Tensor]] | None:
        """The longest verified checkpoint of ``prefix`` at an epoch <= max_epoch."""
        for epoch in self.checkpoint_epochs(prefix):
            if epoch <= max_epoch and (tensors := self.get_blob(f"{prefix}@{epoch}")) is not None:
                return epoch, tensors
        return None

    # ------------------------------------------------------------------ maintenance
    def _blob_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0])

    def evict(self, max_bytes: int) -> int:
        """Delete least recently used blobs until they total <= max_bytes; returns how many. The
        per-epoch values stay, so evicted configs still answer exact hits."""
        rows = self._db.execute("SELECT key, path, size FROM blobs ORDER BY last_used DESC").fetchall()
        total, dropped = 0, 0
        for key, name, size in rows:
            total += size
            if total > max_bytes:
                self._drop(key, name)
                dropped += 1
        return dropped

    def stats(self) -> dict[str, Any]:
        q = self._db.execute
        blobs, size = q("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs").fetchone()
        return {
            "path": str(self.root),
            "index": self.index,
            "configs": q("SELECT COUNT(*) FROM prefixes").fetchone()[0],
            "epoch_results": q("SELECT COUNT(*) FROM epochs").fetchone()[0],
            "checkpoints": blobs,
            "bytes": int(size),  # PostgreSQL sums a BIGINT as a Decimal
            "max_bytes": self.max_bytes,
            "problems": dict(q("SELECT problem, COUNT(*) FROM prefixes GROUP BY problem").fetchall()),
        }

    def verify(self) -> dict[str, int]:
        """Check every row's and every blob's checksum (drop the bad ones) and delete files
        nothing indexes."""
        q = self._db.execute
        before = q("SELECT (SELECT COUNT(*) FROM prefixes) + (SELECT COUNT(*) FROM epochs)").fetchone()[0]
        for (prefix,) in q("SELECT prefix FROM prefixes").fetchall():
            if self.static(prefix) is not None:
                self.curve(prefix)
        rows_dropped = before - q("SELECT (SELECT COUNT(*) FROM prefixes) + (SELECT COUNT(*) FROM epochs)").fetchone()[0]
        rows = self._db.execute("SELECT key, path FROM blobs").fetchall()
        bad = sum(self.get_blob(key) is None for key, _ in rows)
        indexed = {r[0] for r in self._db.execute("SELECT path FROM blobs")}
        orphans = 0
        for f in self.blob_dir.iterdir():
            # a young file may be a blob another process (on another machine, with a shared index)
            # has written and not yet indexed: only files an hour old are orphans
            if f.name not in indexed and time.time() - f.stat().st_mtime >= 3600:
                f.unlink(missing_ok=True)
                orphans += 1
        return {"checked": len(rows), "dropped": bad, "orphans_removed": orphans, "rows_checked": before,
                "rows_dropped": rows_dropped}

    def clear(self) -> None:
        """Forget every entry: the index's rows (in PostgreSQL, for every worker sharing it) and the
        blob files."""
        with self._db.transaction():
            for table in ("blobs", "epochs", "prefixes", "memo"):
                self._db.execute(f"DELETE FROM {table}")
        for f in self.blob_dir.iterdir():
            f.unlink(missing_ok=True)
