"""The fused mask/apply pass of global magnitude pruning (``prune_``).

Why a separate pass with a tie rule: after the radix select (select.py) we know the threshold key
t, and r = how many of the weights with key == t must still be pruned (exactly k in all). Every
key < t is pruned; of the keys == t only the first r in global position order (tensor order, then
row-major) are. When all keys == t are pruned (r == count, the usual case for real weights) one
pass does it: prune key <= t. Otherwise a count pass stores the number of keys == t per chunk,
an exclusive cumulative sum over chunks gives each chunk its starting rank, and the apply pass
ranks ties inside the chunk with tl.cumsum. The apply pass writes the bool mask of every element
and +0.0 only where a weight is pruned.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common
from ._common import load_keys, make_batch, zero_at
from .select import NUM_WARPS, nan_count, select


@triton.jit
def _count_eq_kernel(tab_ptr, state_ptr, counts_ptr, SRC: tl.constexpr, KEY32: tl.constexpr,
                     ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    """counts[chunk] = number of keys == t (state[0]) in the chunk."""
    row = tl.program_id(0).to(tl.int64)
    base = tl.load(tab_ptr + row * 4)
    n = tl.load(tab_ptr + row * 4 + 1)
    gidx = tl.load(tab_ptr + row * 4 + 3)
    t = tl.load(state_ptr).to(tl.int32)
    ar = tl.arange(0, BLOCK).to(tl.int64)
    total = tl.zeros((), tl.int64)
    for start in range(0, n, BLOCK):
        offs = start + ar
        valid = offs < n
        key = load_keys(base, offs, valid, SRC, KEY32, True, ALIGNED)
        total += tl.sum(((key == t) & valid).to(tl.int64))
    tl.store(counts_ptr + gidx, total)


@triton.jit
def _apply_block(base, mbase, offs, n, t, r, seen, SRC: tl.constexpr, KEY32: tl.constexpr,
                 SPLIT: tl.constexpr, MASKED: tl.constexpr, ALIGNED: tl.constexpr,
                 ZERO: tl.constexpr):
    valid = offs < n
    key = load_keys(base, offs, valid, SRC, KEY32, MASKED, ALIGNED)
    if SPLIT:
        eq = (key == t) & valid
        eqi = eq.to(tl.int64)
        rank = seen + tl.cumsum(eqi, 0) - eqi  # ties before this one, in global order
        prune = (key < t) | (eq & (rank < r))
        seen += tl.sum(eqi)
    else:
        prune = key <= t
    if MASKED:
        prune = prune & valid
    if ZERO:
        zero_at(base, offs, prune, SRC, KEY32)
    m = mbase.to(tl.pointer_type(tl.int8))
    if ALIGNED:  # host checked weight and mask addresses
        m = tl.multiple_of(m, 16)
    if MASKED:
        tl.store(m + offs, (prune == 0).to(tl.int8), mask=valid)
    else:
        tl.store(m + offs, (prune == 0).to(tl.int8))
    return seen


@triton.jit
def _apply_rows(tab_ptr, state_ptr, before_ptr, SRC: tl.constexpr, KEY32: tl.constexpr,
                SPLIT: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr,
                ZERO: tl.constexpr):
    """The body of ``_apply_kernel`` (ZERO) and ``_mask_kernel`` (masks only)."""
    row = tl.program_id(0).to(tl.int64)
    base = tl.load(tab_ptr + row * 4)
    n = tl.load(tab_ptr + row * 4 + 1)
    mbase = tl.load(tab_ptr + row * 4 + 2)
    t = tl.load(state_ptr).to(tl.int32)
    r = tl.load(state_ptr + 1)
    if SPLIT:
        seen = tl.load(before_ptr + tl.load(tab_ptr + row * 4 + 3))
    else:
        seen = tl.zeros((), tl.int64)
    ar = tl.arange(0, BLOCK).to(tl.int64)
    n_full = n - n % BLOCK
    for start in range(0, n_full, BLOCK):
        seen = _apply_block(base, mbase, start + ar, n, t, r, seen, SRC, KEY32, SPLIT, False,
                            ALIGNED, ZERO)
    if n_full < n:
        seen = _apply_block(base, mbase, n_full + ar, n, t, r, seen, SRC, KEY32, SPLIT, True,
                            ALIGNED, ZERO)


@triton.jit
def _apply_kernel(tab_ptr, state_ptr, before_ptr, SRC: tl.constexpr, KEY32: tl.constexpr,
                  SPLIT: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    """Prune key < t, and key == t while the tie's global rank < r (state[1]); write the masks."""
    _apply_rows(tab_ptr, state_ptr, before_ptr, SRC, KEY32, SPLIT, ALIGNED, BLOCK, True)


@triton.jit
def _mask_kernel(tab_ptr, state_ptr, before_ptr, SRC: tl.constexpr, KEY32: tl.constexpr,
                 SPLIT: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    """``_apply_kernel``'s masks without writing the tensors (the score ops select by scores)."""
    _apply_rows(tab_ptr, state_ptr, before_ptr, SRC, KEY32, SPLIT, ALIGNED, BLOCK, False)


def prune_(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Zero the k smallest |w| in place (ties: lowest global position first); bool masks back.
    Works on tensors already on the kernel device (see kernels/__init__.py)."""
    return select_(tensors, k, zero=True)


def select_(tensors: list[torch.Tensor], k: int, zero: bool) -> list[torch.Tensor]:
    """The masks of pruning the k smallest |w| (as ``prune_``); the tensors are zeroed there only
    if ``zero`` (else only read: the score ops select by scores and prune other tensors)."""
    masks = [torch.ones(t.shape, dtype=torch.bool, device=t.device) if k == 0
             else torch.empty(t.shape, dtype=torch.bool, device=t.device) for t in tensors]
    batch = make_batch(tensors, masks, k)
    if not batch.groups:  # only empty tensors
        return masks
    if k == 0:
        if nan_count(batch):
            raise ValueError("the weights contain NaN")
        return masks
    t, r, equal, nans = select(batch, tensors, k)
    if nans:
        raise ValueError(f"the weights contain NaN ({nans} values)")
    split = r < equal
    before = batch.state  # unused placeholder pointer when not split
    if split:
        counts = torch.empty(batch.n_rows, dtype=torch.int64, device=batch.state.device)
        for g in batch.groups:
            _count_eq_kernel[(g.rows,)](g.table, batch.state, counts, SRC=g.spec.src,
                                        KEY32=g.spec.key32, ALIGNED=g.aligned, BLOCK=_common.BLOCK,
                                        num_warps=NUM_WARPS)
        before = torch.cumsum(counts, 0) - counts
    for g in batch.groups:
        kernel = _apply_kernel if zero else _mask_kernel
        kernel[(g.rows,)](g.table, batch.state, before, SRC=g.spec.src, KEY32=g.spec.key32,
                          SPLIT=split, ALIGNED=g.aligned, BLOCK=_common.BLOCK, num_warps=NUM_WARPS)
    return masks
