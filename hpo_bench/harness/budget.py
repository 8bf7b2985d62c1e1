"""The budget every method of a comparison gets: trials, and/or nominal fine-tuning epochs."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget"]


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
            if v is not None and (int(v) != v or v < 1):
                raise ValueError(f"budget {name} must be an integer >= 1, got {v!r}")

    @property
    def max_trials(self) -> int:
        """Trials a budget allows at most (epochs alone allow one trial per epoch)."""
        return int(self.trials if self.trials is not None else self.epochs)  # type: ignore[arg-type]

    def spent(self, trials: int, epochs: int) -> bool:
        return (self.trials is not None and trials >= self.trials) or (
            self.epochs is not None and epochs >= self.epochs
        )

    def __str__(self) -> str:
        parts = [f"{self.trials} trials" if self.trials else "", f"{self.epochs} epochs" if self.epochs else ""]
        return " / ".join(p for p in parts if p)
