"""What a search and a comparison produce: the shared data types of the harness.

``TrialRecord`` (one finished trial, as the ledger holds it), ``RunResult`` (one method, one seed,
one budget: a study) and ``CompareResult`` (methods x seeds at one budget). Every layer above the
runner reads these; they import nothing of the harness but the statistics' math.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .stats import pareto_front

__all__ = ["CompareResult", "RunResult", "TrialRecord", "load_compare"]


@dataclass
class TrialRecord:
    number: int
    state: str                          # COMPLETE | PRUNED | FAIL
    params: dict[str, Any]
    values: list[float] | None          # objective values in the problem's order (COMPLETE only)
    curve: list[float]
    nominal_epochs: int
    actual_epochs: int
    seconds: float
    fail_reason: str | None = None
    credited: bool = True               # within the budget (``Budget.credited``); also on the study
    metrics: dict[str, float] = field(default_factory=dict)  # every measured value (achieved sparsity, size...)
    train_path: Any = None              # how its pruned layers trained: {layer: dense|sparse} under auto, else the mode


@dataclass
class RunResult:
    problem: str
    method: str
    seed: int
    budget: dict[str, int | None]
    objectives: list[str]
    directions: list[str]
    study_name: str
    trials: list[TrialRecord] = field(default_factory=list)
    wall_seconds: float = 0.0     # this call's wall time (a resumed call: its part only)
    suggest_seconds: float = 0.0  # of which the method choosing trials (methods/timing.py)
    evaluated_seconds: float = 0.0  # of which evaluating the trials this call ran
    n_workers: int = 1            # trials evaluated at once in this study (search's n_workers)

    # ------------------------------------------------------------------ views
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE" and t.values is not None]

    def _key(self, t: TrialRecord) -> float:
        v = t.values[0]  # type: ignore[index]
        return v if self.directions[0] == "maximize" else -v

    def best(self) -> TrialRecord | None:
        """The best complete trial by the primary objective (earliest on ties); with several
        objectives, the best of the Pareto front, so a trial another dominates is never "best"."""
        done = self.pareto() if len(self.objectives) > 1 else self.complete()
        return max(done, key=lambda t: (self._key(t), -t.number)) if done else None

    def best_so_far(self) -> list[float | None]:
        """Best primary objective after each spent trial (None before the first complete one)."""
        out: list[float | None] = []
        best: TrialRecord | None = None
        for t in self.trials:
            if t.state == "COMPLETE" and t.values is not None and (best is None or self._key(t) > self._key(best)):
                best = t
            out.append(None if best is None else best.values[0])  # type: ignore[index]
        return out

    def pareto(self) -> list[TrialRecord]:
        """Complete trials no other complete trial dominates (all objectives, their directions)."""
        done = self.complete()
        return [done[i] for i in pareto_front([t.values for t in done], self.directions)]  # type: ignore[misc]

    @property
    def nominal_epochs(self) -> int:
        return sum(t.nominal_epochs for t in self.trials)

    @property
    def actual_epochs(self) -> int:
        return sum(t.actual_epochs for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        best = self.best()
        d["best"] = asdict(best) if best else None
        d["best_so_far"] = self.best_so_far()
        if len(self.objectives) > 1:
            d["pareto"] = [asdict(t) for t in self.pareto()]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        """The inverse of ``to_dict`` (its derived views are recomputed, not read)."""
        fields = {k: v for k, v in d.items() if k not in _RUN_VIEWS}
        fields["trials"] = [TrialRecord(**t) for t in fields["trials"]]
        return cls(**fields)


_RUN_VIEWS = ("best", "best_so_far", "pareto")


@dataclass
class CompareResult:
    problem: str
    objectives: list[str]
    directions: list[str]
    budget: dict[str, int | None]
    seeds: list[int]
    runs: list[RunResult] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # the problem's untuned default config and its values
    wall_seconds: float = 0.0               # this call's wall time (a resumed call: its part only)
    baseline_seconds: float = 0.0           # of which evaluating the baseline
    workers: int = 1                        # processes that ran the runs (compare's workers)
    device: str | None = None               # where the runs ran (compare's device; None: not known)

    def by_method(self) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {}
        for r in self.runs:
            out.setdefault(r.method, []).append(r)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "objectives": self.objectives,
            "directions": self.directions,
            "budget": self.budget,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "wall_seconds": self.wall_seconds,
            "baseline_seconds": self.baseline_seconds,
            "workers": self.workers,
            "device": self.device,
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompareResult:
        return cls(
            problem=d["problem"], objectives=d["objectives"], directions=d["directions"],
            budget=d["budget"], seeds=d["seeds"], runs=[RunResult.from_dict(r) for r in d["runs"]],
            baseline=d.get("baseline"), wall_seconds=d.get("wall_seconds", 0.0),
            baseline_seconds=d.get("baseline_seconds", 0.0), workers=d.get("workers", 1),
            device=d.get("device"),
        )


def load_compare(path: str | Path) -> CompareResult:
    """A ``CompareResult`` back from its ``compare.json`` (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "compare.json"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist (run `hpo-bench compare --out DIR` first)")
    try:
        return CompareResult.from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not a compare.json ({type(e).__name__}: {e})") from None
