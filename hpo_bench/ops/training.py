"""The product that sparse *training* adds to inference's: ``sddmm``, the weight gradient of a
pruned linear layer at its kept positions only.

For ``y = x @ W.T`` with W pruned, the loss's gradient with respect to W is ``g.T @ x`` (g = dL/dy),
but only the kept entries are ever used: the pruned ones stay zero. A sampled dense-dense product
computes just those, at ``density`` times the work of the dense product. Together with
``sparse_linear`` (the forward, and the input gradient ``g @ W`` as the product with W's transpose)
it is the whole of a sparse layer's step (``hpo_bench.nn.SparseTrainingLinear``).
"""
from __future__ import annotations

import torch

from . import reference
from .dispatch import module_for
from .formats import SparseWeight

__all__ = ["sddmm"]


def sddmm(g: torch.Tensor, x: torch.Tensor, pattern: SparseWeight, *, backend: str | None = None) -> torch.Tensor:
    """``out[k] = sum_b g[b, r_k] * x[b, c_k]`` for every kept position k = (r_k, c_k) of the CSR
    ``pattern`` [out, in], in its order: ``(g.T @ x)`` sampled where ``pattern`` keeps a weight.
    ``g`` is [..., out], ``x`` [..., in] with the same leading dimensions; returns [nnz]. The
    pattern's values are not read."""
    if not isinstance(pattern, SparseWeight) or pattern.format != "csr":
        raise TypeError(f"sddmm needs a CSR SparseWeight (ops.to_sparse(w, 'csr')), got {pattern!r}")
    rows, cols = pattern.shape
    if g.shape[-1] != rows or x.shape[-1] != cols or g.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"sddmm: g {tuple(g.shape)} and x {tuple(x.shape)} do not fit a weight of shape {(rows, cols)}")
    if g.dtype != x.dtype or g.device != x.device or x.device != pattern.device:
        raise ValueError(f"sddmm: g is {g.dtype} on {g.device}, x {x.dtype} on {x.device}, the pattern on {pattern.device}")
    g2 = g.reshape(-1, rows).contiguous()
    x2 = x.reshape(-1, cols).contiguous()
    module = module_for(x2.device, backend)
    supports = getattr(module, "supports_sddmm", None)
    if supports is not None and supports(g2, x2, pattern):
        return module.sddmm(g2, x2, pattern)
    return reference.sddmm(g2, x2, pattern)
