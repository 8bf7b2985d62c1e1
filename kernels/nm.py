"""N:M pruning (``nm_mask_prune_``): in every group of m consecutive weights along the last dim,
keep the n largest |w|; ties: the lowest positions are pruned first.

Why this shape: a group is tiny (m is 4 or 8 in practice), so a program takes a (BLOCK_G, m)
tile and ranks every element against the m elements of its group (rank = how many come before
it in pruning order: smaller key, or equal key at a lower position); rank < m - n is pruned.
That is O(m^2) integer compares per group and no sort. The mask pass writes the mask and counts
NaN without touching the weights; only if there is no NaN does a second pass zero the pruned
weights (it reads the 1-byte mask, never the weights), so a NaN leaves the tensor unchanged.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import SRC_CODE, cdiv, load_keys, zero_at

NUM_WARPS = 4


@triton.jit
def _nm_mask_kernel(w_ptr, mask_ptr, nan_ptr, groups, M: tl.constexpr, MP: tl.constexpr,
                    PRUNE: tl.constexpr, INF: tl.constexpr, SRC: tl.constexpr,
                    BLOCK_G: tl.constexpr):
    g = tl.program_id(0).to(tl.int64) * BLOCK_G + tl.arange(0, BLOCK_G).to(tl.int64)
    cols = tl.arange(0, MP)
    valid = (g < groups)[:, None] & (cols < M)[None, :]
    offs = g[:, None] * M + cols[None, :]
    base = w_ptr  # load_keys re-types the pointer
    key = load_keys(base, offs, valid, SRC, False, True, False)
    rank = tl.zeros((BLOCK_G, MP), tl.int32)
    for i in tl.range(0, M):
        ki = load_keys(base, g * M + i, g < groups, SRC, False, True, False)[:, None]
        before = (ki < key) | ((ki == key) & (i < cols[None, :]))
        rank += before.to(tl.int32)
    keep = rank >= PRUNE
    tl.store(mask_ptr + offs, keep.to(tl.int8), mask=valid)
    nans = tl.sum(tl.sum(((key > INF) & valid).to(tl.int32), 1), 0)
    tl.atomic_add(nan_ptr, nans, mask=nans > 0)


@triton.jit
def _zero_pruned_kernel(w_ptr, mask_ptr, n, SRC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    valid = offs < n
    keep = tl.load(mask_ptr + offs, mask=valid, other=1)
    zero_at(w_ptr, offs, valid & (keep == 0), SRC, False)


def _block_groups(m: int) -> int:
    # about 4096 tile elements per program (BLOCK_G * next_pow2(m)), at least 16 groups
    return max(16, 4096 // triton.next_power_of_2(m))


def nm_mask_prune_(tensor: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the n largest |w| of every m along the last dim, in place; returns the bool mask."""
    mask = torch.empty(tensor.shape, dtype=torch.bool, device=tensor.device)
    numel = tensor.numel()
    if numel == 0:
        return mask
    groups = numel // m
    from ._common import INF_KEY16, INF_KEY32

    inf = INF_KEY32 if tensor.dtype == torch.float32 else INF_KEY16[tensor.dtype]
    nan = torch.zeros(1, dtype=torch.int32, device=tensor.device)
    bg = _block_groups(m)
    w = tensor.detach()
    _nm_mask_kernel[(cdiv(groups, bg),)](
        w, mask.view(torch.int8), nan, groups, M=m, MP=triton.next_power_of_2(m), PRUNE=m - n,
        INF=inf, SRC=SRC_CODE[tensor.dtype], BLOCK_G=bg, num_warps=NUM_WARPS,
    )
    if int(nan.item()):
        raise ValueError(f"the tensor contains NaN ({int(nan.item())} values)")
    if n < m:
        block = 8192
        _zero_pruned_kernel[(cdiv(numel, block),)](
            w, mask.view(torch.int8), numel, SRC=SRC_CODE[tensor.dtype], BLOCK=block,
            num_warps=NUM_WARPS,
        )
    return mask
