"""The dense model every configuration of a problem starts from: given, or trained once.

One function, ``dense_state``, answers for every evaluator: the problem's own ``pretrained_state``
if it has one; else the weights trained by its ``pretrain`` recipe (on CPU, on one thread: the
same bits in every process, whatever its torch thread count), kept in memory for the process, or, when a ``CheckpointStore`` is given, in the store as a blob like any
other (checksummed on every read, shared between processes). Without a store (``--no-cache``)
nothing is written.
"""
from __future__ import annotations

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
    as any other, and every evaluation stays a function of (problem, config, evaluation seed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain(problem)
    finally:
        torch.set_num_threads(threads)


def _pretrain(problem: "Problem") -> dict[str, torch.Tensor]:
    recipe = dict(problem.pretrain or {})
    seed = int(recipe.get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = problem.model()
    data = as_tensors(problem.train, torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=float(recipe.get("lr", 1e-3)))
    for epoch in range(int(recipe.get("epochs", 30))):
        train_epoch(model, data, opt, batch_size=int(recipe.get("batch_size", 64)), seed=seed, epoch=epoch)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
