"""CSR x dense (``y = x @ W.T + bias`` with W a CSR ``SparseWeight`` [out, in]), any batch, with the
optional ``perm`` buffer (the k-th kept value is ``values[perm[k]]``: the transpose of
``nn.SparseTrainingLinear``'s weight, sharing its values, whose product is the input gradient).

Why this shape: one program owns a (BLOCK_M rows of x) x (BLOCK_N rows of W) tile of the output and
walks the BLOCK_N rows of W one after the other; for each, it walks the row's nonzeros BLOCK_J at a
time, gathers the matching columns of x as a [BLOCK_M, BLOCK_J] tile (a row's columns are sorted, so
neighbouring lanes read nearby addresses) and accumulates ``x * value`` in fp32 on CUDA cores, then
reduces the row once into its column of the [BLOCK_M, BLOCK_N] output tile, which is stored once,
bias added. Empty rows cost a load of their bounds; programs are numbered W-block fastest, so the
programs running together share their x rows. No tensor cores: each nonzero is a scalar weight, and
the gathered products are exact fp32 multiply-adds (float16/bfloat16 inputs are widened).

Limits: work per program follows the nonzeros of its BLOCK_N rows (no balancing across very uneven
rows); rows with fewer nonzeros than BLOCK_J leave lanes idle; column indices int16 or int32,
crow int32, perm int32; x, values and bias of one dtype (float32, float16, bfloat16).

Reference: ``hpo_bench.ops.reference.sparse_linear`` (densify, perm included, then F.linear).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._common import cdiv, check_linear_dtypes, next_pow2

__all__ = ["TILE", "csr_config", "csr_linear"]

TILE = 4096  # fp32 accumulators per program (32 per thread at 4 warps)


@triton.jit
def _csr_dense_kernel(x_ptr, crow_ptr, col_ptr, val_ptr, perm_ptr, bias_ptr, y_ptr,
                      M, N, NT, stride_xm, stride_ym,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr,
                      HAS_PERM: tl.constexpr, HAS_BIAS: tl.constexpr):
    pid = tl.program_id(0)
    nb = pid % NT  # W-block fastest: neighbouring programs share the x tile
    pid_m = pid // NT
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_j = tl.arange(0, BLOCK_J)
    m_ok = offs_m < M
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    out = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for i in range(BLOCK_N):
        n = nb * BLOCK_N + i
        n_c = tl.minimum(n, N - 1)
        start = tl.load(crow_ptr + n_c)
        end = tl.load(crow_ptr + n_c + 1)
        end = tl.where(n < N, end, start)  # past the last row: nothing to do
        acc = tl.zeros((BLOCK_M, BLOCK_J), dtype=tl.float32)
        for j0 in range(start, end, BLOCK_J):
            j = j0 + offs_j
            j_ok = j < end
            c = tl.load(col_ptr + j, mask=j_ok, other=0).to(tl.int64)
            if HAS_PERM:
                p = tl.load(perm_ptr + j, mask=j_ok, other=0).to(tl.int64)
                v = tl.load(val_ptr + p, mask=j_ok, other=0.0)
            else:
                v = tl.load(val_ptr + j, mask=j_ok, other=0.0)
            xt = tl.load(x_rows + c[None, :], mask=m_ok[:, None] & j_ok[None, :], other=0.0)
            acc += xt.to(tl.float32) * v.to(tl.float32)[None, :]
        s = tl.sum(acc, axis=1)  # [BLOCK_M]: column i of the output tile
        out = tl.where(offs_n[None, :] == i, s[:, None], out)
    n = nb * BLOCK_N + offs_n
    n_ok = n < N
    if HAS_BIAS:
        out += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    y = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + n[None, :]
    tl.store(y, out.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@functools.lru_cache(maxsize=1024)
def csr_config(m: int, rows: int, nnz: int) -> dict:
    """BLOCK_M: the x tile, a power of two up to 64 (no wider than the batch); BLOCK_J: nonzeros
    per step, the mean row length rounded up to a power of two, in 16..TILE / BLOCK_M; BLOCK_N: W
    rows per program, 16 (fewer only for a weight of fewer rows)."""
    block_m = min(64, next_pow2(max(1, m)))
    mean = next_pow2(max(1, -(-nnz // max(1, rows))))
    block_j = max(16, min(TILE // block_m, mean))
    block_n = min(16, next_pow2(max(1, rows)))
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_J=block_j, num_warps=4)


def csr_linear(x2: torch.Tensor, sw, bias: torch.Tensor | None = None, *, config: dict | None = None
               ) -> torch.Tensor:
    """``x2 @ W.T + bias`` for x2 [M, in] and a CSR ``SparseWeight`` (perm optional) on the
    kernels' device; returns [M, out] in x2's dtype. ``config`` overrides ``csr_config``."""
    assert sw.format == "csr"
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    rows = sw.shape[0]
    y = torch.empty((x2.shape[0], rows), dtype=x2.dtype, device=x2.device)
    if y.numel() == 0:
        return y
    d = sw.data
    crow, col, values, perm = d["crow"], d["col"], d["values"], d.get("perm")
    check_linear_dtypes(x2, values, bias)
    if crow.dtype != torch.int32 or col.dtype not in (torch.int16, torch.int32) or (
            perm is not None and perm.dtype != torch.int32):
        raise ValueError(f"CSR buffers: crow must be int32, col int16 or int32, perm int32; got {crow.dtype}, "
                         f"{col.dtype}, {None if perm is None else perm.dtype}")
    m = x2.shape[0]
    cfg = dict(csr_config(m, rows, col.numel()), **(config or {}))
    nt = cdiv(rows, cfg["BLOCK_N"])
    grid = (cdiv(m, cfg["BLOCK_M"]) * nt,)
    _csr_dense_kernel[grid](
        x2, crow, col, values, perm if perm is not None else col, bias if bias is not None else y, y,
        m, rows, nt, x2.stride(0), y.stride(0),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_J=cfg["BLOCK_J"],
        HAS_PERM=perm is not None, HAS_BIAS=bias is not None, num_warps=cfg["num_warps"],
    )
    return y
