"""Plain-text tables and numbers, as every command and report prints them.

At the bottom of the package: the CLI, the reports and the kernel profiler all format through
these, and import nothing above them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["config_text", "fmt", "table"]


def fmt(v: Any) -> str:
    """A number as a person reads it: 4 significant decimals, scientific notation for the very
    small and very large, ``-`` for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.4g}"
    return str(v)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the headers."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([line, sep, *body])


def config_text(cfg: Mapping[str, Any]) -> str:
    """``key=value, ...`` of a config, values through ``fmt``."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in cfg.items())


def redacted(url: str) -> str:
    """A database URL without its password (``user:PASSWORD@`` or ``?password=``), for messages."""
    import re

    return re.sub(r"(password=)[^&]*", r"\1***", re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url))
