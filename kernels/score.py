"""Pruning by score (``score_prune_``, ``score_kth``): the weights of the smallest scores are zeroed,
in groups over all tensors, per tensor, or per row.

Why this shape. Row groups (Wanda) are many independent selections of a few thousand scores each,
so one program takes one row and runs a whole radix select on it: passes over the row, most
significant digit first (radix_plan: 31-bit keys in 3 passes of 11/10/10 bits, 15-bit keys in
8/7), each a tl.histogram of the digit of the keys that match the prefix chosen so far and a
cumulative sum that picks the bin holding the k-th key, all inside the program (no atomics, no host
sync). The first pass also counts invalid scores (NaN, negative). A last pass writes the row's mask:
keys < t pruned, and of the keys == t the first ``k - #(keys < t)`` in column order, ranked with
tl.cumsum. Global and per-tensor groups reuse the magnitude kernels on the scores' keys
(select.radix_select, apply.select_ without zeroing). The weights are zeroed only after every score
has been checked, so a bad score leaves them unchanged.

A score's key is its bit pattern with the sign cleared (as for magnitudes, _common): valid scores
are >= 0, so the key order is the value order; -0.0 has key 0, like +0.0.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import INF_KEY16, INF_KEY32, next_pow2, radix_plan

NUM_WARPS = 4
ROW_BLOCK = 2048  # scores per loop step of a row program (tests shrink it to cross steps)


@triton.jit
def _load_score(base, offs, valid, KEY16: tl.constexpr, INF: tl.constexpr):
    """(key, bad) of the scores at ``base + offs`` (an int32 or int16 view of the scores): bad is
    a NaN (key above the inf key) or a negative score other than -0.0."""
    raw = tl.load(base + offs, mask=valid, other=0).to(tl.int32)
    if KEY16:
        raw = raw & 0xFFFF
        key = raw & 0x7FFF
        neg = raw > 0x7FFF
    else:
        key = raw & 0x7FFFFFFF
        neg = raw < 0
    bad = (key > INF) | (neg & (key != 0))
    return key, bad


@triton.jit
def _digit_pass(base, cols, prefix, krem, KEY16: tl.constexpr, INF: tl.constexpr,
                SHIFT: tl.constexpr, BITS: tl.constexpr, COUNT_BAD: tl.constexpr,
                BLOCK: tl.constexpr):
    """One radix pass over a row: the bin of digit ``(key >> SHIFT) & (2**BITS - 1)`` holding the
    ``krem``-th key among those whose higher bits equal ``prefix``. Returns (prefix.bin, krem minus
    the keys in lower bins, invalid scores seen if COUNT_BAD)."""
    ar = tl.arange(0, BLOCK)
    acc = tl.zeros((1 << BITS,), tl.int32)
    skipped = tl.zeros((), tl.int32)
    nbad = tl.zeros((), tl.int32)
    for start in range(0, cols, BLOCK):
        offs = start + ar
        valid = offs < cols
        key, bad = _load_score(base, offs, valid, KEY16, INF)
        take = valid & ((key >> (SHIFT + BITS)) == prefix)
        # Untaken keys go to bin 0 and are subtracted below (as in select.py: no reliance on how
        # tl.histogram treats masks or out-of-range values across Triton versions).
        acc += tl.histogram(tl.where(take, (key >> SHIFT) & ((1 << BITS) - 1), 0), 1 << BITS)
        skipped += BLOCK - tl.sum(take.to(tl.int32))
        if COUNT_BAD:
            nbad += tl.sum((bad & valid).to(tl.int32))
    bins = tl.arange(0, 1 << BITS)
    acc = acc - tl.where(bins == 0, skipped, 0)
    cum = tl.cumsum(acc, 0)
    b = tl.minimum(tl.sum((cum < krem).to(tl.int32)), (1 << BITS) - 1)
    below = tl.sum(tl.where(bins < b, acc, 0))
    return (prefix << BITS) | b, krem - below, nbad


@triton.jit
def _row_kernel(s_ptr, mask_ptr, kth_ptr, bad_ptr, cols, k, KEY16: tl.constexpr, INF: tl.constexpr,
                NPASS: tl.constexpr, S0: tl.constexpr, B0: tl.constexpr, S1: tl.constexpr,
                B1: tl.constexpr, S2: tl.constexpr, B2: tl.constexpr, WRITE_MASK: tl.constexpr,
                BLOCK: tl.constexpr):
    """One program per row: kth[row] = the k-th smallest key of the row, bad[row] = its invalid
    scores; if WRITE_MASK, mask[row] = 0 for keys < t and the first ``k - #(keys < t)`` keys == t.
    (k == 0 selects key 0 with nothing left to prune: every key is kept.)"""
    row = tl.program_id(0).to(tl.int64)
    base = s_ptr + row * cols
    prefix = tl.zeros((), tl.int32)
    krem = tl.zeros((), tl.int32) + k
    prefix, krem, nbad = _digit_pass(base, cols, prefix, krem, KEY16, INF, S0, B0, True, BLOCK)
    if NPASS > 1:
        prefix, krem, unused = _digit_pass(base, cols, prefix, krem, KEY16, INF, S1, B1, False,
                                           BLOCK)
    if NPASS > 2:
        prefix, krem, unused = _digit_pass(base, cols, prefix, krem, KEY16, INF, S2, B2, False,
                                           BLOCK)
    tl.store(bad_ptr + row, nbad)
    tl.store(kth_ptr + row, prefix)
    if WRITE_MASK:
        ar = tl.arange(0, BLOCK)
        seen = tl.zeros((), tl.int32)
        for start in range(0, cols, BLOCK):
            offs = start + ar
            valid = offs < cols
            key, bad = _load_score(base, offs, valid, KEY16, INF)  # (bad: counted in pass 0)
            eq = (key == prefix) & valid
            eqi = eq.to(tl.int32)
            rank = seen + tl.cumsum(eqi, 0) - eqi  # ties before this one in the row
            prune = (key < prefix) | (eq & (rank < krem))
            tl.store(mask_ptr + row * cols + offs, (prune == 0).to(tl.int8), mask=valid)
            seen += tl.sum(eqi)


def _bits(s: torch.Tensor) -> torch.Tensor:
    return s.view(torch.int32 if s.dtype == torch.float32 else torch.int16)


def _key_values(keys: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float32 values of int32 keys of scores of ``dtype``."""
    if dtype == torch.float32:
        return keys.view(torch.float32).clone()
    return keys.to(torch.int16).view(dtype).float()


