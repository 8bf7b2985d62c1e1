"""The caching evaluator: never pay twice for a fine-tune, and never change a result.

``CachingEvaluator`` wraps any ``Evaluator`` (cf. Optuna's ``_CachedStorage`` wrapping a storage)
over a ``CheckpointStore`` (store.py), and keeps the evaluator protocol (base.py):

* exact hit: the stored per-epoch values are replayed to the reporter (``base.replay``, so a pruner
  stops the trial exactly where it would have) and nothing is trained;
* prefix: training resumes from the longest stored checkpoint k < E and runs only E - k epochs;
* a trial stopped at epoch e leaves its checkpoint for a later, longer run to resume from.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from ..compression.train_path import plan_memo_key, train_label
from .base import EvalResult, EvaluationFailed, Reporter, make_result, replay, should_stop
from .evaluator import Evaluator
from .pretrained import dense_state
from .store import CheckpointStore, prefix_key

__all__ = ["CachingEvaluator"]


class CachingEvaluator:
    """An evaluator (same interface) that answers from, and fills, a ``CheckpointStore``."""

    def __init__(self, inner: Evaluator, store: CheckpointStore):
        self.inner = inner
        self.store = store
        self.problem = inner.problem
        self.seed = inner.seed

    def dense(self) -> dict[str, torch.Tensor]:
        """The problem's dense model: a cache entry too."""
        return dense_state(self.problem, self.store)

    def evaluate(self, config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult:
        t0 = time.perf_counter()
        cfg = self.inner.check_config(config)
        epochs = int(cfg["epochs"])
        device = self.inner.device.type
        mode = self.problem.train_path
        prefix = prefix_key(self.problem.fingerprint(), cfg, self.inner.seed, device, mode)
        stored = self.store.curve(prefix)[:epochs]
        static = self.store.static(prefix)
        row_config = cfg if mode == "dense" else {**cfg, "train_path": mode}  # (what table: problems filter on)

        if epochs == 0:  # one-shot pruning: prune and score (no fine-tune to cache; the metrics are kept)
            run = self.inner.start(cfg, dense=self.dense())
            if static is None:
                self.store.put_prefix(prefix, self.problem.name, self.problem.fingerprint(), row_config,
                                      self.inner.seed, device, run.static)
                static = run.static
            return self._result(static, [], 0, None, "one-shot", 0, t0, skipped=run.pruned.skipped,
                                score=run.score(), prefix=prefix)

        # Replay what is known, exactly as a fresh run would have reported it.
        curve, stopped_at = replay(stored if static is not None else [], epochs, reporter)
        if static is not None and (stopped_at is not None or len(curve) == epochs):
            return self._result(static, curve, epochs, stopped_at, "hit", 0, t0, prefix=prefix)

        run = self._start(cfg, prefix, mode)
        if static is None:
            self.store.put_prefix(prefix, self.problem.name, self.problem.fingerprint(), row_config,
                                  self.inner.seed, device, run.static)
            static = run.static
        ckpt = self.store.latest_checkpoint(prefix, max_epoch=len(curve))
        if ckpt is not None:
            run.load_state(ckpt[1], ckpt[0])
        resumed_from = run.epoch
        pruned_at = None
        while run.epoch < epochs:
            try:
                acc = run.train_epoch()
            except EvaluationFailed as e:
                raise EvaluationFailed(e.reason, curve) from None
            if run.epoch <= len(curve):
                continue  # re-training epochs whose values were replayed (their checkpoint was lost)
            self.store.put_epoch(prefix, run.epoch, acc)
            curve.append(acc)
            if should_stop(reporter, run.epoch, acc, epochs):
                pruned_at = run.epoch
                break
        self.store.put_blob(f"{prefix}@{run.epoch}", run.state(), prefix=prefix, epoch=run.epoch)
        outcome = "prefix" if resumed_from > 0 else "miss"
        return self._result(static, curve, epochs, pruned_at, outcome, run.epoch - resumed_from, t0,
                            skipped=run.pruned.skipped, prefix=prefix)

    def _start(self, cfg: dict[str, Any], prefix: str, mode: str) -> Any:
        """The fine-tune of ``cfg``, on the training plan this config's results were computed
        with: under ``auto`` the plan measured for its first run is kept beside its results
        (memo ``train-plan:PREFIX``), so a resumed or recomputed epoch, on this machine or any
        other that shares the cache, trains each layer the same way."""
        key = plan_memo_key(prefix)
        plan = self.store.get_memo(key) if mode == "auto" else None
        run = self.inner.start(cfg, dense=self.dense(), plan=plan)
        if mode == "auto" and plan is None:
            self.store.put_memo(key, run.train_plan)
            kept = self.store.get_memo(key)  # another process may have stored its plan first
            if kept is not None and kept != run.train_plan:
                run = self.inner.start(cfg, dense=self.dense(), plan=kept)
        return run

    def _result(self, static: Mapping[str, float], curve: list[float], epochs: int, pruned_at: int | None,
                outcome: str, trained: int, t0: float, skipped: list[str] | None = None,
                score: float | None = None, prefix: str = "") -> EvalResult:
        info = {"cache": outcome, "epochs_trained": trained, "device": str(self.inner.device),
                "seconds": time.perf_counter() - t0, "skipped_layers": skipped or [],
                "train_path": train_label(self.problem.train_path, epochs, self.store.get_memo(plan_memo_key(prefix))
                                           if self.problem.train_path == "auto" else None)}
        return make_result(self.problem.objectives, {self.problem.metric: curve[-1] if curve else score, **static}, curve, epochs, pruned_at, info)
