"""Radix select of the k-th smallest |w| over a list of tensors (``kth_magnitude``).

Why a radix select: the k-th magnitude is found from histograms of key digits, most significant
digit first (fp32: 31 key bits in 3 passes of 11/10/10 bits, or 4 of 8 bits on Triton < 3.7 whose
tl.histogram costs grow with the bin count; 16-bit types: 2 passes of 8/7 bits). Each pass reads
the weights once and counts only those whose higher digits equal the prefix chosen so far. A
one-program pick kernel then finds the bin holding the k-th key with a cumulative sum, on the
device, so the passes run back to back with no host sync; the host reads the 4-number state once
at the end. Pass 0 also counts NaN keys, so NaN detection costs no extra read.

Sampled bracket (``kth_magnitude``, every dtype; the CPU design of csrc/magnitude.cpp): the radix
select reads every weight 3-4 times (2 for 16-bit types); the bracket reads it once.
  sample   SAMPLE_RUN (8) consecutive keys at each of up to SAMPLE_PLACES (4096) evenly spaced
           places over the virtual concatenation of the tensors (a run of 8 fp32 is one 32-byte
           sector), deterministic; the host computes the addresses, one kernel gathers the keys,
           torch.sort orders the sample (s <= 32768 keys) on the device;
  bracket  the sample's order statistics SIGMAS (4.5) standard deviations of the rank estimate
           either side of rank k's place give lo <= hi (the places in the sorted sample, a and b,
           depend only on k, N and s: the host knows them, only the keys stay on the device);
  pass     one launch per dtype group (as a radix pass): counts the keys <= L (L = lo - 1, or 0 when
           lo == 0: zeros, e.g. weights pruned before, are counted, not kept), counts NaNs (keys
           above the inf key) and compacts the keys in (L, hi] into a candidate buffer of capacity
           about twice the expected count (a block's slots come from one atomic on a counter; the
           counter keeps counting past the capacity, so an overflow is seen, nothing is written
           past it);
  select   the radix passes above, run over the candidates only (a chunk table whose lengths a
           one-program kernel sets on the device from the counter), give the (k - below)-th
           candidate key, the rank among its ties and the tie count: what radix_select gives.
The host reads 9 numbers once at the end (one sync, as the radix select). When the k-th key is not
in (L, hi] (the sample misled: outliers at the sampled places, a period matching the stride) or the
buffer overflowed (heavy ties at the bracket), the radix select runs over everything (a second
sync), counted in ``counters["fallback"]``. Inputs below BRACKET_MIN_N keys go to the radix select
directly (the bracket's fixed cost, a dozen launches and a sort, buys nothing there).
"""
from __future__ import annotations

import collections
import math
import os

import numpy as np
import torch
import triton
import triton.language as tl

from . import _common
from ._common import Batch, Group, KeySpec, load_keys, radix_plan

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
    _radix_passes(batch, count_nan=True)
    return batch.state.tolist()


def _radix_passes(batch: Batch, count_nan: bool) -> None:
    """Every radix pass and pick over ``batch``, on the device (no sync): batch.state ends as
    ``[key, r, keys equal to it, NaNs (if count_nan)]``."""
    spec = batch.groups[0].spec
    plan = radix_plan(spec.key_bits)
    hists = torch.zeros(sum(1 << b for _, b in plan), dtype=torch.int64, device=batch.state.device)
    off = 0
    for i, (shift, bits) in enumerate(plan):
        hist = hists[off : off + (1 << bits)]
        off += 1 << bits
        launch_hist(batch, hist, shift, bits, count_nan=count_nan and i == 0)
        _pick_kernel[(1,)](hist, batch.state, BITS=bits, num_warps=4)


def nan_count(batch: Batch) -> int:
    """NaN keys in the batch (one histogram pass); for k == 0, where nothing is selected."""
    spec = batch.groups[0].spec
    shift, bits = radix_plan(spec.key_bits)[0]
    hist = torch.zeros(1 << bits, dtype=torch.int64, device=batch.state.device)
    launch_hist(batch, hist, shift, bits, count_nan=True)
    return int(batch.state[3])


# ------------------------------------------------------------------ sampled bracket
SAMPLE_PLACES = 4096  # sampled places at most (tests shrink these module settings)
SAMPLE_RUN = 8  # consecutive keys read at each place (8 fp32: one 32-byte sector)
SIGMAS = 4.5  # bracket half-width, in standard deviations of rank k's place in the sample
BRACKET_MIN_N = 1 << 20  # fewer keys: the radix select directly (launch-bound; tune on a GPU)
MIN_PLACES = 4  # fewer sampled places than this (tiny inputs): the radix select directly
BRACKET = os.environ.get("HPO_BENCH_TRITON_BRACKET", "1") != "0"  # "0": always the radix select

