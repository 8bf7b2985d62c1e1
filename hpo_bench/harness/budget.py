"""The budget every method of a comparison gets: trials, and/or nominal fine-tuning epochs."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_TRIALS", "Budget"]

#: The budget of ``search``, ``compare`` and the CLI when none is given: trials per method and seed.
DEFAULT_TRIALS = 16
#: The largest budget (trials or epochs) accepted: each trial is a fine-tune, and a budget-matched
#: grid of this many points is built in memory.
MAX_BUDGET = 100_000


@dataclass(frozen=True)
class Budget:
    """``trials``: finished trials (complete, pruned or failed) a method may spend. ``epochs``:
    nominal fine-tuning epochs (a pruned trial costs the epochs it ran). Either or both; a run
    stops when the first is spent. A trial that starts within the epoch budget runs to its end."""

    trials: int | None = None
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.trials is None and self.epochs is None:
            raise ValueError("a budget needs trials or epochs (or both)")
        for name in ("trials", "epochs"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_BUDGET):
                raise ValueError(f"budget {name} must be an integer from 1 to {MAX_BUDGET:,}, got {v!r}")

    @property
    def max_trials(self) -> int:
        """Trials a budget allows at most (epochs alone allow one trial per epoch)."""
        return int(self.trials if self.trials is not None else self.epochs)  # type: ignore[arg-type]

    @classmethod
    def of(cls, budget: "Budget | int | None") -> "Budget":
        """A ``Budget`` from what a caller gave: a Budget, a trial count, or None (the default)."""
        if isinstance(budget, Budget):
            return budget
        return cls(trials=DEFAULT_TRIALS if budget is None else budget)

    def trials_for(self, space: Any, fixed: Mapping[str, Any] | None = None, budget_matched: bool = False) -> int:
        """The trial count a method is built for (``MethodContext.budget_trials``).

        Trials alone: that many. With epochs, a model-based method is sized for the trials the
        epochs are expected to buy (E / mean epochs of a config, so its random start-up phase does
        not eat the whole budget), and a budget-matched method (``Method.budget_matched``: the grid)
        gets the largest grid whose total nominal epochs fit in E: every point of it is evaluated,
        none truncated.
        """
        if self.epochs is None:
            return self.max_trials
        limit = self.trials if self.trials is not None else int(self.epochs)
        fixed = fixed or {}
        if budget_matched:
            def cost(b: int) -> int:
                return sum(int(p.get("epochs", fixed.get("epochs", 1))) for p in space.grid(b))
            fits = [b for b in range(1, limit + 1) if cost(b) <= self.epochs]
            return max(fits) if fits else 1
        p = space.get("epochs")  # an Int(low, high) where epochs are searched
        mean = (p.low + p.high) / 2 if hasattr(p, "low") else float(fixed.get("epochs", 1))
        return max(1, min(limit, int(self.epochs // max(mean, 1.0))))

    @property
    def tag(self) -> str:
        """The budget in a study's name: ``trials16``, ``epochs30``, ``trials16-epochs30``."""
        return "-".join(f"{name}{v}" for name, v in (("trials", self.trials), ("epochs", self.epochs)) if v is not None)

    def credited(self, costs: list[int]) -> int:
        """How many of the trials spent, in order, with these nominal ``costs`` are credited: all of
        them under a trial budget; under an epoch budget, those that finished within it (the trial
        that crosses the budget runs to its end, but what it found is not credited, so no method
        gets more nominal epochs than another)."""
        spent = 0
        for i, cost in enumerate(costs):
            if not self.credits(spent, cost):
                return i
            spent += cost
        return len(costs)

    def credits(self, spent_epochs: int, cost: int) -> bool:
        """Whether a trial costing ``cost`` nominal epochs, after ``spent_epochs`` were spent by the
        trials before it, is credited."""
        return self.epochs is None or spent_epochs + cost <= self.epochs

    def spent(self, trials: int, epochs: int) -> bool:
        return (self.trials is not None and trials >= self.trials) or (
            self.epochs is not None and epochs >= self.epochs
        )

    def __str__(self) -> str:
        parts = [f"{self.trials} trials" if self.trials else "", f"{self.epochs} epochs" if self.epochs else ""]
        return " / ".join(p for p in parts if p)
