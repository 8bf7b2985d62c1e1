"""Sparse linear layers: ``SparseLinear`` to run a pruned model, ``SparseTrainingLinear`` to train one.

``SparseLinear`` is an inference-only ``nn.Linear`` whose weight is packed by ``ops.to_sparse``.

Pruning leaves zeros in a dense weight, and a dense product multiplies them anyway; this module
skips them through ``ops.sparse_linear`` (native C++ on CPU, Triton on CUDA, the reference
elsewhere). It holds no trainable parameters: fine-tune the dense model, then convert
(``compression.sparsify`` picks each layer's format by measuring). ``SparseTrainingLinear`` is the
fine-tuning counterpart: the kept weights are its parameters, so every part of a step skips the
pruned ones (the evaluator picks it per layer where it is measured faster: evaluate/train_path.py).
"""
from __future__ import annotations

import torch
from torch import nn

from . import ops
from .ops.formats import csr_pattern

__all__ = ["SparseLinear", "SparseTrainingLinear"]


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


class _SparseLinearFn(torch.autograd.Function):
    """``y = x @ W.T + b`` with W's kept values as the only weight parameter: the forward and the
    input gradient (``g @ W``, the product with W's transpose) by ``ops.sparse_linear``, the values'
    gradient by ``ops.sddmm`` (only at the kept positions)."""

    @staticmethod
    def forward(ctx, x, values, bias, layer):  # type: ignore[override]
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        ctx.save_for_backward(x2, values)
        ctx.layer, ctx.has_bias = layer, bias is not None
        y = ops.sparse_linear(x2, layer.pattern(values), bias)
        return y.reshape(*lead, y.shape[-1])

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x2, values = ctx.saved_tensors
        layer = ctx.layer
        g2 = g.reshape(-1, g.shape[-1]).contiguous()
        gx = gv = gb = None
        if ctx.needs_input_grad[0]:
            gx = ops.sparse_linear(g2, layer.transposed(values)).reshape(*g.shape[:-1], x2.shape[-1])
        if ctx.needs_input_grad[1]:
            gv = ops.sddmm(g2, x2, layer.pattern(values))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gv, gb, None


class SparseTrainingLinear(nn.Module):
    """A pruned ``nn.Linear`` to *train*: its parameters are the kept weights only (``values``, in
    CSR order of the mask) and the bias, so the forward, both gradients and the optimizer's step all
    cost in proportion to the kept weights, not to the dense matrix. The mask is fixed: a pruned
    weight never comes back, exactly as re-applying the mask after every dense step keeps it zero.

    Mathematically the same training as the dense layer with its mask re-applied (an elementwise
    optimizer such as Adam, with L2 weight decay, moves each kept weight identically); numerically
    equal up to the rounding of other summation orders. CPU float32 runs the native kernels
    (csrc/spmm.cpp, csrc/sddmm.cpp), CUDA the Triton ones (kernels/csr.py, kernels/sddmm_csr.py),
    anything else the torch reference of each op."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        if weight.dim() != 2 or tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"weight {tuple(weight.shape)} and mask {tuple(mask.shape)} must be one 2-D shape")
        rows, cols = weight.shape
        keep = mask.detach().to(device=weight.device, dtype=torch.bool)
        nnz = int(keep.sum())
        if nnz >= 2**31:
            raise ValueError(f"SparseTrainingLinear keeps at most 2^31 - 1 weights (int32 CSR offsets); "
                             f"this mask keeps {nnz}")
        crow, col = csr_pattern(keep)
        # W.T in CSR: the kept positions in column-major order; perm maps them to ``values``.
        crow_t, col_t = csr_pattern(keep.t())
        position = torch.zeros(rows, cols, dtype=torch.int32, device=weight.device)
        position[keep] = torch.arange(nnz, dtype=torch.int32, device=weight.device)
        idx = torch.int16 if max(rows, cols) < 32768 else torch.int32
        self.shape = (rows, cols)
        self.register_buffer("crow", persistent=False, tensor=crow)
        self.register_buffer("col", persistent=False, tensor=col.to(idx))
        self.register_buffer("crow_t", persistent=False, tensor=crow_t)
        self.register_buffer("col_t", persistent=False, tensor=col_t.to(idx))
        self.register_buffer("perm", persistent=False, tensor=position.t()[keep.t()])
        self.values = nn.Parameter(weight.detach()[keep].clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @property
    def in_features(self) -> int:
        return self.shape[1]

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @classmethod
    def from_linear(cls, linear: nn.Linear, mask: torch.Tensor) -> SparseTrainingLinear:
        """``linear`` kept where ``mask`` is True (its weight elsewhere is dropped)."""
        return cls(linear.weight, mask, linear.bias)

    def pattern(self, values: torch.Tensor) -> ops.SparseWeight:
        """W as a CSR ``SparseWeight`` holding ``values``."""
        data = {"crow": self.crow, "col": self.col, "values": values.detach()}
        return ops.SparseWeight("csr", self.shape, data, None, values.dtype, values.device, values.numel())

    def transposed(self, values: torch.Tensor) -> ops.SparseWeight:
        """W.T [in, out] as CSR (the input gradient's operand)."""
        data = {"crow": self.crow_t, "col": self.col_t, "values": values.detach(), "perm": self.perm}
        return ops.SparseWeight("csr", self.shape[::-1], data, None, values.dtype, values.device, values.numel())

    def dense_weight(self) -> torch.Tensor:
        """The [out, in] weight this layer stands for (zeros where pruned)."""
        return self.pattern(self.values).to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SparseLinearFn.apply(x, self.values, self.bias, self)

    def extra_repr(self) -> str:
        n = self.shape[0] * self.shape[1]
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"density={self.values.numel() / max(n, 1):.3f}")
