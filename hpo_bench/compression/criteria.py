"""Pruning criteria: how much each weight matters, as a non-negative score per weight.

The ``criterion`` config value names one (default ``magnitude``):

* ``magnitude``  ``|W_ij|`` (today's behaviour; pruning.py then runs the ``ops`` kernels unchanged).
* ``wanda``      ``|W_ij| * ||X_j||_2`` (Sun et al. 2023, "A Simple and Effective Pruning Approach for
  Large Language Models", Eq. 1), ``X_j`` the j-th input feature of the layer's input activations
  over all calibration samples (and, for a Linear on a sequence, every position). For a convolution
  the norm is taken per input channel (over samples and spatial positions) and repeated over the
  kernel window (``W[o, c, :, :]`` all get channel c's norm; grouped convolutions use their group's
  channels). Wanda compares weights *within each output row*: pruning.py prunes the k smallest of
  every row (see ``select_per_row``).
* ``taylor``     first-order Taylor importance (Molchanov et al. 2019, "Importance Estimation for
  Neural Network Pruning"), here ``sum_b |W * dL_b/dW|``: the absolute value of weight times
  gradient of the mean loss of calibration batch b, summed over the batches (each batch's estimate
  taken in absolute value, then accumulated, as the paper accumulates per-minibatch importances).
  Weights are compared by the allocation's rule (one global threshold, or per layer).

Calibration (``calibration_batches``): ``CALIBRATION_SAMPLES`` = 128 samples (Wanda's number) of
the training split, drawn without replacement by a generator seeded from the evaluation seed
(``calibration_seed``), in batches of ``CALIBRATION_BATCH`` = 32. So the batches, and with them
every score, are a pure function of (problem, evaluation seed) (ARCHITECTURE.md invariant 1). The
statistics come from one pass over the *dense* model in eval mode, with forward hooks on the
prunable layers (Wanda's LLM code instead feeds each transformer block the outputs of the already
pruned blocks before it; a global or OWL allocation compares all layers at once, so every layer is
scored on the dense model here). Scoring changes neither the model's weights, its gradients
(``torch.autograd.grad``, no ``.grad`` is written), its train/eval mode nor the global random state.

All selection by score is plain torch with the ``ops`` tie rule: ascending (score, position), the
lowest positions pruned first among equal scores (a stable sort); zero weights score 0 and go first.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn.modules.conv import _ConvNd

__all__ = ["CALIBRATION_BATCH", "CALIBRATION_SAMPLES", "CRITERIA", "Batches", "calibration_batches",
           "calibration_seed", "default_loss", "magnitude_scores", "select_blocks", "select_global",
           "select_nm", "select_per_row", "select_smallest", "taylor_scores", "wanda_scores"]

CRITERIA = ("magnitude", "wanda", "taylor")
#: Calibration samples drawn from the training split (Wanda and SparseGPT use 128 sequences).
CALIBRATION_SAMPLES = 128
#: Samples per calibration batch (one forward pass, and for ``taylor`` one gradient, each).
CALIBRATION_BATCH = 32

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def calibration_seed(seed: int) -> int:
    """The calibration generator's seed for evaluation seed ``seed`` (apart from the epochs' seeds)."""
    return (int(seed) * 2_654_435_761 + 0x5EED) % (2**63 - 1)


def calibration_batches(data: tuple[torch.Tensor, torch.Tensor], seed: int, samples: int = CALIBRATION_SAMPLES,
                        batch_size: int = CALIBRATION_BATCH) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``samples`` (all, if fewer) training examples of ``data`` = (inputs, targets), drawn without
    replacement by ``calibration_seed(seed)``, in batches of ``batch_size``, on ``data``'s device."""
    x, y = data
    if int(samples) < 1:
        raise ValueError(f"calibration needs at least one sample, got {samples!r}")
    gen = torch.Generator().manual_seed(calibration_seed(seed))
    idx = torch.randperm(len(x), generator=gen)[: int(samples)].to(x.device)
    return [(x[idx[i: i + batch_size]], y[idx[i: i + batch_size]]) for i in range(0, len(idx), batch_size)]


def default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy, as the fine-tune trains (evaluate/training.py): logits (batch, classes),
    or (batch, classes, positions...) against targets (batch, positions...), torch's layout."""
    return torch.nn.functional.cross_entropy(output.float(), target)


def _check(scores: list[torch.Tensor], criterion: str) -> list[torch.Tensor]:
    for s in scores:
        if bool(torch.isnan(s).any()):
            raise ValueError(f"{criterion} scores contain NaN (the calibration activations or gradients "
                             "are not finite)")
    return scores


def magnitude_scores(modules: Sequence[torch.nn.Module]) -> list[torch.Tensor]:
    return _check([m.weight.detach().abs().float() for m in modules], "magnitude")


