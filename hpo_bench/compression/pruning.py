"""Magnitude pruning of a model, in every pattern the search space may name.

Patterns (the ``pattern`` config value):

* ``unstructured``        global: the round(s*N) smallest |w| over all prunable weights
* ``unstructured-layer``  the same, layer by layer (each layer pruned to s)
* ``N:M`` (e.g. ``2:4``)  keep the N largest of every M consecutive input weights; ``sparsity`` is
  ignored (it is 1 - N/M). Layers whose fan-in is not a multiple of M are left dense and reported.
* ``blockH`` / ``blockHxW`` (e.g. ``block4``)  H x W tiles of smallest L1 norm, globally

All selection runs through ``hpo_bench.ops`` (native C++ on CPU, Triton on CUDA, torch elsewhere).
The masks are returned so fine-tuning can hold them fixed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import ops

__all__ = ["PATTERNS", "PruneResult", "effective_config", "model_size_bytes", "parse_pattern", "prunable_weights", "prune_model"]

PATTERNS = ("unstructured", "unstructured-layer", "N:M", "blockH[xW]")


@dataclass
class PruneResult:
    weights: list[torch.Tensor]
    masks: list[torch.Tensor]
    skipped: list[str] = field(default_factory=list)  # layers a pattern could not apply to

    @property
    def sparsity(self) -> float:
        total = sum(w.numel() for w in self.weights)
        zeros = sum(int((w == 0).sum()) for w in self.weights)
        return zeros / total if total else 0.0

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(w, m.to(w.dtype)) for w, m in zip(self.weights, self.masks)]


def parse_pattern(pattern: str) -> tuple[str, tuple[int, ...]]:
    """``"2:4"`` -> ("nm", (2, 4)); ``"block4"`` -> ("block", (4, 4)); ``"block8x2"`` -> ("block", (8, 2))."""
    if pattern in ("unstructured", "unstructured-layer"):
        return pattern, ()
    if m := re.fullmatch(r"(\d+):(\d+)", pattern):
        n, mm = int(m[1]), int(m[2])
        if not 0 < n < mm:
            raise ValueError(f"pattern {pattern!r}: N:M needs 0 < N < M")
        return "nm", (n, mm)
    if m := re.fullmatch(r"block(\d+)(?:x(\d+))?", pattern):
        h = int(m[1])
        w = int(m[2]) if m[2] else h
        if h < 1 or w < 1:
            raise ValueError(f"pattern {pattern!r}: block sizes must be >= 1")
        return "block", (h, w)
    raise ValueError(f"unknown pruning pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def effective_config(config: dict) -> dict:
    """``config`` without the keys its pattern ignores (an N:M pattern fixes its own sparsity,
    n/m), for showing a config to a person."""
    pattern = config.get("pattern")
    if isinstance(pattern, str) and re.fullmatch(r"\d+:\d+", pattern):
        return {k: v for k, v in config.items() if k != "sparsity"}
    return dict(config)


def prunable_weights(
    model: torch.nn.Module, prunable: Callable[[torch.nn.Module], bool]
) -> list[tuple[str, torch.Tensor]]:
    return [
        (name, mod.weight.data)
        for name, mod in model.named_modules()
        if prunable(mod) and isinstance(getattr(mod, "weight", None), torch.Tensor)
    ]


@torch.no_grad()
def prune_model(
    model: torch.nn.Module,
    pattern: str,
    sparsity: float,
    prunable: Callable[[torch.nn.Module], bool] = lambda m: isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)),
) -> PruneResult:
    """Prune ``model``'s prunable weights in place; returns the weights and their masks."""
    kind, args = parse_pattern(pattern)
    named = prunable_weights(model, prunable)
    if not named:
        raise ValueError("the model has no prunable weights (no Linear or Conv2d layers?)")
    weights = [w for _, w in named]
    if kind == "unstructured":
        return PruneResult(weights, ops.magnitude_prune_(weights, sparsity))
    if kind == "unstructured-layer":
        return PruneResult(weights, [ops.magnitude_prune_([w], sparsity)[0] for w in weights])
    if kind == "block":
        return PruneResult(weights, ops.block_prune_(weights, sparsity, args))
    n, m = args
    masks, skipped = [], []
    for name, w in named:
        fan_in = w[0].numel() if w.dim() else 0
        if w.dim() < 2 or fan_in % m:
            masks.append(torch.ones_like(w, dtype=torch.bool))
            skipped.append(f"{name} (fan-in {fan_in} not a multiple of {m})")
            continue
        masks.append(ops.nm_prune_(w.view(w.shape[0], fan_in), n, m).view(w.shape))
    return PruneResult(weights, masks, skipped)


def model_size_bytes(model: torch.nn.Module, pruned: list[torch.Tensor]) -> int:
    """Bytes to store the model with every pruned weight in its smaller form: dense, or CSR with
    values, column indices as narrow as the width allows (int16 below 32768 columns, else int32)
    and int32 row offsets. Other parameters and buffers count dense."""
    pruned_ptrs = {w.data_ptr() for w in pruned}
    total = 0
    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in pruned_ptrs:
            continue
        total += p.numel() * p.element_size()
    for w in pruned:
        rows = w.shape[0] if w.dim() else 1
        cols = w.numel() // max(rows, 1)
        dense = w.numel() * w.element_size()
        nnz = int((w != 0).sum())
        idx = 2 if cols < 32768 else 4
        csr = nnz * (w.element_size() + idx) + (rows + 1) * 4
        total += min(dense, csr)
    return total
