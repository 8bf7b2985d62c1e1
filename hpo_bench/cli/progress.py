"""Progress of a command on stderr: a bar on a terminal, or a line per trial for logs."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A tqdm bar on stderr over all trials of a command (silent when stderr is not a terminal).
    ``HPO_BENCH_PROGRESS=lines``: one line per finished trial instead, with the time since the
    start, for logs of unattended runs (a run killed by a time limit still shows how far it got)."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.lines = os.environ.get("HPO_BENCH_PROGRESS", "").strip().lower() == "lines"
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="trial", file=sys.stderr, leave=False,
                        disable=self.lines or not sys.stderr.isatty())
        if self.lines:
            print(f"[{0.0:8.1f} s] {desc}: up to {total} trials", file=sys.stderr, flush=True)

    def __call__(self, method: str, seed: int, rec: Any) -> None:
        best = f"{rec.values[0]:.4f}" if rec.values else rec.state.lower()
        if self.lines:
            print(f"[{time.perf_counter() - self.t0:8.1f} s] {method} seed {seed} trial {rec.number}: {best} "
                  f"({rec.state.lower()}, {rec.nominal_epochs} epochs, {rec.seconds:.1f} s)", file=sys.stderr, flush=True)
        self.bar.set_postfix_str(f"{method} seed {seed}: {best}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
