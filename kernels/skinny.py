"""Skinny BSR x dense for batch <= 16 (``SKINNY_MAX_BATCH``): a GEMV-like kernel.

Why a second kernel: at batch 1..16 the product is bound by reading the weight once, and the
tl.dot kernel (bsr.py) both wastes tensor-core work on a 16-row minimum tile and, worse, has too
few programs (one per block-row: 64 for a 4096-row weight in 64-row blocks, under half an H200)
and too few bytes in flight (one block per loop step, behind the dependent column-index load).

Here a program owns a *slice* of SUB_H rows of one block-row, for all M <= 16 rows of x, and walks
the nonzero blocks of that block-row NB at a time: the NB blocks side by side form one flat axis of
T = NB x bw columns, and the matching x columns are gathered along it, so each step has
SUB_H x T weights in flight instead of one block's. The weight is read once; x (at most 16 rows)
comes from L2. Two ways to multiply, chosen by ``skinny_config``:

* FMA (batch 1..2, and blocks under 16 rows): CUDA cores,
  ``acc[M_P, SUB_H, T] += x[:, None, :] * w[None, :, :]`` in fp32, reduced once at the end (no
  cross-thread reduction in the loop); SUB_H down to 4 for many programs.
* DOT (batch 3..16): ``acc[16, SUB_H] = tl.dot(x[16, T], w[SUB_H, T].T)`` with SUB_H = 16 and
  T up to 512: the padding of M to 16 costs tensor-core time only, which is free here, and the
  accumulators are tiny, so T (bytes in flight) can stay large at any batch.

Bias is fused; any block size 4..64 works (tiles are the next power of two, masked). fp32 inputs:
exact fp32 on the FMA path; on the DOT path IEEE fp32 unless torch allows tf32 (as in bsr.py).

Reference: ``hpo_bench.ops.reference.sparse_linear`` (densify, then F.linear).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._common import bsr_operands, cdiv, dot_flags, next_pow2, sm_count

__all__ = ["SKINNY_MAX_BATCH", "TILE", "T_MAX", "skinny_config", "skinny_linear"]

SKINNY_MAX_BATCH = 16


@triton.jit
def _bsr_skinny_kernel(x_ptr, crow_ptr, col_ptr, val_ptr, bias_ptr, y_ptr,
                       M, N, K, stride_xm, stride_ym,
                       BH: tl.constexpr, BW: tl.constexpr, BW_T: tl.constexpr, SUB_H: tl.constexpr,
                       SUBS: tl.constexpr, M_P: tl.constexpr, NB: tl.constexpr, HAS_BIAS: tl.constexpr,
                       USE_DOT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    pid = tl.program_id(0)
    r = pid // SUBS
    s = pid % SUBS
    offs_m = tl.arange(0, M_P)
    offs_i = s * SUB_H + tl.arange(0, SUB_H)  # rows of the block
    t = tl.arange(0, NB * BW_T)  # NB blocks side by side: block t // BW_T, column t % BW_T
    jt = t // BW_T
    kt = t % BW_T
    m_ok = offs_m < M
    i_ok = offs_i < BH
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    w_off = offs_i[:, None] * BW + (jt * (BH * BW) + kt)[None, :]
    start = tl.load(crow_ptr + r)
    end = tl.load(crow_ptr + r + 1)
    vp = val_ptr + start.to(tl.int64) * (BH * BW)  # first block of this step
    if USE_DOT:
        acc = tl.zeros((M_P, SUB_H), dtype=tl.float32)
    else:
        acc = tl.zeros((M_P, SUB_H, NB * BW_T), dtype=tl.float32)
    for j0 in range(start, end, NB):
        t_ok = (j0 + jt) < end
        if BW != BW_T:
            t_ok = t_ok & (kt < BW)
        c = tl.load(col_ptr + j0 + jt, mask=t_ok, other=0)
        k = c * BW + kt
        xt = tl.load(x_rows + k[None, :], mask=m_ok[:, None] & (t_ok & (k < K))[None, :], other=0.0)
        wt = tl.load(vp + w_off, mask=i_ok[:, None] & t_ok[None, :], other=0.0)
        if USE_DOT:
            if UPCAST:  # interpreter only: its bf16 tl.dot is wrong (triton 3.9)
                xt = xt.to(tl.float32)
                wt = wt.to(tl.float32)
            acc = tl.dot(xt, tl.trans(wt), acc, input_precision=PRECISION)
        else:
            acc += xt.to(tl.float32)[:, None, :] * wt.to(tl.float32)[None, :, :]
        vp += NB * BH * BW
    if USE_DOT:
        out = acc
    else:
        out = tl.sum(acc, axis=2)  # [M_P, SUB_H]
    n = r * BH + offs_i
    n_ok = i_ok & (n < N)
    if HAS_BIAS:
        out += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    y = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + n[None, :]
    tl.store(y, out.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


TILE = 4096  # FMA path: fp32 accumulators per program (32 per thread at 4 warps)
T_MAX = 512  # flat weight columns per loop step (NB blocks x BW_T)


@functools.lru_cache(maxsize=1024)
def skinny_config(m: int, block: tuple[int, int], n_block_rows: int, nnzb: int, device: torch.device,
                  use_dot: bool | None = None) -> dict:
    """Launch config. NB (blocks per loop step): up to T_MAX / BW_T, at most the mean number of
    blocks in a block-row (rounded up to a power of two). DOT path (default for batch >= 3 and
    blocks of >= 16 rows): M_P = SUB_H = 16, T >= 16. FMA path: SUB_H the largest power of two
    <= the block height giving >= 4 programs per SM (at least 4), M_P x SUB_H x T <= TILE."""
    bh, bw = block
    bw_t = next_pow2(bw)
    mean = next_pow2(max(1, -(-nnzb // max(1, n_block_rows))))
    nb = max(1, min(T_MAX // bw_t, mean))
    if use_dot is None:
        use_dot = m >= 3 and bh >= 16
    if use_dot:
        nb = max(nb, 16 // bw_t)  # tl.dot's K >= 16
        return dict(USE_DOT=True, SUB_H=16, M_P=16, NB=nb, num_warps=4)
    m_p = max(2, next_pow2(m))  # >= 2: avoids 1-wide blocks (batch 1 wastes no memory)
    sms = sm_count(device)
    sub_h = next_pow2(bh)
    while sub_h > 4 and n_block_rows * cdiv(bh, sub_h) < 4 * sms:
        sub_h //= 2
    while nb > 1 and m_p * sub_h * nb * bw_t > TILE:
        nb //= 2
    while sub_h > 4 and m_p * sub_h * nb * bw_t > TILE:
        sub_h //= 2
    return dict(USE_DOT=False, SUB_H=sub_h, M_P=m_p, NB=nb, num_warps=4)


def skinny_linear(x2: torch.Tensor, sw, bias: torch.Tensor | None = None, *, config: dict | None = None
                  ) -> torch.Tensor:
    """``x2 @ W.T + bias`` for x2 [M <= 16, in] and a BSR ``SparseWeight`` on the kernels' device."""
    if x2.shape[0] > SKINNY_MAX_BATCH:
        raise ValueError(f"the skinny kernel takes at most {SKINNY_MAX_BATCH} rows, got {x2.shape[0]}")
    x2, y, arrays = bsr_operands(x2, sw, bias)
    if arrays is None:
        return y
    crow, col, values = arrays
    (m, k), n, (bh, bw) = x2.shape, sw.shape[0], sw.block
    nr = crow.numel() - 1
    config = config or {}
    cfg = dict(skinny_config(m, (bh, bw), nr, col.numel(), x2.device, config.get("USE_DOT")), **config)
    if cfg["USE_DOT"] and (cfg["M_P"] < 16 or cfg["SUB_H"] < 16 or cfg["NB"] * next_pow2(bw) < 16):
        raise ValueError(f"the DOT path needs M_P, SUB_H and NB x BW_T >= 16, got {cfg}")
    sub_h, bw_t = cfg["SUB_H"], next_pow2(bw)
    precision, upcast = dot_flags(x2)
    subs = cdiv(bh, sub_h)
    _bsr_skinny_kernel[(nr * subs,)](
        x2, crow, col, values, bias if bias is not None else y, y,
        m, n, k, x2.stride(0), y.stride(0),
        BH=bh, BW=bw, BW_T=bw_t, SUB_H=sub_h, SUBS=subs, M_P=cfg["M_P"], NB=cfg["NB"],
        HAS_BIAS=bias is not None, USE_DOT=cfg["USE_DOT"], PRECISION=precision, UPCAST=upcast,
        num_warps=cfg["num_warps"],
    )
    return y
