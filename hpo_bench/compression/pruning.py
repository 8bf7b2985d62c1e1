"""Pruning of a model, in every pattern, criterion and allocation the search space may name.

Patterns (the ``pattern`` config value):

* ``unstructured``        the round(s*N) lowest-scoring weights over all prunable weights, spread
  over the layers by the ``allocation`` (default ``global``: one threshold over all layers)
* ``unstructured-layer``  the same, layer by layer (each layer pruned to round(s * n_l)); it is its
  own allocation, so it takes no ``allocation`` key (use ``unstructured`` + ``uniform``, whose
  counts sum exactly to round(s*N))
* ``N:M`` (e.g. ``2:4``)  keep the N highest-scoring of every M consecutive input weights; ``sparsity``,
  ``allocation`` and the ``owl_*`` keys are ignored (N:M fixes every group's density). Layers whose
  fan-in is not a multiple of M are left dense and reported.
* ``blockH`` / ``blockHxW`` (e.g. ``block4``)  H x W tiles of smallest summed score (for magnitude:
  L1 norm), globally; only the ``global`` allocation (a per-layer allocation of whole tiles cannot
  hit an exact weight count), any other is a ValueError.

Criteria (``criterion``, criteria.py): ``magnitude`` (default), ``wanda`` (compared within each
output row: within a layer the k_l the allocation gives it are spread over the rows, the smallest of
each row pruned; in a tile or N:M group the score replaces |w|), ``taylor``. Allocations
(``allocation``, allocation.py): ``global``, ``uniform``, ``erk``, ``owl`` (``owl_lambda``, ``owl_m``).
With ``global``, the layers' counts are those of the round(s*N) smallest scores over all layers;
for ``wanda`` each layer then prunes its count row by row.

``criterion`` ``magnitude`` with the pattern's default allocation runs exactly today's code, the
``hpo_bench.ops`` kernels (native C++ on CPU, Triton on CUDA, torch elsewhere), so such configs
prune bit for bit as before; every other combination selects by score in plain torch with the same
tie rule. ``wanda``, ``taylor`` and ``owl`` need calibration batches (criteria.py). The masks are
returned so fine-tuning can hold them fixed.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import ops
from .allocation import ALLOCATIONS, OWL_LAMBDA, OWL_M, layer_counts
from .criteria import (CRITERIA, Batches, magnitude_scores, select_blocks, select_global, select_nm,
                       select_per_row, select_smallest, taylor_scores, wanda_scores)

__all__ = ["PATTERNS", "PRUNING_DEFAULTS", "PruneResult", "effective_config", "model_size_bytes", "parse_pattern",
           "prunable_weights", "prune_model", "pruning_options"]

PATTERNS = ("unstructured", "unstructured-layer", "N:M", "blockH[xW]")

#: The pruning config keys beyond ``pattern`` and ``sparsity``, and their values when left out. They
#: are *not* filled into a config (evaluate.check_config leaves them out), so a config without them
#: keeps the cache prefix it always had.
PRUNING_DEFAULTS: dict[str, Any] = {"criterion": "magnitude", "allocation": "global", "owl_lambda": OWL_LAMBDA,
                                    "owl_m": OWL_M}


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


def _number(config: Mapping[str, Any], key: str, ok: Callable[[float], bool], rule: str) -> float:
    v = config.get(key, PRUNING_DEFAULTS[key])
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(float(v)):
        raise ValueError(f"config {key!r} must be {rule}, got {v!r}")
    return float(v)


def pruning_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``prune_model`` keyword arguments a config asks for (``criterion``, ``allocation``,
    ``owl_lambda``, ``owl_m``; ``PRUNING_DEFAULTS`` where left out), checked against its ``pattern``:
    a ValueError naming the key for an unknown value or a combination no pattern defines."""
    criterion = config.get("criterion", PRUNING_DEFAULTS["criterion"])
    if criterion not in CRITERIA:
        raise ValueError(f"config 'criterion' must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    allocation = config.get("allocation")
    if allocation is not None and allocation not in ALLOCATIONS:
        raise ValueError(f"config 'allocation' must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    kind = parse_pattern(str(config["pattern"]))[0] if "pattern" in config else "unstructured"
    if kind == "unstructured-layer" and allocation is not None:
        raise ValueError("pattern 'unstructured-layer' is its own allocation (each layer at the target) and takes "
                         "no 'allocation': use pattern 'unstructured' with the allocation")
    if kind == "block" and allocation not in (None, "global"):
        raise ValueError(f"block patterns take only the 'global' allocation, got {allocation!r}")
    return {"criterion": criterion, "allocation": allocation,
            "owl_lambda": _number(config, "owl_lambda", lambda v: v >= 0, "a number >= 0"),
            "owl_m": _number(config, "owl_m", lambda v: v > 0, "a number > 0")}


def effective_config(config: dict) -> dict:
    """``config`` without the keys its pattern (or allocation) ignores, for showing a config to a
    person: an N:M pattern fixes its own sparsity (n/m) and allocation; ``owl_*`` only matter to the
    ``owl`` allocation."""
    pattern = config.get("pattern")
    ignored: set[str] = set()
    if isinstance(pattern, str) and re.fullmatch(r"\d+:\d+", pattern):
        ignored |= {"sparsity", "allocation"}
    if config.get("allocation") != "owl" or "allocation" in ignored:
        ignored |= {"owl_lambda", "owl_m"}
    return {k: v for k, v in config.items() if k not in ignored}


def _prunable_modules(model: torch.nn.Module, prunable: Callable[[torch.nn.Module], bool]
                      ) -> list[tuple[str, torch.nn.Module]]:
    return [(name, mod) for name, mod in model.named_modules()
            if prunable(mod) and isinstance(getattr(mod, "weight", None), torch.Tensor)]


def prunable_weights(
    model: torch.nn.Module, prunable: Callable[[torch.nn.Module], bool]
) -> list[tuple[str, torch.Tensor]]:
    return [(name, mod.weight.data) for name, mod in _prunable_modules(model, prunable)]


@torch.no_grad()
def prune_model(
    model: torch.nn.Module,
    pattern: str,
    sparsity: float,
    prunable: Callable[[torch.nn.Module], bool] = lambda m: isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)),
    *,
    criterion: str = "magnitude",
    allocation: str | None = None,
    owl_lambda: float = OWL_LAMBDA,
    owl_m: float = OWL_M,
    calibration: Batches | Callable[[], Batches] | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> PruneResult:
    """Prune ``model``'s prunable weights in place; returns the weights and their masks.

    ``criterion``, ``allocation`` (None: the pattern's own), ``owl_lambda``, ``owl_m``: see the
    module docstring. ``calibration``: (input, target) batches, or a function returning them (called
    only when the criterion or allocation needs them: ``wanda``, ``taylor``, ``owl``). ``loss``:
    ``(output, target) -> scalar`` for ``taylor`` (default: mean cross-entropy, criteria.default_loss).
    """
    kind, args = parse_pattern(pattern)
    opts = pruning_options({"pattern": pattern, "criterion": criterion, "owl_lambda": owl_lambda, "owl_m": owl_m,
                            **({"allocation": allocation} if allocation is not None else {})})
    named = _prunable_modules(model, prunable)
    if not named:
        raise ValueError("the model has no prunable weights (no Linear or Conv2d layers?)")
    weights = [mod.weight.data for _, mod in named]
    if kind == "nm":
        allocation = None  # ignored: N:M fixes every group's density
    if criterion == "magnitude" and allocation in (None, "global"):
        return _prune_magnitude(named, weights, kind, args, sparsity)

    modules = [mod for _, mod in named]
    batches: Batches | None = None

    def calib() -> Batches:
        nonlocal batches
        if batches is None:
            if calibration is None:
                raise ValueError(f"criterion {criterion!r} / allocation {allocation!r} needs calibration batches")
            batches = list(calibration() if callable(calibration) else calibration)
            if not batches:
                raise ValueError("calibration batches are empty")
        return batches

    wanda = wanda_scores(model, modules, calib()) if criterion == "wanda" or allocation == "owl" else None
    if criterion == "wanda":
        scores = wanda
    elif criterion == "taylor":
        scores = taylor_scores(model, modules, calib(), loss)
    else:
        scores = magnitude_scores(modules)
    assert scores is not None
    skipped: list[str] = []
    if kind == "nm":
        n, m = args
        masks = []
        for (name, _), w, s in zip(named, weights, scores):
            fan_in = w[0].numel() if w.dim() else 0
            if w.dim() < 2 or fan_in % m:
                masks.append(torch.ones_like(w, dtype=torch.bool))
                skipped.append(f"{name} (fan-in {fan_in} not a multiple of {m})")
            else:
                masks.append(select_nm(s, n, m))
    elif kind == "block":
        masks = select_blocks(scores, sparsity, args)
    else:
        shapes = [tuple(w.shape) for w in weights]
        if kind == "unstructured-layer":
            counts = [int(round(float(sparsity) * w.numel())) for w in weights]
        elif allocation in (None, "global"):
            k = int(round(float(sparsity) * sum(w.numel() for w in weights)))
            masks = select_global(scores, k)
            counts = [int((~mk).sum()) for mk in masks]
        else:
            counts = layer_counts(allocation, shapes, sparsity, wanda=wanda, owl_lambda=opts["owl_lambda"],
                                  owl_m=opts["owl_m"])
        if criterion == "wanda":
            masks = [select_per_row(s, c) for s, c in zip(scores, counts)]
        elif kind == "unstructured-layer" or allocation not in (None, "global"):
            masks = [select_smallest(s, c) for s, c in zip(scores, counts)]
    for w, mk in zip(weights, masks):
        w.masked_fill_(~mk, 0)
    return PruneResult(weights, masks, skipped)


def _prune_magnitude(named: list[tuple[str, torch.nn.Module]], weights: list[torch.Tensor], kind: str,
                     args: tuple[int, ...], sparsity: float) -> PruneResult:
    """Magnitude pruning through the ``ops`` kernels: the code every config without a criterion ran."""
    if kind == "unstructured":
        return PruneResult(weights, ops.magnitude_prune_(weights, sparsity))
    if kind == "unstructured-layer":
        return PruneResult(weights, [ops.magnitude_prune_([w], sparsity)[0] for w in weights])
    if kind == "block":
        return PruneResult(weights, ops.block_prune_(weights, sparsity, args))
    n, m = args
    masks, skipped = [], []
    for (name, _), w in zip(named, weights):
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