def _raise_bad(scores: list[torch.Tensor]) -> None:
    """ValueError naming the first score tensor with a NaN or a negative value (error path)."""
    for i, s in enumerate(scores):
        if s.numel() and bool(torch.isnan(s).any()):
            raise ValueError(f"scores of tensor {i} contain NaN")
        if s.numel() and bool((s < 0).any()):
            raise ValueError(f"scores of tensor {i} contain a negative value (scores must be >= 0)")


def rows(scores: list[torch.Tensor], ks: list[int], masks: list[torch.Tensor] | None
         ) -> list[torch.Tensor]:
    """Row selection over every tensor: writes ``masks`` (if given) and returns the per-row k-th
    scores (float32, -inf where k == 0). Raises ValueError on an invalid score."""
    kths, bads = [], []
    for i, (s, k) in enumerate(zip(scores, ks)):
        n_rows = s.shape[0]
        cols = s.numel() // n_rows if n_rows else 0
        keys = torch.zeros(n_rows, dtype=torch.int32, device=s.device)
        if n_rows and cols:
            key16 = s.dtype != torch.float32
            plan = radix_plan(15 if key16 else 31)
            plan += [(0, 1)] * (3 - len(plan))  # unused slots (NPASS says how many run)
            bad = torch.zeros(n_rows, dtype=torch.int32, device=s.device)
            mask = masks[i].view(torch.int8) if masks is not None else keys
            _row_kernel[(n_rows,)](
                _bits(s), mask, keys, bad, cols, int(k), KEY16=key16,
                INF=INF_KEY16[s.dtype] if key16 else INF_KEY32, NPASS=len(radix_plan(15 if key16 else 31)),
                S0=plan[0][0], B0=plan[0][1], S1=plan[1][0], B1=plan[1][1], S2=plan[2][0],
                B2=plan[2][1], WRITE_MASK=masks is not None,
                BLOCK=min(ROW_BLOCK, next_pow2(cols)), num_warps=NUM_WARPS,
            )
            bads.append(bad)
        elif masks is not None:
            masks[i].fill_(True)
        values = _key_values(keys, s.dtype)
        kths.append(values if k else torch.full_like(values, -torch.inf))
    if any(int(b.sum()) for b in bads):
        _raise_bad(scores)
    return kths


def _check_whole(scores: list[torch.Tensor]) -> None:
    # The radix select's first pass finds NaN too, but names it a weight's; negative scores need
    # this look anyway (one read of the scores: global and per-tensor groups only).
    if any(s.numel() and bool(((s < 0) | s.isnan()).any()) for s in scores):
        _raise_bad(scores)


def score_prune_(weights: list[torch.Tensor], scores: list[torch.Tensor], group: str,
                 ks: list[int]) -> list[torch.Tensor]:
    """Works on tensors already on the kernel device (see kernels/__init__.py)."""
    from .apply import select_

    if group == "row":
        masks = [torch.empty(w.shape, dtype=torch.bool, device=w.device) for w in weights]
        rows(scores, ks, masks)
    else:
        _check_whole(scores)
        if group == "global":
            masks = select_(scores, ks[0], zero=False)
        else:
            masks = [select_([s], k, zero=False)[0] for s, k in zip(scores, ks)]
    with torch.no_grad():  # every score was valid: only now are the weights written
        for w, m in zip(weights, masks):
            w.masked_fill_(~m, 0)
    return masks


def score_kth(scores: list[torch.Tensor], group: str, ks: list[int]) -> list[torch.Tensor]:
    from .select import kth_magnitude

    if group == "row":
        return rows(scores, ks, None)
    _check_whole(scores)
    dev = scores[0].device
    if group == "global":
        v = kth_magnitude(scores, ks[0]) if ks[0] else -float("inf")
        return [torch.tensor(v, dtype=torch.float32, device=dev) for _ in scores]
    return [torch.tensor(kth_magnitude([s], k) if k and s.numel() else -float("inf"),
                         dtype=torch.float32, device=dev) for s, k in zip(scores, ks)]
