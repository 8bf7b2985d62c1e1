"""From command-line arguments to the library's objects: each turns bad input into a ``UsageError``
(one line on stderr, exit status 2) before anything is computed."""
from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["EXIT_USAGE", "NotDone", "UsageError", "budget_of", "device_of", "evaluator_of", "is_database", "memo_of",
           "methods_of", "folder_name", "out_dir", "problem_of", "seeds_of", "storage_of", "store_of", "workers_of"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported in one line, exit status 2."""


class NotDone(Exception):
    """Work asked about is not finished (runs still queued or running): one line, exit status 1."""


def device_of(name: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (a GPU torch can see)."""
    import re

    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m is None:
        raise UsageError(f"--device {name!r}: give auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name} was asked for, but torch sees no CUDA device")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return name


def check_database(url: str) -> None:
    from ..harness.storage import open_storage

    try:
        open_storage(url).engine.dispose()
    except ValueError as e:
        raise UsageError(f"--{e}") from None


def workers_of(n: int | None, flag: str = "--workers") -> int | None:
    if n is not None and n < 1:
        raise UsageError(f"{flag} must be >= 1, got {n}")
    return n


def is_database(storage: str | None) -> bool:
    from ..harness.queue import is_database as db

    return db(storage)


def out_dir(path: str | None, default: str | None = None) -> Path:
    """``--out``: created if missing, but its parent must exist (a typo should not build a tree).
    The default (``runs/...``, see ``folder_name``) is created with its parents."""
    named = path is not None
    out = Path(path if named else default)  # type: ignore[arg-type]
    label = f"--out {path!r}" if named else repr(str(out))
    if named and not out.parent.exists():
        raise UsageError(f"{label}: parent directory {str(out.parent)!r} does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{label} is a file, not a directory")
    try:
        out.mkdir(parents=not named, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{label}: cannot create it ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"{label} is not writable")
    return out


def folder_name(problem_name: str) -> str:
    """A problem's name as one folder name: ``table:digits-mlp@/some/cache`` -> ``table-digits-mlp``."""
    return problem_name.partition("@")[0].replace(":", "-").replace("/", "-")


def storage_of(args: argparse.Namespace, out: Path) -> str:
    """``--storage``, checked (a database URL is connected to once, so a typo or a server that is
    down is one line now, not a failure after the first trial); default ``OUT/studies.log``."""
    if args.storage and is_database(args.storage):
        check_database(args.storage)
        return args.storage
    if args.storage:
        if "://" not in args.storage and not Path(args.storage).parent.is_dir():
            raise UsageError(f"--storage {args.storage!r}: directory {str(Path(args.storage).parent)!r} does not exist")
        return args.storage
    from ..harness.storage import default_storage

    return default_storage(out)


def store_of(args: argparse.Namespace) -> Any:
    import math

    from ..evaluate.store import DEFAULT_MAX_BYTES, CheckpointStore

    gb = getattr(args, "cache_max_gb", None)
    if gb is not None and (math.isnan(gb) or gb <= 0):
        raise UsageError(f"--cache-max-gb must be a number of GiB > 0 (or inf: no cap), got {gb}")
    max_bytes = DEFAULT_MAX_BYTES if gb is None else None if math.isinf(gb) else int(gb * 2**30)
    cache = getattr(args, "cache", None)
    if cache is not None and Path(cache).exists() and not Path(cache).is_dir():
        raise UsageError(f"--cache {cache!r} is a file, not a directory")
    storage = getattr(args, "storage", None)
    if is_database(storage):
        check_database(storage)
    # with a database for the studies, the cache's index lives there too (shared by every worker;
    # --cache is then the blob directory they all mount)
    index = {"index": storage} if is_database(storage) else {}
    try:
        return CheckpointStore(cache, max_bytes=max_bytes, **index)
    except (OSError, sqlite3.Error) as e:
        raise UsageError(f"cannot use the cache at {cache or 'the default cache directory'}: {e}") from None


def memo_of(args: argparse.Namespace) -> Any:
    """The checkpoint store of a command (also where the GP keeps its suggestions), or None with
    --no-cache."""
    return None if args.no_cache else store_of(args)


def evaluator_of(args: argparse.Namespace, problem: Any, device: str, store: Any) -> Any:
    """The evaluator of a command: cached in ``store`` (``memo_of``) unless that is None."""
    from ..evaluate import make_evaluator

    return make_evaluator(problem, device, args.eval_seed, store)


def budget_of(args: argparse.Namespace):
    from ..harness.budget import Budget

    try:
        return Budget(trials=args.budget, epochs=args.budget_epochs)
    except ValueError as e:
        raise UsageError(str(e)) from None


def problem_of(name: str) -> Any:
    from ..evaluate import load_problem

    try:
        return load_problem(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def methods_of(names: str, problem: Any) -> list[str]:
    from ..methods import check_method

    methods = [m.strip() for m in names.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods is empty")
    for m in methods:
        try:
            check_method(m, problem)
        except ValueError as e:
            raise UsageError(str(e)) from None
    return methods


def seeds_of(spec: str) -> list[int]:
    try:
        if "," in spec or "-" in spec.strip("-"):
            seeds: list[int] = []
            for part in spec.split(","):
                a, _, b = part.partition("-")
                seeds.extend(range(int(a), int(b) + 1) if b else [int(a)])
        else:
            n = int(spec)
            if n < 1:
                raise UsageError(f"--seeds must be >= 1, got {n}")
            seeds = list(range(n))
    except ValueError:
        raise UsageError(f"--seeds {spec!r}: give a count (5), a list (0,3,7) or a range (0-4)") from None
    return seeds
