"""Compress -> fine-tune -> score: the one thing every trial of every method pays for.

``Evaluator`` implements the evaluator protocol of base.py by training. The result is a pure
function of (problem fingerprint, config, evaluation seed) (invariant 1): the dense model is the
problem's pre-trained one (pretrained.py), pruning is deterministic (ops), epoch e's data order and
random state depend on (seed, e) only, and the learning rate does not depend on the total epoch
count. So a fine-tune can stop after any epoch, be saved (``FineTune.state()``) and resumed later
(``FineTune.load_state()``) to give bit-identical weights and metrics (invariant 2): that is what the
caching evaluator (cached.py) builds on.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from ..compression.criteria import CALIBRATION_SAMPLES, calibration_batches
from ..compression.pruning import PruneResult, model_size_bytes, prune_model, pruning_options
from ..compression.train_path import apply_plan, plan_training, train_label
from ..problems import Problem
from .base import EvalResult, EvaluationFailed, Reporter, check_config, make_result, should_stop
from .pretrained import dense_state
from .training import DivergedError, as_tensors, evaluate_metric, train_epoch

__all__ = ["Evaluator", "FineTune", "static_metrics"]


def static_metrics(model: torch.nn.Module, pruned: PruneResult) -> dict[str, float]:
    """Objectives fixed by the pruning alone (the masks hold during fine-tuning), measured once,
    right after pruning, so a result served from a cache has exactly the same ones."""
    return {"sparsity": pruned.sparsity, "size_bytes": float(model_size_bytes(model, pruned.weights))}


class FineTune:
    """One configuration's pruned model in the middle of its fine-tune: ``epoch`` epochs done."""

    def __init__(self, evaluator: Evaluator, cfg: dict[str, Any], dense: Mapping[str, torch.Tensor],
                 plan: Mapping[str, str] | None = None):
        self.cfg = cfg
        self.seed = evaluator.seed
        self.task = evaluator.problem.task
        self.augment = evaluator.problem.augment  # training batches only (Problem.augment)
        self.samples = evaluator.problem.epoch_samples
        self._train, self._val = evaluator.data()
        model = evaluator.problem.model()
        model.load_state_dict(dense)
        model.to(evaluator.device)
        self.model = model
        # A criterion or allocation that scores weights on data (wanda, taylor, owl) gets calibration
        # batches of the training split drawn by the evaluation seed (compression/criteria.py); the
        # others never draw them, so magnitude configs prune exactly as before.
        samples = int(cfg.get("calibration_samples", CALIBRATION_SAMPLES))
        self.pruned = prune_model(model, str(cfg["pattern"]), float(cfg["sparsity"]), evaluator.problem.prunable,
                                  **pruning_options(cfg),
                                  calibration=lambda: calibration_batches(self._train, self.seed, samples))
        self.static = static_metrics(model, self.pruned)
        self.latency_info: dict[str, Any] | None = None
        if "latency_ms" in evaluator.problem.objectives:
            # Timed (so only when asked for) on the pruned structure, once, like the static metrics:
            # a result served from the cache carries the same latency as the run that stored it.
            from ..compression.sparsify import inference_latency

            self.static["latency_ms"], self.latency_info = inference_latency(model, self._val[0])
        # Each pruned Linear trains dense or sparse (compression/train_path.py): by ``plan`` when
        # given (a resumed fine-tune follows the plan it started with), else as the problem's
        # train_path mode decides (measured, for auto) on a batch of this config's size.
        # One-shot pruning (0 epochs) trains nothing, so it is scored dense under every mode.
        if plan is None:
            mode = evaluator.problem.train_path if int(cfg["epochs"]) > 0 else "dense"
            example = self._train[0][: int(cfg["batch_size"])]
            plan = plan_training(model, self.pruned.weights, self.pruned.masks, mode, example)
        self.train_plan = dict(plan)
        dense_idx = apply_plan(model, self.pruned.weights, self.pruned.masks, self.train_plan)
        pairs = self.pruned.pairs()
        self._masked = [pairs[i] for i in dense_idx]  # the dense-trained weights' masks, re-applied each step
        # Under the newer modes Adam steps with torch's fused kernel (one call per parameter, a
        # third of the single-tensor step's time on digits-mlp); ``dense`` keeps the optimizer of
        # every result stored before the modes existed (the two round differently).
        fused = {"fused": True} if evaluator.problem.train_path != "dense" else {}
        self.optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]),
                                          **fused)
        self.epoch = 0

    def score(self) -> float:
        """The problem's score on the validation data now (``Problem.metric``: accuracy, or a
        language model's loss)."""
        return evaluate_metric(self.model, self._val, self.task)

    def train_epoch(self) -> float:
        """Train epoch ``self.epoch + 1``; returns the validation score after it."""
        try:
            train_epoch(self.model, self._train, self.optimizer, batch_size=int(self.cfg["batch_size"]),
                        seed=self.seed, epoch=self.epoch, masks=self._masked, augment=self.augment,
                        samples=self.samples)
        except DivergedError as e:
            raise EvaluationFailed(f"fine-tune diverged: {e}") from None
        self.epoch += 1
        return self.score()

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue exactly: weights, masks, optimizer state (flat tensors)."""
        out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        out.update({f"mask.{i}": m.cpu().to(torch.uint8).contiguous() for i, m in enumerate(self.pruned.masks)})
        for idx, st in self.optimizer.state_dict()["state"].items():
            for name, v in st.items():
                out[f"opt.{idx}.{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
        return out

    def load_state(self, tensors: Mapping[str, torch.Tensor], epoch: int) -> None:
        device = next(self.model.parameters()).device
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for i, m in enumerate(self.pruned.masks):
            m.copy_(tensors[f"mask.{i}"].to(device=device, dtype=torch.bool))
        opt_state = self.optimizer.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        opt_state["state"] = state
        self.optimizer.load_state_dict(opt_state)
        self.epoch = int(epoch)


class Evaluator:
    """Evaluates configs of one problem on one device with one evaluation seed, by training."""

    def __init__(self, problem: Problem, device: str | torch.device = "cpu", seed: int = 0):
        self.problem = problem
        self.device = torch.device(device)
        self.seed = int(seed)
        self._data: tuple[Any, Any] | None = None

    def data(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        if self._data is None:
            self._data = (as_tensors(self.problem.train, self.device), as_tensors(self.problem.val, self.device))
        return self._data

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return check_config(config)

    def start(self, config: Mapping[str, Any], dense: Mapping[str, torch.Tensor] | None = None,
              plan: Mapping[str, str] | None = None) -> FineTune:
        """The pruned model of ``config``, before its first fine-tuning epoch. ``dense``: the dense
        weights to prune (default: ``dense_state(problem)``, kept in memory only); ``plan``: each
        pruned Linear's training path (default: the problem's ``train_path`` decides)."""
        cfg = self.check_config(config)
        return FineTune(self, cfg, dense if dense is not None else dense_state(self.problem), plan)

    def result(self, run: FineTune, curve: list[float], pruned_at: int | None,
               info: dict[str, Any]) -> EvalResult:
        # epochs = 0 (one-shot pruning): the pruned model's own score, before any fine-tuning
        values = {self.problem.metric: curve[-1] if curve else run.score(), **run.static}
        if run.latency_info is not None:
            info["latency"] = run.latency_info
        return make_result(self.problem.objectives, values, curve, int(run.cfg["epochs"]), pruned_at, info)

    def evaluate(self, config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult:
        start = time.perf_counter()
        run = self.start(config)
        before = run.score()
        epochs = int(run.cfg["epochs"])
        curve: list[float] = []
        pruned_at = None
        for epoch in range(1, epochs + 1):
            try:
                curve.append(run.train_epoch())
            except EvaluationFailed as e:
                raise EvaluationFailed(e.reason, curve) from None
            if should_stop(reporter, epoch, curve[-1], epochs):
                pruned_at = epoch
                break
        info = {f"{self.problem.metric}_before_finetune": before, "device": str(self.device), "epochs_trained": len(curve),
                "seconds": time.perf_counter() - start, "skipped_layers": run.pruned.skipped,
                "train_path": train_label(self.problem.train_path, epochs, run.train_plan)}
        return self.result(run, curve, pruned_at, info)
