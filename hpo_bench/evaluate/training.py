"""The training primitives shared by pre-training and fine-tuning: one epoch, and the score.

Determinism: an epoch's data order, and the global random state it runs under (dropout, say, and a
problem's augmentation, which draws from the CPU generator), come from (seed, epoch) alone, so epoch
e is the same whether training started at epoch 0 or resumed at epoch e (invariant 2). The caller's
global random state is restored afterwards.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset, TensorDataset

__all__ = ["DivergedError", "as_tensors", "epoch_seed", "evaluate_accuracy", "evaluate_loss", "evaluate_metric",
           "train_epoch"]


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def as_tensors(ds: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as two tensors on ``device`` (the problems here fit in memory)."""
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors[0], ds.tensors[1]
    else:
        items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
        x = torch.stack([torch.as_tensor(a) for a, _ in items])
        y = torch.as_tensor([int(b) for _, b in items])
    return x.to(device), y.to(device)


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2**63 - 1)


def train_epoch(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    masks: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    samples: int | None = None,
) -> float:
    """One epoch of cross-entropy training; returns the mean loss. ``masks`` are (weight, mask)
    pairs re-applied after every step so pruned weights stay zero. ``augment`` (a problem's
    ``augment``) transforms each batch's inputs, drawing from the global state seeded here.
    ``samples`` (a problem's ``epoch_samples``): train on that many samples of ``data``, the first
    of this epoch's permutation (None: all of them)."""
    x, y = data
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(epoch_seed(seed, epoch))
        return _train_epoch(model, x, y, optimizer, batch_size, epoch, masks, augment, samples)


def _train_epoch(model, x, y, optimizer, batch_size, epoch, masks, augment=None, samples=None) -> float:
    order = torch.randperm(len(x))[:samples].to(x.device)
    model.train()
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        inputs = x[idx] if augment is None else augment(x[idx])
        loss = torch.nn.functional.cross_entropy(model(inputs), y[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(f"loss became {value} at epoch {epoch + 1}, step {start // batch_size}")
        loss.backward()
        optimizer.step()
        if masks:
            with torch.no_grad():
                for w, m in masks:
                    w.mul_(m)
        total += value * len(idx)
        count += len(idx)
    return total / max(count, 1)


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int = 1024) -> float:
    x, y = data
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        correct += int((out.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int = 256) -> float:
    """Mean cross-entropy over every target (every next byte of every window, for a language
    model whose logits are laid out (batch, vocab, time))."""
    x, y = data
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        total += float(torch.nn.functional.cross_entropy(out.float(), y[start : start + batch_size], reduction="sum"))
    return total / max(y.numel(), 1)


def evaluate_metric(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], task: str) -> float:
    """A problem's score (``problems.TASKS``): accuracy for classification, loss for a language model."""
    return evaluate_loss(model, data) if task == "language_model" else evaluate_accuracy(model, data)
