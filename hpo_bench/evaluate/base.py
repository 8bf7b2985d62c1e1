"""The evaluator protocol: what every evaluator receives, when it reports, what it raises, what it
returns; and the one rule for reporting per-epoch values to a pruner.

An *evaluator* is any object with

    evaluate(config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult

The call order and contract, for every implementation (``Evaluator`` trains, ``CachingEvaluator``
answers from and fills a checkpoint cache, ``TableEvaluator`` answers from the cache alone, a user's
own may do anything):

1. ``config`` is a full evaluation config: the problem's fixed constants overridden by the sampled
   parameters (``Problem.config``). It holds at least ``REQUIRED_KEYS``; ``DEFAULTS`` fill the rest.
   A config that lacks a key, asks for fewer than zero epochs or names an unknown pruning option
   (``compression.pruning_options``) raises ``ValueError`` (bad input). ``epochs`` = 0 is one-shot
   pruning: no fine-tuning, the result is the pruned model's score, the curve is empty and nothing
   is reported.
2. After each fine-tuning epoch e = 1, 2, ..., E the validation score (``Problem.metric``) goes to
   ``reporter(e, value)``, in order, once per epoch, whether the value was trained now or replayed
   from a cache (``should_stop``, ``replay``). If the reporter answers True after an epoch e < E (an
   Optuna pruner said "stop"), the evaluation stops there and the result's ``pruned_at`` is e; an
   answer after the last epoch changes nothing. With no reporter, all E epochs run.
3. A configuration that cannot be evaluated (the fine-tune diverged) raises ``EvaluationFailed``
   with a reason and the per-epoch values reached before it; the harness records the trial as FAIL.
   Any other exception is not the configuration's fault and propagates.
4. The ``EvalResult`` holds the problem's objectives first (``values``), the per-epoch curve, the
   epochs asked for, ``pruned_at`` and ``info`` (``epochs_trained``: epochs really trained here,
   ``cache``: how a cache answered). Its ``nominal_epochs`` is what the result would cost without
   any cache: what budgets count (invariant 3 of ARCHITECTURE.md).

The result is a pure function of (problem fingerprint, config, evaluation seed) (invariant 1), so
every implementation must return the same values and make the same stop decisions for a config.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["DEFAULTS", "REQUIRED_KEYS", "EvalResult", "EvaluationFailed", "EvaluatorLike", "Reporter",
           "make_result", "replay", "should_stop"]

#: ``reporter(epoch, value) -> stop?``; epoch counts from 1.
Reporter = Callable[[int, float], bool]

#: Config keys every evaluation needs (in the problem's space or its fixed constants).
REQUIRED_KEYS = ("sparsity", "pattern", "lr", "epochs")
#: Config keys that may be left out, and their values. (The pruning options ``criterion``,
#: ``allocation``, ``owl_lambda``, ``owl_m`` and ``calibration_samples`` may be left out too; their
#: defaults, ``compression.PRUNING_DEFAULTS``, are not filled in, so a config without them keeps the
#: cache prefix, and the result, it always had.)
DEFAULTS = {"batch_size": 64, "weight_decay": 0.0}


class EvaluationFailed(RuntimeError):
    """The configuration could not be evaluated (e.g. the fine-tune diverged); ``reason`` says why,
    ``curve`` holds the per-epoch values reached before it."""

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


class EvaluatorLike(Protocol):
    """Anything the harness can evaluate configs with (see the module docstring). ``seed`` is the
    evaluation seed (fine-tuning's data order): part of a study's identity."""

    seed: int

    def evaluate(self, config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult: ...


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``DEFAULTS`` filled in; a ValueError naming what is missing or wrong."""
    from ..compression import pruning_options

    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ValueError(f"config lacks {missing}: put them in the problem's space or its fixed constants")
    cfg = {**DEFAULTS, **config}
    if int(cfg["epochs"]) < 0:
        raise ValueError(f"config 'epochs' must be >= 0 (0: one-shot pruning, no fine-tuning), got {cfg['epochs']!r}")
    pruning_options(cfg)
    samples = cfg.get("calibration_samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"config 'calibration_samples' must be an integer >= 1, got {samples!r}")
    return cfg


def should_stop(reporter: Reporter | None, epoch: int, value: float, epochs: int) -> bool:
    """Report epoch ``epoch``'s value; True if the evaluation stops after it. The reporter is asked
    after every epoch (the last one too, so a pruner sees the whole curve), but only an epoch
    before the last can be stopped at."""
    return reporter is not None and bool(reporter(epoch, value)) and epoch < epochs


def replay(values: Sequence[float], epochs: int, reporter: Reporter | None) -> tuple[list[float], int | None]:
    """Report stored per-epoch ``values`` (epochs 1, 2, ...) exactly as a fresh run would have:
    returns the values reported and the epoch stopped at (None if the reporter never stopped it)."""
    out: list[float] = []
    for value in values:
        out.append(value)
        if should_stop(reporter, len(out), value, epochs):
            return out, len(out)
    return out, None


def make_result(objectives: Sequence[str], values: Mapping[str, float], curve: Sequence[float], epochs: int,
                pruned_at: int | None, info: dict[str, Any]) -> EvalResult:
    """An EvalResult with the problem's ``objectives`` first, then the other metrics."""
    ordered = {o: float(values[o]) for o in objectives}
    ordered.update({k: float(v) for k, v in values.items() if k not in ordered})
    return EvalResult(values=ordered, curve=list(curve), epochs_requested=epochs, pruned_at=pruned_at, info=info)
