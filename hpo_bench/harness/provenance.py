"""Where a result came from: the source's git commit, the versions that computed it, the device and the
workers. ``compare.json`` and ``summary.json`` carry it as ``provenance``.

    provenance(result)    {"git_commit", "git_dirty", "versions", "device", "n_workers", "workers"}
    git_commit(root)      HEAD of the git checkout whose top is ``root`` (default: hpo_bench's source
                          tree), else None
    versions()            torch, optuna, scikit-optimize, numpy, scipy, python, hpo_bench

Never raises: whatever cannot be found (no git, not a checkout, a package not installed) is None.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .results import CompareResult

__all__ = ["PACKAGES", "git_commit", "git_dirty", "provenance", "versions"]

#: The distributions whose versions a result records (their names on PyPI).
PACKAGES = ("torch", "optuna", "scikit-optimize", "numpy", "scipy")

_SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the hpo_bench package


def _git(root: Path, *args: str) -> str | None:
    """``git -C root args`` stdout, stripped; None on any failure (no git, not a repository, a timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # no GIT_DIR from a caller
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                             env=env, stdin=subprocess.DEVNULL)
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _checkout_top(root: Path) -> Path | None:
    """``root`` resolved when it is the top of a git work tree (not a folder inside another checkout,
    such as a site-packages under someone's repository), else None."""
    try:
        root = Path(root).resolve()
    except Exception:  # noqa: BLE001
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    try:
        return root if top is not None and Path(top).resolve() == root else None
    except Exception:  # noqa: BLE001
        return None


def git_commit(root: str | Path | None = None) -> str | None:
    """The commit checked out at ``root`` (default: the folder holding the hpo_bench package), when
    ``root`` is the top of a git checkout; None otherwise (an installed package, no git)."""
    top = _checkout_top(Path(root) if root is not None else _SOURCE_ROOT)
    return _git(top, "rev-parse", "HEAD") if top is not None else None


def git_dirty(root: str | Path | None = None) -> bool | None:
    """Whether that checkout's tracked hpo_bench sources differ from its commit (None: no checkout)."""
    top = _checkout_top(Path(root) if root is not None else _SOURCE_ROOT)
    if top is None:
        return None
    out = _git(top, "status", "--porcelain", "--untracked-files=no", "--", "hpo_bench")
    return None if out is None else bool(out)


def versions() -> dict[str, str | None]:
    """Installed versions of ``PACKAGES``, python and hpo_bench (None: not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except Exception:  # noqa: BLE001 - PackageNotFoundError, or a broken install
            out[name] = None
    out["python"] = platform.python_version()
    try:
        out["hpo_bench"] = metadata.version("hpo_bench")
    except Exception:  # noqa: BLE001
        from .. import __version__

        out["hpo_bench"] = __version__
    return out


def provenance(result: CompareResult | None = None, root: str | Path | None = None) -> dict[str, Any]:
    """What produced ``result``: ``git_commit`` and ``git_dirty`` (of ``root``, default hpo_bench's
    source tree; None when it is no git checkout), ``versions``, ``device`` (the comparison's, None
    when unknown), ``n_workers`` (trials at once in each study: per method, per seed) and ``workers``
    (processes that ran the runs)."""
    n_workers: dict[str, dict[str, int]] = {}
    if result is not None:
        for r in result.runs:
            n_workers.setdefault(r.method, {})[str(r.seed)] = int(r.n_workers)
    return {"git_commit": git_commit(root), "git_dirty": git_dirty(root), "versions": versions(),
            "device": getattr(result, "device", None), "n_workers": n_workers,
            "workers": getattr(result, "workers", None)}
