"""How each pruned linear layer is fine-tuned: dense (the weight multiplied in full, the mask
re-applied after every step) or sparse (``nn.SparseTrainingLinear``: only the kept weights are
parameters, and the forward, both gradients and the optimizer step skip the pruned ones).

Which one is faster depends on the layer's shape and density, the rows per step (batch times
tokens), the machine and its threads, so nothing is guessed: like ``sparsify`` for inference, each
candidate's whole training step (forward, backward, Adam step, and the mask for dense) is timed on
that layer alone, interleaved, and sparse is chosen only if it beats dense by ``MARGIN``. Timings are
kept in memory and on disk (``cache_root() / "train-paths"``), keyed by what they depend on, so a
machine decides each kind of layer once and then always the same way.

The two paths are the same training in exact arithmetic (an elementwise optimizer moves each kept
weight identically) but round differently, so the path is part of an evaluation's identity: the
caching evaluator keys results by the problem's ``train_path`` mode and keeps each config's plan
(``plan_names``) with its results, so a resumed fine-tune follows the plan it started with.

Modes (``Problem.train_path``, or a problem argument ``NAME[train_path=MODE]``):

* ``dense``  every layer dense: the training of every result computed before sparse training existed
* ``sparse`` every prunable ``nn.Linear`` sparse
* ``auto``   per layer, as measured (the default)
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..nn import SparseTrainingLinear
from .sparsify import device_name, load_timings, save_timings, time_interleaved

__all__ = ["MARGIN", "TRAIN_PATHS", "apply_plan", "check_train_path", "choose_train_path", "plan_memo_key",
           "plan_training", "train_label"]

#: How pruned linear layers are fine-tuned (``Problem.train_path``; the module docstring).
TRAIN_PATHS = ("dense", "sparse", "auto")

#: Sparse is chosen only where it is at least this much faster than dense.
MARGIN = 1.1


def check_train_path(mode: str) -> str:
    if mode not in TRAIN_PATHS:
        raise ValueError(f"unknown train_path {mode!r}; choose one of {', '.join(TRAIN_PATHS)}")
    return mode


def train_label(mode: str, epochs: int, plan: dict[str, str] | None) -> Any:
    """What a result says it trained with (a trial's ``train_path``): the per-layer ``plan``
    under ``auto``, else the mode; a one-shot result (0 epochs) trains nothing: ``dense``."""
    if epochs == 0 or mode == "dense":
        return "dense"
    return plan if mode == "auto" else mode


def plan_memo_key(prefix: str) -> str:
    """Where the caching evaluator keeps an ``auto`` config's plan beside its results."""
    return f"train-plan:{prefix}"


def _linears(model: nn.Module, weights: Sequence[torch.Tensor]) -> dict[str, int]:
    """{module name: index in ``weights``} of every ``nn.Linear`` whose weight is a pruned one
    (matched by storage: pruning holds each weight's ``.data``, another tensor object) and that
    can be swapped for a sparse layer: a module reachable under two names, or a weight shared by
    two modules (tied), stays dense, since replacing it in one place would break the sharing."""
    index = {(w.data_ptr(), tuple(w.shape)): i for i, w in enumerate(weights)}
    found: dict[str, int] = {}
    names_of: dict[int, int] = {}
    users_of: dict[int, set[int]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if type(m) is not nn.Linear:
            continue
        names_of[id(m)] = names_of.get(id(m), 0) + 1
        i = index.get((m.weight.data_ptr(), tuple(m.weight.shape)))
        if i is not None:
            users_of.setdefault(i, set()).add(id(m))
            if name:
                found[name] = i
    return {name: i for name, i in found.items()
            if len(users_of[i]) == 1 and names_of[id(model.get_submodule(name))] == 1}


def _inputs(model: nn.Module, names: Sequence[str], example: torch.Tensor) -> dict[str, tuple[int, bool]]:
    """{layer: (rows of its input per step, whether its input needs a gradient)} on one training
    batch ``example`` (a forward with hooks, under no optimizer; the model's mode is kept)."""
    seen: dict[str, tuple[int, bool]] = {}

    def hook(name: str, x: torch.Tensor) -> None:
        seen.setdefault(name, (x.numel() // max(x.shape[-1], 1), x.requires_grad))

    hooks = [model.get_submodule(n).register_forward_pre_hook(lambda m, args, n=n: hook(n, args[0])) for n in names]
    # The forward must leave no trace: buffers (BatchNorm's running statistics) are restored, the
    # random state is forked, so a config starts its fine-tune from the same state whether its plan
    # was measured now or read back from the cache.
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.random.fork_rng(devices=[example.device] if example.device.type == "cuda" else []):
            model(example)
    finally:
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return seen


def _key(linear: nn.Linear, mask: torch.Tensor, rows: int, input_grad: bool) -> dict[str, Any]:
    w = linear.weight
    return {"device": device_name(w.device), "dtype": str(w.dtype).removeprefix("torch."), "shape": list(w.shape),
            "density": round(float(mask.sum()) / max(mask.numel(), 1), 2), "rows": int(rows),
            "input_grad": bool(input_grad), "bias": linear.bias is not None, "optimizer": "adam-fused"}


def choose_train_path(linear: nn.Linear, mask: torch.Tensor, rows: int, input_grad: bool = True,
                      repeats: int = 5) -> tuple[str, dict[str, float]]:
    """"dense" or "sparse" for fine-tuning ``linear`` under ``mask`` at ``rows`` input rows per
    step, and the median seconds of one step of each (measured here, or remembered)."""
    mask = mask.to(torch.bool)
    key = _key(linear, mask, rows, input_grad)
    timings = load_timings(key, "train-paths")
    if not {"dense", "sparse"} <= set(timings):
        device = linear.weight.device
        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(rows, linear.in_features, generator=gen).to(device).requires_grad_(input_grad)
        g = torch.randn(rows, linear.out_features, generator=gen).to(device)
        dense = copy.deepcopy(linear)
        with torch.no_grad():
            dense.weight.mul_(mask)
        sparse = SparseTrainingLinear.from_linear(dense, mask)
        maskf = mask.to(dense.weight.dtype)

        def step(module: nn.Module, opt: torch.optim.Optimizer, masked: bool) -> None:
            opt.zero_grad(set_to_none=True)
            module(x).backward(g)
            opt.step()
            if masked:
                with torch.no_grad():
                    dense.weight.mul_(maskf)

        fns = {}
        for name, module in (("dense", dense), ("sparse", sparse)):
            opt = torch.optim.Adam(module.parameters(), lr=1e-6, fused=True)  # (as the evaluator's)
            fns[name] = lambda module=module, opt=opt, masked=name == "dense": step(module, opt, masked)
        timings.update(time_interleaved(fns, repeats, device))
        save_timings(key, timings, "train-paths")
    best = "sparse" if timings["sparse"] * MARGIN < timings["dense"] else "dense"
    return best, {k: timings[k] for k in ("dense", "sparse")}


def plan_training(model: nn.Module, weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], mode: str,
                  example: torch.Tensor) -> dict[str, str]:
    """{layer name: "dense" | "sparse"} for every pruned ``nn.Linear`` of ``model`` under ``mode``
    (module docstring); ``example``: one training batch (its shape decides the rows per step)."""
    names = _linears(model, weights)
    if check_train_path(mode) == "dense" or not names:
        return {n: "dense" for n in names}
    if mode == "sparse":
        return {n: "sparse" for n in names}
    seen = _inputs(model, list(names), example)
    plan = {}
    for name, i in names.items():
        rows, input_grad = seen.get(name, (0, True))
        if rows == 0:  # not reached by the forward: nothing to gain
            plan[name] = "dense"
            continue
        plan[name], _ = choose_train_path(model.get_submodule(name), masks[i], rows, input_grad)
    return plan


def apply_plan(model: nn.Module, weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
               plan: dict[str, str]) -> list[int]:
    """Replace each layer the plan trains sparse by a ``SparseTrainingLinear`` (same weights, bias
    and mask), in place; returns the indices (into ``weights``) of the pruned weights still dense,
    whose masks the training loop must keep re-applying."""
    names = _linears(model, weights)
    unknown = sorted(set(plan) - set(names))
    if unknown:
        raise ValueError(f"train plan names layers {unknown} that are not pruned nn.Linear layers of this model "
                         f"({sorted(names)})")
    for name, i in names.items():
        if plan.get(name, "dense") != "sparse":
            continue
        model.set_submodule(name, SparseTrainingLinear.from_linear(model.get_submodule(name), masks[i]))
    sparse = {i for n, i in names.items() if plan.get(n, "dense") == "sparse"}
    return [i for i in range(len(weights)) if i not in sparse]