#: Which path each selection took: "bracket" (the bracketed pass gave the key), "fallback" (the
#: bracket missed or overflowed: the radix select ran after it), "radix" (radix select only).
counters: collections.Counter = collections.Counter()

_CTL = 9  # control words: L, H, below, NaNs, candidate count, candidate radix state (4)
_KEY_MAX = 0x7FFFFFFF


@triton.jit
def _sample_kernel(spl_ptr, out_ptr, P, SRC: tl.constexpr, KEY32: tl.constexpr, RUN: tl.constexpr,
                   PB: tl.constexpr):
    """out[j * RUN + r] = the key at address spl[j] + min(r, spl[P + j] - 1) elements."""
    pl = tl.program_id(0) * PB + tl.arange(0, PB)
    ok = pl < P
    addr = tl.load(spl_ptr + pl, mask=ok, other=0)
    ln = tl.load(spl_ptr + P + pl, mask=ok, other=1)
    r = tl.arange(0, RUN)
    offs = tl.minimum(r[None, :].to(tl.int64), ln[:, None] - 1)
    valid = ok[:, None] & (r[None, :] < RUN)
    key = load_keys(addr[:, None], offs, valid, SRC, KEY32, True, False)
    tl.store(out_ptr + pl[:, None] * RUN + r[None, :], key, mask=valid)


@triton.jit
def _bounds_kernel(sorted_ptr, ctl_ptr, IA, IB, HAS_LO: tl.constexpr, HAS_HI: tl.constexpr):
    """ctl[0:2] <- (L, H): L = lo - 1 (or 0 when lo == 0), H = max(hi, L + 1); lo, hi = the sorted
    sample's keys at IA, IB (0 and the largest key when the place falls off the sample)."""
    lo = tl.zeros((), tl.int64)
    hi = tl.full((), 0x7FFFFFFF, tl.int64)
    if HAS_LO:
        lo = tl.load(sorted_ptr + IA).to(tl.int64)
    if HAS_HI:
        hi = tl.load(sorted_ptr + IB).to(tl.int64)
    low = tl.where(lo > 0, lo - 1, 0)
    tl.store(ctl_ptr, low)
    tl.store(ctl_ptr + 1, tl.maximum(hi, low + 1))


@triton.jit
def _bracket_block(base, offs, n, low, high, below, nans, ctl_ptr, cand_ptr, CAP, SRC: tl.constexpr,
                   KEY32: tl.constexpr, INF: tl.constexpr, MASKED: tl.constexpr,
                   ALIGNED: tl.constexpr):
    valid = offs < n
    key = load_keys(base, offs, valid, SRC, KEY32, MASKED, ALIGNED)
    le = key <= low
    isnan = key > INF
    inb = (key > low) & (key <= high)
    if MASKED:
        le = le & valid
        isnan = isnan & valid
        inb = inb & valid
    below += le.to(tl.int32)  # per-lane counts, reduced once per program: one reduction a block
    nans += isnan.to(tl.int32)
    m = tl.sum(inb.to(tl.int32))
    if m > 0:  # the block's slots: one atomic; the counter runs on past CAP (overflow is seen)
        at = tl.atomic_add(ctl_ptr + 4, m.to(tl.int64))
        pos = at + tl.cumsum(inb.to(tl.int32), 0).to(tl.int64) - 1
        tl.store(cand_ptr + pos, key, mask=inb & (pos < CAP))
    return below, nans


@triton.jit
def _bracket_kernel(tab_ptr, ctl_ptr, cand_ptr, CAP, SRC: tl.constexpr, KEY32: tl.constexpr,
                    INF: tl.constexpr, ALIGNED: tl.constexpr, BLOCK: tl.constexpr):
    """One program per table row, one read of its keys: ctl[2] += keys <= L (ctl[0]), ctl[3] +=
    NaN keys, keys in (L, H] (H = ctl[1]) appended to cand (slots counted in ctl[4])."""
    row = tl.program_id(0).to(tl.int64)
    base = tl.load(tab_ptr + row * 4)
    n = tl.load(tab_ptr + row * 4 + 1)
    low = tl.load(ctl_ptr).to(tl.int32)
    high = tl.load(ctl_ptr + 1).to(tl.int32)
    below = tl.zeros((BLOCK,), tl.int32)
    nans = tl.zeros((BLOCK,), tl.int32)
    ar = tl.arange(0, BLOCK).to(tl.int64)
    n_full = n - n % BLOCK
    for start in range(0, n_full, BLOCK):
        below, nans = _bracket_block(base, start + ar, n, low, high, below, nans, ctl_ptr, cand_ptr,
                                     CAP, SRC, KEY32, INF, False, ALIGNED)
    if n_full < n:
        below, nans = _bracket_block(base, n_full + ar, n, low, high, below, nans, ctl_ptr,
                                     cand_ptr, CAP, SRC, KEY32, INF, True, ALIGNED)
    nb = tl.sum(below.to(tl.int64))
    nn = tl.sum(nans.to(tl.int64))
    tl.atomic_add(ctl_ptr + 2, nb, mask=nb > 0)
    tl.atomic_add(ctl_ptr + 3, nn, mask=nn > 0)


