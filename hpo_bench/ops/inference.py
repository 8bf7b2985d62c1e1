"""The public sparse product: ``sparse_linear``, validated at the door, then handed to the backend
that supports it (``dispatch.product_backend``), the reference running everything else.

Packing (``to_sparse``) and the formats are in ``formats``; this module only multiplies.
"""
from __future__ import annotations

import torch

from .dispatch import product_backend
from .formats import SparseWeight

__all__ = ["sparse_linear"]


def sparse_linear(x: torch.Tensor, weight: SparseWeight, bias: torch.Tensor | None = None,
                  *, backend: str | None = None) -> torch.Tensor:
    """``x @ W.T + bias`` for x [..., in] with W packed by ``to_sparse``; returns [..., out]."""
    if not isinstance(weight, SparseWeight):
        raise TypeError(f"sparse_linear needs a SparseWeight (from ops.to_sparse), got {type(weight).__name__}")
    rows, cols = weight.shape
    if x.shape[-1] != cols:
        raise ValueError(f"x has {x.shape[-1]} features but the weight expects {cols}")
    if x.dtype != weight.dtype or x.device != weight.device:
        raise ValueError(f"x is {x.dtype} on {x.device}, the weight {weight.dtype} on {weight.device}")
    if bias is not None and tuple(bias.shape) != (rows,):
        raise ValueError(f"bias must have shape ({rows},), got {tuple(bias.shape)}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, cols).contiguous()
    out = product_backend(x2, weight, bias, backend).sparse_linear(x2, weight, bias)
    return out.reshape(*lead, rows)
