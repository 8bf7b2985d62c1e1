"""The native (C++17 + OpenMP) backend: ``protocol.Backend`` on top of the extension
``hpo_bench._native`` (csrc/). Importing this module raises ImportError when the extension is not
built, which ``dispatch`` reports as the reason the native backend is unavailable.

Tensors reach C++ as raw addresses, so nothing is copied: inputs arrive validated by ``ops``
(contiguous, CPU, supported dtype). Masks are allocated here, as torch.bool, and filled in C++.
The thread count follows ``torch.get_num_threads()``.
"""
from __future__ import annotations

import torch

from .. import _native
from .formats import SparseWeight

if not all(hasattr(_native, f) for f in ("kth_magnitude", "prune", "nm_prune", "score_prune",
                                         "score_kth")):
    # A stale build (e.g. the placeholder extension) imports but binds nothing useful.
    raise ImportError("hpo_bench._native is out of date; rebuild it: pip install -e .")
# A build from before csrc/spmm.cpp still prunes; ``supports`` then declines every sparse product.
_native_sparse = all(hasattr(_native, f) for f in ("spmm_csr", "spmm_bsr", "spmm_bitmask"))
_native_sddmm = hasattr(_native, "sddmm_csr")

__all__ = ["SPARSE_FORMATS", "kth_magnitude", "nm_mask_prune_", "prune_", "score_kth",
           "score_prune_", "sparse_linear", "supports"]

#: Formats of csrc/spmm.cpp. It runs float32 only: half-precision products go to the reference, as
#: there is no fast half-precision path on a CPU without native fp16 arithmetic.
SPARSE_FORMATS: tuple[str, ...] = ("csr", "bsr", "bitmask")

_DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
_GROUP_CODE = {"global": 0, "tensor": 1, "row": 2}

#: Whether the row kernels of csrc/score.cpp may use AVX-512 where the CPU has it. Tests set it to
#: False to run the portable kernels as well; both give the same results bit for bit.
SIMD = True


def _buffers(tensors: list[torch.Tensor]) -> tuple[list[int], list[int], list[int]]:
    return (
        [t.data_ptr() for t in tensors],
        [t.numel() for t in tensors],
        [_DTYPE_CODE[t.dtype] for t in tensors],
    )


def _modified(tensors: list[torch.Tensor]) -> None:
    # The weights were written behind autograd's back: bump their version counters so a graph that
    # saved one of them fails loudly instead of computing a wrong gradient.
    for t in tensors:
        torch.autograd.graph.increment_version(t)


def kth_magnitude(tensors: list[torch.Tensor], k: int) -> float:
    ptrs, sizes, dtypes = _buffers(tensors)
    return _native.kth_magnitude(ptrs, sizes, dtypes, int(k), torch.get_num_threads())


def prune_(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
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


def _score_lists(scores: list[torch.Tensor], group: str):
    rows = [s.shape[0] if group == "row" else 1 for s in scores]
    return ([s.data_ptr() for s in scores], [s.numel() for s in scores],
            [_DTYPE_CODE[s.dtype] for s in scores], rows)


def score_prune_(weights: list[torch.Tensor], scores: list[torch.Tensor], group: str,
                 ks: list[int]) -> list[torch.Tensor]:
    sptrs, sizes, sdtypes, rows = _score_lists(scores, group)
    masks = [torch.empty(w.shape, dtype=torch.bool, device=w.device) for w in weights]
    _native.score_prune(
        [w.data_ptr() for w in weights], sptrs, sizes, [_DTYPE_CODE[w.dtype] for w in weights],
        sdtypes, [m.data_ptr() for m in masks], rows, _GROUP_CODE[group], [int(k) for k in ks],
        torch.get_num_threads(), SIMD,
    )
    _modified(weights)
    return masks


def score_kth(scores: list[torch.Tensor], group: str, ks: list[int]) -> list[torch.Tensor]:
    sptrs, sizes, sdtypes, rows = _score_lists(scores, group)
    outs = [torch.empty((r,) if group == "row" else (), dtype=torch.float32) for r in rows]
    _native.score_kth(sptrs, sizes, sdtypes, [o.data_ptr() for o in outs], rows, _GROUP_CODE[group],
                      [int(k) for k in ks], torch.get_num_threads(), SIMD)
    return outs


def supports(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> bool:
    """float32 CPU products in ``SPARSE_FORMATS``, if the build has csrc/spmm.cpp."""
    return (_native_sparse and sw.format in SPARSE_FORMATS and x2.dtype == torch.float32
            and x2.device.type == "cpu" and (bias is None or bias.dtype == torch.float32))


def sparse_linear(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """``x2 @ W.T + bias`` for a contiguous 2-D float32 CPU ``x2`` (csrc/spmm.cpp)."""
    rows, cols = sw.shape
    d = sw.data
    y = torch.empty(x2.shape[0], rows, dtype=x2.dtype)
    b = bias.contiguous() if bias is not None else None
    dense = (x2.data_ptr(), x2.shape[0], b.data_ptr() if b is not None else 0, y.data_ptr(),
             torch.get_num_threads())
    if sw.format == "csr":
        perm = d.get("perm")
        _native.spmm_csr(d["crow"].data_ptr(), d["col"].data_ptr(), d["col"].element_size(),
                         d["values"].data_ptr(), rows, cols, *dense, 0 if perm is None else perm.data_ptr())
    elif sw.format == "bsr":
        bh, bw = sw.block  # type: ignore[misc]
        _native.spmm_bsr(d["crow"].data_ptr(), d["col"].data_ptr(), d["values"].data_ptr(), bh, bw,
                         rows, cols, *dense)
    else:
        _native.spmm_bitmask(d["bits"].data_ptr(), d["crow"].data_ptr(), d["values"].data_ptr(),
                             rows, cols, *dense)
    return y


def supports_sddmm(g2: torch.Tensor, x2: torch.Tensor, pattern: SparseWeight) -> bool:
    """float32 CPU weight gradients of CSR patterns, if the build has csrc/sddmm.cpp."""
    return (_native_sddmm and pattern.format == "csr" and g2.dtype == torch.float32 and x2.dtype == torch.float32
            and x2.device.type == "cpu")


def sddmm(g2: torch.Tensor, x2: torch.Tensor, pattern: SparseWeight) -> torch.Tensor:
    """``(g2.T @ x2)`` at the kept positions of a CSR ``pattern`` (csrc/sddmm.cpp)."""
    rows, cols = pattern.shape
    d = pattern.data
    out = torch.empty(pattern.nnz, dtype=torch.float32)
    _native.sddmm_csr(d["crow"].data_ptr(), d["col"].data_ptr(), d["col"].element_size(), rows, cols,
                      g2.data_ptr(), x2.data_ptr(), g2.shape[0], out.data_ptr(), torch.get_num_threads())
    return out