@triton.jit
def _cand_setup_kernel(ctl_ptr, ctab_ptr, k, CAP, CHUNK, NROWS, ROWS: tl.constexpr):
    """The candidates' chunk table lengths from the count (at most CAP), and their radix state
    ``[prefix 0, k - below, 0, 0]`` in ctl[5:9]."""
    cnt = tl.minimum(tl.load(ctl_ptr + 4), CAP)
    below = tl.load(ctl_ptr + 2)
    rows = tl.arange(0, ROWS).to(tl.int64)
    lens = tl.minimum(tl.maximum(cnt - rows * CHUNK, 0), CHUNK)
    tl.store(ctab_ptr + rows * 4 + 1, lens, mask=rows < NROWS)
    tl.store(ctl_ptr + 5, tl.zeros((), tl.int64))
    tl.store(ctl_ptr + 6, k - below)
    tl.store(ctl_ptr + 7, tl.zeros((), tl.int64))
    tl.store(ctl_ptr + 8, tl.zeros((), tl.int64))


def sample_places(total: int) -> int:
    """Places the bracket samples for ``total`` keys; 0: the radix select runs directly."""
    places = min(SAMPLE_PLACES, total // (16 * SAMPLE_RUN))
    if not BRACKET or total < BRACKET_MIN_N or places < MIN_PLACES:
        return 0
    return places


def _sample_layout(sizes: np.ndarray, places: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tensor, first offset, run length) of each sampled place: place j is global position
    ((2j + 1) N) // (2 places), its run moved back to fit in its tensor (cut where the tensor is
    shorter than SAMPLE_RUN: the kernel then repeats the tensor's last key)."""
    ends = np.cumsum(sizes)
    total = int(ends[-1])
    q = ((2 * np.arange(places, dtype=np.int64) + 1) * total) // (2 * places)
    ti = np.searchsorted(ends, q, side="right")
    n_t = sizes[ti]
    ln = np.minimum(SAMPLE_RUN, n_t)
    off = np.minimum(q - (ends[ti] - n_t), n_t - ln)
    return ti, off, ln


def sampled_positions(tensors: list[torch.Tensor]) -> np.ndarray:
    """Global positions (over the concatenation, tensor order, row-major) of every key the bracket
    samples, with repeats; empty when it would not sample. For tests: data built to mislead it."""
    sizes = np.array([t.numel() for t in tensors], dtype=np.int64)
    places = sample_places(int(sizes.sum()))
    if not places:
        return np.zeros(0, dtype=np.int64)
    ti, off, ln = _sample_layout(sizes, places)
    starts = np.cumsum(sizes) - sizes
    r = np.arange(SAMPLE_RUN, dtype=np.int64)
    return (starts[ti] + off)[:, None] + np.minimum(r[None, :], ln[:, None] - 1)


def _bracket(batch: Batch, tensors: list[torch.Tensor], k: int, places: int) -> list[int] | None:
    """The bracketed select (module docstring): ``[key, r, equal, NaNs]`` as radix_select gives
    (NaNs counted over every key), or None when the bracket missed. One host sync."""
    dev = batch.state.device
    sizes = np.array([t.numel() for t in tensors], dtype=np.int64)
    total = int(sizes.sum())
    ti, off, ln = _sample_layout(sizes, places)
    ptrs = np.array([t.data_ptr() for t in tensors], dtype=np.int64)
    esz = np.array([t.element_size() for t in tensors], dtype=np.int64)
    addr = ptrs[ti] + off * esz[ti]
    order = list(dict.fromkeys(t.dtype for t in tensors if t.numel()))  # make_batch's group order
    assert len(order) == len(batch.groups)
    gid = np.array([order.index(t.dtype) if t.numel() else -1 for t in tensors])[ti]

    s = places * SAMPLE_RUN
    p = (k - 0.5) / total
    spread = int(math.ceil(SIGMAS * math.sqrt(s * p * (1 - p)))) + 2
    at = p * s
    a, b = int(math.floor(at)) - spread, int(math.ceil(at)) + spread
    expect = min(total, (min(b, s - 1) - max(a, 0) + 1) * (total // s + 1))
    cap = min(total, 2 * expect + 4 * _common.BLOCK)
    cchunk = _common.chunk_size(cap)
    crows = _common.cdiv(cap, cchunk)
    cand = torch.empty(cap, dtype=torch.int32, device=dev)

    # One upload: each group's sample addresses and run lengths, the candidate table, ctl.
    parts, spans = [], []
    for g in range(len(batch.groups)):
        sel = gid == g
        spans.append(int(sel.sum()))
        parts += [addr[sel], ln[sel]]
    ctab = np.zeros((crows, 4), dtype=np.int64)
    ctab[:, 0] = cand.data_ptr() + np.arange(crows, dtype=np.int64) * cchunk * 4
    ctab[:, 3] = np.arange(crows)
    parts += [ctab.reshape(-1), np.zeros(_CTL, dtype=np.int64)]
    buf = torch.from_numpy(np.concatenate(parts)).to(dev)
    ctl = buf[buf.numel() - _CTL :]
    ctab_t = buf[buf.numel() - _CTL - 4 * crows : buf.numel() - _CTL]

    sample = torch.empty(s, dtype=torch.int32, device=dev)
    o = po = 0
    for g, npl in zip(batch.groups, spans):
        if npl:
            pb = 64
            _sample_kernel[(_common.cdiv(npl, pb),)](
                buf[o : o + 2 * npl], sample[po * SAMPLE_RUN :], npl, SRC=g.spec.src,
                KEY32=g.spec.key32, RUN=SAMPLE_RUN, PB=pb, num_warps=4)
        o += 2 * npl
        po += npl
    srt = torch.sort(sample).values
    _bounds_kernel[(1,)](srt, ctl, max(a, 0), min(b, s - 1), HAS_LO=a >= 0, HAS_HI=b < s,
                         num_warps=1)
    for g in batch.groups:
        _bracket_kernel[(g.rows,)](g.table, ctl, cand, cap, SRC=g.spec.src, KEY32=g.spec.key32,
                                   INF=g.spec.inf_key, ALIGNED=g.aligned, BLOCK=_common.BLOCK,
                                   num_warps=NUM_WARPS)
    _cand_setup_kernel[(1,)](ctl, ctab_t, k, cap, cchunk, crows, ROWS=_common.next_pow2(crows),
                             num_warps=1)
    spec = batch.groups[0].spec
    cspec = KeySpec(0, True, spec.inf_key, spec.key_bits)  # int32 keys, read as fp32 bits
    aligned = cand.data_ptr() % 16 == 0 and os.environ.get("HPO_BENCH_TRITON_NO_HINTS", "") != "1"
    cgroup = Group(cspec, ctab_t.view(crows, 4), crows, aligned)
    cbatch = Batch([cgroup], ctl[5:], crows, cap, cchunk)
    _radix_passes(cbatch, count_nan=False)

    low, _, below, nans, cnt, key, r, equal, _ = ctl.tolist()  # the one sync
    if nans:
        return [0, 0, 0, nans]
    if k <= below and low == 0:  # every key counted is a zero
        return [0, k, below, 0]
    if cnt > cap or k <= below or k > below + cnt:
        return None
    return [key, r, equal, 0]


def select(batch: Batch, tensors: list[torch.Tensor], k: int,
           write_state: bool = True) -> list[int]:
    """``radix_select``'s answer ``[key of the k-th |w|, r, keys equal to it, NaNs]`` (1 <= k <= N),
    by the sampled bracket where it applies (one host sync; two when it misses). With
    ``write_state`` batch.state holds the answer afterwards, as after radix_select."""
    places = sample_places(batch.total)
    if places:
        got = _bracket(batch, tensors, k, places)
        if got is not None:
            counters["bracket"] += 1
            if write_state:
                batch.state.copy_(torch.tensor(got, dtype=torch.int64))
            return got
        counters["fallback"] += 1
    else:
        counters["radix"] += 1
    return radix_select(batch)


def kth_magnitude(tensors: list[torch.Tensor], k: int) -> float:
    """The k-th smallest |w| over all tensors (1 <= k <= N), as a Python float."""
    from ._common import key_to_float, make_batch

    batch = make_batch(tensors, None, k)
    key, _, _, nans = select(batch, tensors, k, write_state=False)
    if nans:
        raise ValueError(f"the weights contain NaN ({nans} values)")
    return key_to_float(key, batch.groups[0].spec, tensors[0].dtype)
