"""``SparseLinear``: an inference-only ``nn.Linear`` whose weight is packed by ``ops.to_sparse``.

Pruning leaves zeros in a dense weight, and a dense product multiplies them anyway; this module
skips them through ``ops.sparse_linear`` (native C++ on CPU, Triton on CUDA, the reference
elsewhere). It holds no trainable parameters: fine-tune the dense model, then convert
(``compression.sparsify`` picks each layer's format by measuring).
"""
from __future__ import annotations

import torch
from torch import nn

from . import ops

__all__ = ["SparseLinear"]


class SparseLinear(nn.Module):
    """``y = x @ W.T + bias`` with ``W`` a ``SparseWeight`` (any format of ``ops.SPARSE_FORMATS``)."""

    def __init__(self, weight: ops.SparseWeight, bias: torch.Tensor | None = None):
        super().__init__()
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
        self.weight = weight
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def from_linear(cls, linear: nn.Linear, format: str = "csr", *, block: int | tuple[int, int] = 16) -> SparseLinear:
        """Pack ``linear``'s (pruned) weight in ``format``; the bias is copied."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        return cls(ops.to_sparse(linear.weight.detach(), format, block=block), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.sparse_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        blk = f", block={self.weight.block}" if self.weight.block else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"format={self.weight.format}{blk}, density={self.weight.density:.3f}")
