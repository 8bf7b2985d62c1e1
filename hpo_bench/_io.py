"""Small file helpers: where hpo_bench keeps what it computes once, and writes that a kill -9
cannot leave half done."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_root", "write_json_atomic", "write_text_atomic"]


def cache_root() -> Path:
    """Where hpo_bench keeps what it computes once (checkpoints, measured sparse formats):
    ``$HPO_BENCH_CACHE``, else ~/.cache/hpo-bench."""
    return Path(os.environ.get("HPO_BENCH_CACHE") or Path.home() / ".cache" / "hpo-bench")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, default=str) + "\n")
