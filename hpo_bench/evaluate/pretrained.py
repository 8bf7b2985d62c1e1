"""The dense model every configuration of a problem starts from: given, or trained once.

One function, ``dense_state``, answers for every evaluator: the problem's own ``pretrained_state``
if it has one; else the weights trained by its ``pretrain`` recipe (on CPU, on one thread: the
same bits in every process, whatever its torch thread count; or on the GPU a recipe names, for
one too long for a CPU), kept in memory for the process, or, when a ``CheckpointStore`` is given, in the store as a blob like any
other (checksummed on every read, shared between processes). Without a store (``--no-cache``)
nothing is written.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from .training import as_tensors, train_epoch

if TYPE_CHECKING:
    from ..problems import Problem

__all__ = ["dense_state", "pretrain_dense"]

_IN_MEMORY: dict[str, dict[str, torch.Tensor]] = {}


def dense_state(problem: "Problem", store: Any | None = None) -> dict[str, torch.Tensor]:
    """The problem's pre-trained dense weights (see the module docstring). ``store``: a
    ``CheckpointStore`` to keep them in, or None."""
    if problem.pretrained_state is not None:
        return dict(problem.pretrained_state)
    fingerprint = problem.fingerprint()
    state = store.get_blob(f"dense:{fingerprint}") if store is not None else None  # verified on every read
    if state is not None:
        return state
    if fingerprint not in _IN_MEMORY:  # trained once per process, even where the store cannot keep it
        _IN_MEMORY[fingerprint] = pretrain_dense(problem)
    if store is not None:
        store.put_blob(f"dense:{fingerprint}", _IN_MEMORY[fingerprint])
    return _IN_MEMORY[fingerprint]


def pretrain_dense(problem: "Problem") -> dict[str, torch.Tensor]:
    """Train the dense model by the problem's recipe, on CPU, deterministically (no caching): on
    one thread, since a sum split over 2 threads differs from 1 thread's in the last bits (measured:
    6e-6 in digits-mlp's weights), and a chaotic fine-tune (a high learning rate) turns that into a
    different accuracy. So a worker process, whatever its thread count, starts from the same model
    as any other, and every evaluation stays a function of (problem, config, evaluation seed).

    The recipe (``Problem.pretrain``): ``epochs``, ``lr``, ``batch_size``, ``seed``; optionally
    ``optimizer`` (``adam``, the default, or ``sgd`` with ``momentum`` and ``nesterov``),
    ``weight_decay``, a step schedule (``lr_milestones``: fractions of the epochs at which the lr is
    multiplied by ``lr_gamma``, default 0.1; epoch e runs at lr * gamma^(milestones m with e >=
    floor(m * epochs + 1/2)), so [0.5, 0.75] of 164 epochs drops at epochs 82 and 123), and
    ``device`` (``cuda``/``cuda:N``: pretrain there, for a recipe too long for one CPU thread; the
    same data order and augmentation draws as on the CPU, with cuDNN's deterministic algorithms, so
    repeatable on one GPU model and software stack where the model's other ops have deterministic
    CUDA kernels, as ResNet-20's do, but not bit-identical to the CPU or across GPUs: the device is
    part of the recipe, and so of the problem's fingerprint; the store keeps one dense model per
    fingerprint for every worker). A recipe with none of these trains as it always did. The
    problem's ``augment`` applies to every batch."""
    device = torch.device(str((problem.pretrain or {}).get("device", "cpu")))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"problem {problem.name!r}: its pretrain recipe asks for {device}, but torch sees no "
                             "CUDA device")
        flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            return _pretrain(problem, device)
        finally:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain(problem, device)
    finally:
        torch.set_num_threads(threads)


_RECIPE_KEYS = {"epochs", "lr", "batch_size", "seed", "optimizer", "momentum", "nesterov", "weight_decay",
                "lr_milestones", "lr_gamma", "device"}


def _optimizer(model: torch.nn.Module, recipe: dict[str, Any], name: str) -> torch.optim.Optimizer:
    unknown = sorted(set(recipe) - _RECIPE_KEYS)
    if unknown:
        raise ValueError(f"problem {name!r}: unknown pretrain recipe keys {unknown}; known: {sorted(_RECIPE_KEYS)}")
    lr = float(recipe.get("lr", 1e-3))
    kind = str(recipe.get("optimizer", "adam"))
    if kind == "adam":
        if "weight_decay" in recipe:
            return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=float(recipe["weight_decay"]))
        return torch.optim.Adam(model.parameters(), lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=float(recipe.get("momentum", 0.0)),
                               weight_decay=float(recipe.get("weight_decay", 0.0)),
                               nesterov=bool(recipe.get("nesterov", False)))
    raise ValueError(f"problem {name!r}: pretrain optimizer must be adam or sgd, got {kind!r}")


def recipe_lr(recipe: dict[str, Any], epoch: int, epochs: int) -> float:
    """The learning rate of (0-based) ``epoch`` under the recipe's step schedule (see pretrain_dense)."""
    lr = float(recipe.get("lr", 1e-3))
    gamma = float(recipe.get("lr_gamma", 0.1))
    drops = sum(epoch >= math.floor(float(m) * epochs + 0.5) for m in recipe.get("lr_milestones", ()))
    return lr * gamma**drops


def _pretrain(problem: "Problem", device: torch.device) -> dict[str, torch.Tensor]:
    recipe = dict(problem.pretrain or {})
    seed = int(recipe.get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = problem.model()
    model.to(device)
    data = as_tensors(problem.train, device)
    opt = _optimizer(model, recipe, problem.name)
    epochs = int(recipe.get("epochs", 30))
    for epoch in range(epochs):
        if "lr_milestones" in recipe:
            for group in opt.param_groups:
                group["lr"] = recipe_lr(recipe, epoch, epochs)
        train_epoch(model, data, opt, batch_size=int(recipe.get("batch_size", 64)), seed=seed, epoch=epoch,
                    augment=problem.augment, samples=problem.epoch_samples)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