class _Mode:
    """Eval mode for the calibration passes, the module's own mode restored afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        for m, training in self.modes:
            m.training = training


def _input_sq_sums(model: torch.nn.Module, modules: Sequence[torch.nn.Module], batches: Batches) -> list[torch.Tensor]:
    """Per prunable module, the sum of squares of each input feature (Linear: the last dimension;
    convolution: the channel dimension) over every calibration sample and position."""
    sums: list[torch.Tensor | None] = [None] * len(modules)

    def hook(i: int, module: torch.nn.Module) -> Callable:
        def fn(_mod: torch.nn.Module, inputs: tuple, _out: object) -> None:
            x = inputs[0].detach().float()
            if isinstance(module, _ConvNd):
                sq = x.pow(2).transpose(0, 1).reshape(x.shape[1], -1).sum(1)
            else:
                sq = x.pow(2).reshape(-1, x.shape[-1]).sum(0)
            sums[i] = sq if sums[i] is None else sums[i] + sq
        return fn

    handles = [m.register_forward_hook(hook(i, m)) for i, m in enumerate(modules)]
    try:
        with _Mode(model), torch.no_grad():
            for x, _ in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [i for i, s in enumerate(sums) if s is None]
    if missing:
        raise ValueError(f"wanda: prunable layer(s) {missing} saw no input in the calibration pass")
    return [s for s in sums if s is not None]


def wanda_scores(model: torch.nn.Module, modules: Sequence[torch.nn.Module], batches: Batches) -> list[torch.Tensor]:
    """``|W| * ||X_j||_2`` per weight (see the module docstring), float32, the weights' shapes."""
    out = []
    for module, sq in zip(modules, _input_sq_sums(model, modules, batches)):
        w = module.weight.detach()
        norm = sq.sqrt()
        if isinstance(module, _ConvNd):
            groups = int(module.groups)
            per_group = w.shape[1]  # input channels each output channel sees
            out_per_group = w.shape[0] // groups
            g = torch.arange(w.shape[0], device=w.device) // out_per_group
            chan = g[:, None] * per_group + torch.arange(per_group, device=w.device)[None, :]
            feat = norm[chan].reshape(w.shape[0], per_group, *([1] * (w.dim() - 2)))
        else:
            if w.dim() != 2 or w.shape[1] != norm.numel():
                raise ValueError(f"wanda: layer {type(module).__name__} with weight {tuple(w.shape)} takes "
                                 f"{norm.numel()} input features; only Linear-like (out, in) and ConvNd "
                                 "weights are scored")
            feat = norm[None, :]
        out.append(w.abs().float() * feat)
    return _check(out, "wanda")


def taylor_scores(model: torch.nn.Module, modules: Sequence[torch.nn.Module], batches: Batches,
                  loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
    """``sum_b |W * dL_b/dW|`` per weight (see the module docstring), float32."""
    loss = loss or default_loss
    params = [m.weight for m in modules]
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    with _Mode(model), torch.enable_grad():
        for x, y in batches:
            grads = torch.autograd.grad(loss(model(x), y), params, allow_unused=True)
            for a, p, g in zip(acc, params, grads):
                if g is not None:
                    a.add_((p.detach().float() * g.float()).abs())
    return _check(acc, "taylor")


# ---------------------------------------------------------------------------------------- selection
def _prune_mask_from_order(order: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """Row-wise: True (kept) except at the first ``k`` (per row, or for all rows) indices of ``order``."""
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    k = torch.as_tensor(k, device=order.device)
    return ranks >= (k[:, None] if k.dim() else k)


def select_smallest(score: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask of ``score``'s shape pruning its ``k`` smallest scores (ties: lowest position first)."""
    flat = score.reshape(1, -1)
    order = torch.sort(flat, dim=1, stable=True).indices
    return _prune_mask_from_order(order, int(k)).reshape(score.shape)


def select_global(scores: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Keep-masks pruning the ``k`` smallest scores over all tensors (taken in order, row-major)."""
    masks = select_smallest(torch.cat([s.reshape(-1) for s in scores]), k)
    out, start = [], 0
    for s in scores:
        out.append(masks[start: start + s.numel()].reshape(s.shape))
        start += s.numel()
    return out


def select_per_row(score: torch.Tensor, k: int) -> torch.Tensor:
    """Wanda's comparison group: prune ``k`` weights of ``score`` (rows = output units, the rest of
    the dimensions flattened), the smallest of each row. ``k`` is spread as evenly as the rows allow:
    every row prunes ``k // rows``, and the first ``k % rows`` rows (lowest index) one more."""
    rows = score.shape[0]
    flat = score.reshape(rows, -1)
    q, r = divmod(int(k), rows)
    per_row = torch.full((rows,), q, dtype=torch.long, device=score.device)
    per_row[:r] += 1
    order = torch.sort(flat, dim=1, stable=True).indices
    return _prune_mask_from_order(order, per_row).reshape(score.shape)


def select_nm(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M by score: in every group of ``m`` consecutive scores along the flattened fan-in, keep the
    ``n`` largest (ties: the lowest positions pruned first, as ``ops.nm_prune_``)."""
    groups = score.reshape(-1, m)
    order = torch.sort(groups, dim=1, stable=True).indices
    return _prune_mask_from_order(order, m - n).reshape(score.shape)


def select_blocks(scores: Sequence[torch.Tensor], sparsity: float, block: tuple[int, int]) -> list[torch.Tensor]:
    """Block pruning by score: each score tensor viewed as 2-D (dims after the first flattened), cut
    into ``block`` tiles (edge tiles smaller); the ``round(sparsity * tiles)`` tiles of smallest summed
    score over all tensors are pruned (``ops.block_prune_`` with the score in place of ``|w|``)."""
    bh, bw = block
    tiles = []
    for s in scores:
        w = s.reshape(s.shape[0], -1).float()
        w = torch.nn.functional.pad(w, (0, -w.shape[1] % bw, 0, -w.shape[0] % bh))
        tiles.append(w.reshape(w.shape[0] // bh, bh, w.shape[1] // bw, bw).sum(dim=(1, 3)))
    k = int(round(float(sparsity) * sum(t.numel() for t in tiles)))
    out = []
    for s, tm in zip(scores, select_global(tiles, k)):
        full = tm.repeat_interleave(bh, 0).repeat_interleave(bw, 1)
        rows = s.shape[0]
        out.append(full[:rows, : s.numel() // rows].reshape(s.shape).contiguous())
    return out
