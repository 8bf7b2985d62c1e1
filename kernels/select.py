"""Radix select of the k-th smallest |w| over a list of tensors (``kth_magnitude``).

Why a radix select: the k-th magnitude is found from histograms of key digits, most significant
digit first (fp32: 31 key bits in 3 passes of 11/10/10 bits, or 4 of 8 bits on Triton < 3.7 whose
tl.histogram costs grow with the bin count; 16-bit types: 2 passes of 8/7 bits). Each pass reads
the weights once and counts only those whose higher digits equal the prefix chosen so far. A
one-program pick kernel then finds the bin holding the k-th key with a cumulative sum, on the
device, so the passes run back to back with no host sync; the host reads the 4-number state once
at the end. Pass 0 also counts NaN keys, so NaN detection costs no extra read.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common
from ._common import Batch, load_keys, radix_plan

NUM_WARPS = 8


@triton.jit
def _hist_block(base, offs, n, prefix, acc, skipped, nans, SRC: tl.constexpr, KEY32: tl.constexpr,
                INF: tl.constexpr, SHIFT: tl.constexpr, BITS: tl.constexpr, MASKED: tl.constexpr,
                ALIGNED: tl.constexpr):
    valid = offs < n
    key = load_keys(base, offs, valid, SRC, KEY32, MASKED, ALIGNED)
    isnan = key > INF
    take = (key >> (SHIFT + BITS)) == prefix
    take = take & (isnan == 0)
    if MASKED:
        take = take & valid
        nans += tl.sum((isnan & valid).to(tl.int32))
    else:
        nans += tl.sum(isnan.to(tl.int32))
    # Untaken elements are sent to bin 0 and subtracted at the end: no reliance on the `mask`
    # argument or on out-of-range behaviour of tl.histogram, which differ across Triton versions.
    digit = tl.where(take, (key >> SHIFT) & ((1 << BITS) - 1), 0)
    acc += tl.histogram(digit, 1 << BITS)
    skipped += offs.shape[0] - tl.sum(take.to(tl.int32))
    return acc, skipped, nans


@triton.jit
def _hist_kernel(tab_ptr, state_ptr, hist_ptr, SRC: tl.constexpr, KEY32: tl.constexpr,
                 INF: tl.constexpr, SHIFT: tl.constexpr, BITS: tl.constexpr,
                 COUNT_NAN: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    """One program per table row: histogram of the digit ``(key >> SHIFT) & (2**BITS - 1)`` over
    the row's keys whose higher bits equal the prefix in ``state[0]``; NaN keys go to state[3]."""
    row = tl.program_id(0).to(tl.int64)
    base = tl.load(tab_ptr + row * 4)
    n = tl.load(tab_ptr + row * 4 + 1)
    prefix = tl.load(state_ptr).to(tl.int32)
    acc = tl.zeros((1 << BITS,), tl.int32)
    skipped = tl.zeros((), tl.int32)
    nans = tl.zeros((), tl.int32)
    ar = tl.arange(0, BLOCK).to(tl.int64)
    n_full = n - n % BLOCK
    for start in range(0, n_full, BLOCK):  # full blocks: unmasked, vectorizable loads
        acc, skipped, nans = _hist_block(base, start + ar, n, prefix, acc, skipped, nans, SRC,
                                         KEY32, INF, SHIFT, BITS, False, ALIGNED)
    if n_full < n:
        acc, skipped, nans = _hist_block(base, n_full + ar, n, prefix, acc, skipped, nans, SRC,
                                         KEY32, INF, SHIFT, BITS, True, ALIGNED)
    bins = tl.arange(0, 1 << BITS)
    acc = acc - tl.where(bins == 0, skipped, 0)
    tl.atomic_add(hist_ptr + bins, acc.to(tl.int64), mask=acc != 0)
    if COUNT_NAN:
        tl.atomic_add(state_ptr + 3, nans.to(tl.int64), mask=nans > 0)


@triton.jit
def _pick_kernel(hist_ptr, state_ptr, BITS: tl.constexpr):
    """Choose the bin that holds the k-th key: state <- (prefix.bin, k - below, count in bin)."""
    bins = tl.arange(0, 1 << BITS)
    h = tl.load(hist_ptr + bins)
    prefix = tl.load(state_ptr)
    krem = tl.load(state_ptr + 1)
    cum = tl.cumsum(h, 0)
    b = tl.minimum(tl.sum((cum < krem).to(tl.int64)), (1 << BITS) - 1)
    below = tl.sum(tl.where(bins < b, h, 0))
    count = tl.sum(tl.where(bins == b, h, 0))
    tl.store(state_ptr, (prefix << BITS) | b)
    tl.store(state_ptr + 1, krem - below)
    tl.store(state_ptr + 2, count)


def launch_hist(batch: Batch, hist: torch.Tensor, shift: int, bits: int, count_nan: bool) -> None:
    for g in batch.groups:
        _hist_kernel[(g.rows,)](
            g.table, batch.state, hist, SRC=g.spec.src, KEY32=g.spec.key32, INF=g.spec.inf_key,
            SHIFT=shift, BITS=bits, COUNT_NAN=count_nan, ALIGNED=g.aligned, BLOCK=_common.BLOCK,
            num_warps=NUM_WARPS,
        )


def radix_select(batch: Batch) -> list[int]:
    """Run every pass; returns the state ``[key of the k-th |w|, r, keys equal to it, NaNs]``
    where r = how many of the keys equal to it are among the k smallest. One host sync."""
    spec = batch.groups[0].spec
    plan = radix_plan(spec.key_bits)
    hists = torch.zeros(sum(1 << b for _, b in plan), dtype=torch.int64, device=batch.state.device)
    off = 0
    for i, (shift, bits) in enumerate(plan):
        hist = hists[off : off + (1 << bits)]
        off += 1 << bits
        launch_hist(batch, hist, shift, bits, count_nan=(i == 0))
        _pick_kernel[(1,)](hist, batch.state, BITS=bits, num_warps=4)
    return batch.state.tolist()


def nan_count(batch: Batch) -> int:
    """NaN keys in the batch (one histogram pass); for k == 0, where nothing is selected."""
    spec = batch.groups[0].spec
    shift, bits = radix_plan(spec.key_bits)[0]
    hist = torch.zeros(1 << bits, dtype=torch.int64, device=batch.state.device)
    launch_hist(batch, hist, shift, bits, count_nan=True)
    return int(batch.state[3])


def kth_magnitude(tensors: list[torch.Tensor], k: int) -> float:
    """The k-th smallest |w| over all tensors (1 <= k <= N), as a Python float."""
    from ._common import key_to_float, make_batch

    batch = make_batch(tensors, None, k)
    key, _, _, nans = radix_select(batch)
    if nans:
        raise ValueError(f"the weights contain NaN ({nans} values)")
    return key_to_float(key, batch.groups[0].spec, tensors[0].dtype)
