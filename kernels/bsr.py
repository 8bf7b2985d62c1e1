"""BSR x dense (``y = x @ W.T + bias`` with W packed by ``ops.to_sparse(w, "bsr", block=)``), batch > 16.

Why this shape: a BSR weight is a list of dense (bh, bw) blocks per block-row. One program owns a
(BLOCK_M rows of x) x (one block-row of W) tile of the output, ``acc[BLOCK_M, bh]`` in fp32, and
walks only the nonzero blocks of its block-row: for block ``j`` at block-column ``c`` it loads
``x[m-tile, c*bw : c*bw + bw]`` and the block ``values[j]`` and does one ``tl.dot``. So the weight
block is the dot's N x K tile, zero blocks cost nothing (an empty block-row just writes the bias),
and the bias is added before the single store. Programs are numbered block-row fastest, so the
programs running at the same time share the same x rows (L2 hits); the sparse weight itself is
small enough to stay in L2.

Any block size that ``to_sparse`` makes (4..64, not necessarily powers of two) is handled: the tile
is the next power of two, at least 16 (tl.dot's minimum), with masked loads. Blocks under 16 thus
waste tensor-core work (a 4x4 block runs as 16x16) but no memory traffic; the format choice should
prefer blocks of 16 or more on GPU. float32 inputs are multiplied in IEEE fp32 unless
``torch.backends.cuda.matmul.allow_tf32`` is set (the same rule as torch's dense F.linear);
bf16/fp16 go to the tensor cores as they are; every product accumulates in fp32.

Reference: ``hpo_bench.ops.reference.sparse_linear`` (densify, then F.linear).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._common import bsr_operands, cdiv, dot_flags, next_pow2, sm_count

__all__ = ["bsr_config", "bsr_linear"]


@triton.jit
def _bsr_dense_kernel(x_ptr, crow_ptr, col_ptr, val_ptr, bias_ptr, y_ptr,
                      M, N, K, NR, stride_xm, stride_ym,
                      BH: tl.constexpr, BW: tl.constexpr, BH_T: tl.constexpr, BW_T: tl.constexpr,
                      BLOCK_M: tl.constexpr, EVEN_BLOCK: tl.constexpr, HAS_BIAS: tl.constexpr,
                      PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    pid = tl.program_id(0)
    r = pid % NR  # block-row fastest: neighbouring programs share the x tile
    pid_m = pid // NR
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_h = tl.arange(0, BH_T)
    offs_w = tl.arange(0, BW_T)
    m_ok = offs_m < M
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    w_tile = offs_h[:, None] * BW + offs_w[None, :]
    w_ok = (offs_h < BH)[:, None] & (offs_w < BW)[None, :]
    start = tl.load(crow_ptr + r)
    end = tl.load(crow_ptr + r + 1)
    acc = tl.zeros((BLOCK_M, BH_T), dtype=tl.float32)
    vp = val_ptr + start.to(tl.int64) * (BH * BW) + w_tile  # block j's tile, j = start..end-1
    cp = col_ptr + start
    for _ in range(start, end):
        c = tl.load(cp)
        k = c * BW + offs_w
        xt = tl.load(x_rows + k[None, :], mask=m_ok[:, None] & (k < K)[None, :], other=0.0)
        if EVEN_BLOCK:
            wt = tl.load(vp)
        else:
            wt = tl.load(vp, mask=w_ok, other=0.0)
        if UPCAST:  # interpreter only: its bf16 tl.dot is wrong (triton 3.9); fp32 is exact here
            xt = xt.to(tl.float32)
            wt = wt.to(tl.float32)
        acc = tl.dot(xt, tl.trans(wt), acc, input_precision=PRECISION)
        vp += BH * BW
        cp += 1
    n = r * BH + offs_h
    n_ok = (offs_h < BH) & (n < N)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    y = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + n[None, :]
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@functools.lru_cache(maxsize=1024)
def bsr_config(m: int, block: tuple[int, int], n_block_rows: int, device: torch.device) -> dict:
    """Launch config for ``m`` rows of x: BLOCK_M (the x tile, a power of two in 16..128) is the
    largest that still gives about two programs per SM, so mid-size batches fill the GPU; the
    weight block is the N x K tile. 8 warps for the 128 x 64 tiles, else 4; 3 pipeline stages."""
    sms = sm_count(device)
    block_m = 128
    while block_m > 16 and cdiv(m, block_m) * n_block_rows < 2 * sms:
        block_m //= 2
    bh_t = max(16, next_pow2(block[0]))
    num_warps = 8 if block_m * bh_t >= 128 * 64 else 4
    return dict(BLOCK_M=block_m, num_warps=num_warps, num_stages=3)


def bsr_linear(x2: torch.Tensor, sw, bias: torch.Tensor | None = None, *, config: dict | None = None
               ) -> torch.Tensor:
    """``x2 @ W.T + bias`` for x2 [M, in] (rows contiguous) and a BSR ``SparseWeight`` on the
    kernels' device; returns [M, out] in x2's dtype. ``config`` overrides ``bsr_config``."""
    x2, y, arrays = bsr_operands(x2, sw, bias)
    if arrays is None:
        return y
    crow, col, values = arrays
    (m, k), n, (bh, bw) = x2.shape, sw.shape[0], sw.block
    nr = crow.numel() - 1
    cfg = dict(bsr_config(m, (bh, bw), nr, x2.device), **(config or {}))
    bh_t, bw_t = max(16, next_pow2(bh)), max(16, next_pow2(bw))
    grid = (cdiv(m, cfg["BLOCK_M"]) * nr,)
    precision, upcast = dot_flags(x2)
    _bsr_dense_kernel[grid](
        x2, crow, col, values, bias if bias is not None else y, y,
        m, n, k, nr, x2.stride(0), y.stride(0),
        BH=bh, BW=bw, BH_T=bh_t, BW_T=bw_t, BLOCK_M=cfg["BLOCK_M"],
        EVEN_BLOCK=(bh == bh_t and bw == bw_t), HAS_BIAS=bias is not None,
        PRECISION=precision, UPCAST=upcast,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return y
