"""The native (C++17 + OpenMP) backend of ``hpo_bench.ops``: the backend protocol on top of the
extension ``hpo_bench._native`` (csrc/). Importing this module raises ImportError when the extension
is not built, which ``ops`` reports as "native backend unavailable".

Tensors reach C++ as raw addresses, so nothing is copied: inputs arrive validated by ``ops``
(contiguous, CPU, supported dtype). Masks are allocated here, as torch.bool, and filled in C++.
The thread count follows ``torch.get_num_threads()``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import _native

if not all(hasattr(_native, f) for f in ("kth_magnitude", "prune", "nm_prune")):
    # A stale build (e.g. the placeholder extension) imports but binds nothing useful.
    raise ImportError("hpo_bench._native is out of date; rebuild it: pip install -e .")
# A build from before csrc/spmm.cpp still prunes; its sparse products fall to the reference.
_native_sparse = all(hasattr(_native, f) for f in ("spmm_csr", "spmm_bsr", "spmm_bitmask"))

__all__ = ["SPARSE_FORMATS", "kth_magnitude", "nm_mask_prune_", "prune_", "sparse_linear"]

#: Formats ``ops.sparse_linear`` hands to this backend (float32 runs in C++; other dtypes go to the
#: reference, as there is no fast half-precision path on a CPU without native fp16 arithmetic).
SPARSE_FORMATS = ("csr", "bsr", "bitmask")

_DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def _buffers(tensors: Sequence[torch.Tensor]) -> tuple[list[int], list[int], list[int]]:
    return (
        [t.data_ptr() for t in tensors],
        [t.numel() for t in tensors],
        [_DTYPE_CODE[t.dtype] for t in tensors],
    )


def _modified(tensors: Sequence[torch.Tensor]) -> None:
    # The weights were written behind autograd's back: bump their version counters so a graph that
    # saved one of them fails loudly instead of computing a wrong gradient.
    for t in tensors:
        torch.autograd.graph.increment_version(t)


def kth_magnitude(tensors: Sequence[torch.Tensor], k: int) -> float:
    ptrs, sizes, dtypes = _buffers(tensors)
    return _native.kth_magnitude(ptrs, sizes, dtypes, int(k), torch.get_num_threads())


def prune_(tensors: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    ptrs, sizes, dtypes = _buffers(tensors)
    masks = [torch.empty(t.shape, dtype=torch.bool, device=t.device) for t in tensors]
    mask_ptrs = [m.data_ptr() for m in masks]
    _native.prune(ptrs, sizes, dtypes, mask_ptrs, int(k), torch.get_num_threads())
    _modified(tensors)
    return masks


def nm_mask_prune_(tensor: torch.Tensor, n: int, m: int) -> torch.Tensor:
    mask = torch.empty(tensor.shape, dtype=torch.bool, device=tensor.device)
    _native.nm_prune(
        tensor.data_ptr(), tensor.numel(), _DTYPE_CODE[tensor.dtype], mask.data_ptr(),
        int(n), int(m), torch.get_num_threads(),
    )
    _modified([tensor])
    return mask


def sparse_linear(x2: torch.Tensor, sw, bias: torch.Tensor | None) -> torch.Tensor:
    """``x2 @ W.T + bias`` for a contiguous 2-D float32 CPU ``x2`` (csrc/spmm.cpp)."""
    if x2.dtype != torch.float32 or x2.device.type != "cpu" or not _native_sparse or (
            bias is not None and bias.dtype != torch.float32):
        from ..ops import ref_sparse_linear

        return ref_sparse_linear(x2, sw, bias)
    rows, cols = sw.shape
    d = sw.data
    y = torch.empty(x2.shape[0], rows, dtype=x2.dtype)
    b = bias.contiguous() if bias is not None else None
    dense = (x2.data_ptr(), x2.shape[0], b.data_ptr() if b is not None else 0, y.data_ptr(),
             torch.get_num_threads())
    if sw.format == "csr":
        _native.spmm_csr(d["crow"].data_ptr(), d["col"].data_ptr(), d["col"].element_size(),
                         d["values"].data_ptr(), rows, cols, *dense)
    elif sw.format == "bsr":
        bh, bw = sw.block
        _native.spmm_bsr(d["crow"].data_ptr(), d["col"].data_ptr(), d["values"].data_ptr(), bh, bw,
                         rows, cols, *dense)
    else:
        _native.spmm_bitmask(d["bits"].data_ptr(), d["crow"].data_ptr(), d["values"].data_ptr(),
                             rows, cols, *dense)
    return y
