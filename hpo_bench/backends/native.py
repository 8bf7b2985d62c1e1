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

__all__ = ["kth_magnitude", "nm_mask_prune_", "prune_"]

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
