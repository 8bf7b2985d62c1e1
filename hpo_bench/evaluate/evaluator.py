"""Compress -> fine-tune -> score: the one thing every trial of every method pays for.

The result is a pure function of (problem fingerprint, config, evaluation seed) (invariant 1): the
dense model is the problem's pre-trained one, pruning is deterministic (ops), the data order of
epoch e depends on (seed, e) only, and the learning rate does not depend on the total epoch count,
so a later caching layer can resume a longer fine-tune from a shorter one's checkpoint.

After every epoch the validation metric goes to the ``reporter``; if it answers True (an Optuna
pruner said "stop"), fine-tuning stops there and the result says at which epoch.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..compression.pruning import model_size_bytes, prune_model
from ..problems.base import Problem, dense_state
from .training import DivergedError, as_tensors, evaluate_accuracy, train_epoch

__all__ = ["EvalResult", "EvaluationFailed", "Evaluator", "Reporter", "REQUIRED_KEYS"]

#: ``reporter(epoch, value) -> stop?``; epoch counts from 1.
Reporter = Callable[[int, float], bool]

REQUIRED_KEYS = ("sparsity", "pattern", "lr", "epochs")
DEFAULTS = {"batch_size": 64, "weight_decay": 0.0}


class EvaluationFailed(RuntimeError):
    """The configuration could not be evaluated (e.g. the fine-tune diverged); ``reason`` says why."""

    def __init__(self, reason: str, curve: list[float] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.curve = curve or []


@dataclass
class EvalResult:
    values: dict[str, float]            # objective name -> value
    curve: list[float]                  # validation accuracy after each fine-tuning epoch
    epochs_requested: int
    pruned_at: int | None = None        # epoch after which a pruner stopped it, else None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def nominal_epochs(self) -> int:
        """Epochs this result costs without any cache: all requested, or those before the stop."""
        return self.pruned_at if self.pruned_at is not None else self.epochs_requested

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Evaluator:
    """Evaluates configs of one problem on one device with one evaluation seed."""

    def __init__(self, problem: Problem, device: str | torch.device = "cpu", seed: int = 0):
        self.problem = problem
        self.device = torch.device(device)
        self.seed = int(seed)
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None

    def _data(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        if self._train is None or self._val is None:
            self._train = as_tensors(self.problem.train, self.device)
            self._val = as_tensors(self.problem.val, self.device)
        return self._train, self._val

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        missing = [k for k in REQUIRED_KEYS if k not in config]
        if missing:
            raise ValueError(
                f"config lacks {missing}: put them in the problem's space or its fixed constants"
            )
        cfg = {**DEFAULTS, **config}
        if int(cfg["epochs"]) < 1:
            raise ValueError(f"config 'epochs' must be >= 1, got {cfg['epochs']!r}")
        return cfg

    def evaluate(self, config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult:
        cfg = self.check_config(config)
        start = time.perf_counter()
        train, val = self._data()
        model = self.problem.model()
        model.load_state_dict(dense_state(self.problem))
        model.to(self.device)
        pruned = prune_model(model, str(cfg["pattern"]), float(cfg["sparsity"]), self.problem.prunable)
        acc_before = evaluate_accuracy(model, val)
        opt = torch.optim.Adam(
            model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
        )
        epochs = int(cfg["epochs"])
        curve: list[float] = []
        pruned_at = None
        for epoch in range(epochs):
            try:
                train_epoch(model, train, opt, batch_size=int(cfg["batch_size"]), seed=self.seed,
                            epoch=epoch, masks=pruned.pairs())
            except DivergedError as e:
                raise EvaluationFailed(f"fine-tune diverged: {e}", curve) from None
            curve.append(evaluate_accuracy(model, val))
            if reporter is not None and reporter(epoch + 1, curve[-1]) and epoch + 1 < epochs:
                pruned_at = epoch + 1
                break
        values = {
            "accuracy": curve[-1],
            "sparsity": pruned.sparsity,
            "size_bytes": float(model_size_bytes(model, pruned.weights)),
        }
        info = {
            "accuracy_before_finetune": acc_before,
            "device": str(self.device),
            "seconds": time.perf_counter() - start,
            "skipped_layers": pruned.skipped,
        }
        return EvalResult(
            values={o: values[o] for o in self.problem.objectives} | {
                k: v for k, v in values.items() if k not in self.problem.objectives
            },
            curve=curve, epochs_requested=epochs, pruned_at=pruned_at, info=info,
        )
