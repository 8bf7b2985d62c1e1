"""Where a comparison's wall time went: evaluation, the methods choosing trials, the harness."""
from __future__ import annotations

from .results import CompareResult

__all__ = ["timing_line", "timing_of"]


def timing_of(res: CompareResult, wall: float) -> dict[str, float]:
    """Where ``wall`` seconds (compare + report) went: evaluation (trial seconds + the baseline),
    the methods choosing their trials (``suggest_s``: GP fits, TPE's estimates; a cost of the
    method, reported per method too), and the rest, the harness's own overhead (``harness_s``: the
    trial ledger, bookkeeping, statistics, plots). ``overhead_s`` is everything but evaluation.
    Every part counts this call only: a resumed call's trials from earlier calls are not in it."""
    trial_s = sum(r.evaluated_seconds for r in res.runs)
    suggest_s = sum(r.suggest_seconds for r in res.runs)
    workers = max(1, int(getattr(res, "workers", 1)))
    capacity = wall * workers  # worker processes' seconds: evaluation ran in all of them at once
    overhead = capacity - trial_s - res.baseline_seconds
    harness = overhead - suggest_s
    frac = (lambda v: v / capacity if capacity > 0 else 0.0)
    return {"wall_s": wall, "workers": workers, "trial_s": trial_s, "baseline_s": res.baseline_seconds, "overhead_s": overhead,
            "overhead_fraction": frac(overhead), "suggest_s": suggest_s, "suggest_fraction": frac(suggest_s),
            "harness_s": harness, "harness_fraction": frac(harness)}


def timing_line(t: dict[str, float]) -> str:
    """One line: where a comparison's wall time went (``timing_of``)."""
    if t["wall_s"] <= 0:
        return "wall 0 s"
    evaluation = t["trial_s"] + t["baseline_s"]
    workers = int(t.get("workers", 1))
    capacity = t["wall_s"] * workers
    wall = (f"wall {t['wall_s']:.1f} s" if workers == 1 else
            f"wall {t['wall_s']:.1f} s x {workers} workers (methods' time counted as harness)")
    return (f"{wall}: evaluation {evaluation:.1f} s ({evaluation / capacity:.1%}), "
            f"methods choosing trials {t['suggest_s']:.1f} s ({t['suggest_fraction']:.1%}), "
            f"harness overhead {t['harness_s']:.1f} s ({t['harness_fraction']:.1%})")
