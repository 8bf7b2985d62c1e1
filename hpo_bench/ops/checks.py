"""What ``hpo_bench.ops`` checks at the door, before any backend sees a tensor.

Why a module of its own: the public ops, the sparse formats and the torch reference all need the
same rules (supported dtypes, the sparsity range, a list of tensors on one device, no NaN), and the
backends rely on them having been applied (see ``protocol.Backend``). Keeping them here, below
everything else, lets each of those modules import the rules without importing one another.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["SUPPORTED_DTYPES", "check_no_nan", "check_scores", "check_sparsity", "check_tensors"]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_sparsity(sparsity: float) -> float:
    """``sparsity`` as a float in [0, 1]; ValueError for anything else (NaN included)."""
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1], got {sparsity!r}") from None
    if not (0.0 <= s <= 1.0):  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    return s


def check_tensors(tensors: Sequence[torch.Tensor] | torch.Tensor, *, name: str = "tensor"
                  ) -> list[torch.Tensor]:
    """A non-empty list of contiguous tensors of a supported dtype, all on one device.

    Non-contiguous tensors are refused rather than copied: pruning works in place, and a hidden
    copy would silently prune the copy. ``name`` is how the messages call the tensors."""
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"expected at least one {name}, got an empty list")
    device = tensors[0].device
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} {i} is a {type(t).__name__}, not a torch.Tensor")
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"{name} {i} has dtype {t.dtype}; supported: float32, float16, bfloat16"
            )
        if t.device != device:
            raise ValueError(f"{name} {i} is on {t.device} but {name} 0 is on {device}")
        if not t.is_contiguous():
            raise ValueError(
                f"{name} {i} (shape {tuple(t.shape)}) is not contiguous; pruning works in place, "
                "so pass .contiguous() weights (and copy them back) explicitly"
            )
    return tensors


def check_no_nan(tensors: Sequence[torch.Tensor]) -> None:
    """ValueError naming the first tensor that holds a NaN. (The fast backends find NaN during
    their own pass over the weights; this full scan is for the reference and the few ops that
    never hand the weights to a backend.)"""
    for i, t in enumerate(tensors):
        if t.numel() and bool(torch.isnan(t).any()):
            raise ValueError(f"tensor {i} (shape {tuple(t.shape)}) contains NaN")


def check_scores(scores: Sequence[torch.Tensor]) -> None:
    """ValueError naming the first score tensor that holds a NaN or a negative value (scores are
    compared by value and must be >= 0; -0.0 counts as 0, +inf is allowed). The fast backends find
    both during their own pass; this full scan is for the reference."""
    for i, s in enumerate(scores):
        if not s.numel():
            continue
        if bool(torch.isnan(s).any()):
            raise ValueError(f"scores of tensor {i} (shape {tuple(s.shape)}) contain NaN")
        if bool((s < 0).any()):
            raise ValueError(f"scores of tensor {i} (shape {tuple(s.shape)}) contain a negative "
                             "value (scores must be >= 0)")
