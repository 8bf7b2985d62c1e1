"""SDDMM over a CSR pattern: ``out[k] = sum_b g[b, row_k] * x[b, col_k]`` for every kept position
k of the pattern, in CSR order (``ops.sddmm``: the values' gradient of ``nn.SparseTrainingLinear``).

Why this shape: the work is one dot product of length B (the batch) per nonzero, and rows of a
pruned weight hold very different numbers of nonzeros, so a program owns a fixed run of BLOCK_K
*consecutive nonzeros* (not a row): every program has the same work whatever the row lengths, and
empty rows cost nothing. The row of each nonzero is found inside the kernel, by a binary search of
``crow`` per nonzero (the largest r with crow[r] <= k, i.e. the smallest r with crow[r + 1] > k;
ceil(log2(rows)) steps of a gather from ``crow``, which is small and stays in cache). That was
preferred to a row-index array built per call (``repeat_interleave``: two more launches and an
int64 temporary of nnz entries on every backward step, since the pattern arrives as a fresh
``SparseWeight`` each time and nothing ties a cached array to it safely); the search is paid once
per nonzero, against B multiply-adds.

The program then walks the batch in tiles of BLOCK_B rows: it gathers ``g[b, row_k]`` and
``x[b, col_k]`` as [BLOCK_B, BLOCK_K] tiles (nonzeros along the fast axis: a row's columns are
sorted, so the x gathers of neighbouring lanes are close, and the g gathers of one row hit the same
address), multiplies in fp32 and accumulates ``acc[BLOCK_B, BLOCK_K]`` in fp32; the single reduction
over the batch axis comes after the loop, then one store in the inputs' dtype. Any batch (0 gives
zeros), float32 / float16 / bfloat16 inputs (g and x of one dtype), int16 or int32 column indices,
64-bit addressing of g and x. No tensor cores: it is a sampled product, each output its own dot.

Reference: ``hpo_bench.ops.reference.sddmm`` (the dense ``g.T @ x`` read at the mask).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._common import cdiv, next_pow2

__all__ = ["SDDMM_DTYPES", "TILE", "sddmm", "sddmm_config"]

SDDMM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TILE = 4096  # fp32 accumulators per program (32 per thread at 4 warps)


@triton.jit
def _sddmm_kernel(g_ptr, x_ptr, crow_ptr, col_ptr, out_ptr, B, ROWS, NNZ, stride_g, stride_x, STEPS,
                  BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    k = pid * BLOCK_K + tl.arange(0, BLOCK_K)
    k_ok = k < NNZ
    # Row of each nonzero: the smallest r in [0, ROWS) with crow[r + 1] > k (binary search).
    lo = tl.zeros((BLOCK_K,), dtype=tl.int32)
    hi = tl.zeros((BLOCK_K,), dtype=tl.int32) + (ROWS - 1)
    for _ in range(STEPS):
        mid = (lo + hi) // 2
        nxt = tl.load(crow_ptr + mid + 1)  # mid + 1 <= ROWS: always inside crow
        left = nxt > k
        hi = tl.where(left, mid, hi)
        lo = tl.where(left, lo, mid + 1)
    row = lo.to(tl.int64)
    col = tl.load(col_ptr + k, mask=k_ok, other=0).to(tl.int64)
    offs_b = tl.arange(0, BLOCK_B)
    acc = tl.zeros((BLOCK_B, BLOCK_K), dtype=tl.float32)
    for b0 in range(0, B, BLOCK_B):
        b = b0 + offs_b
        ok = (b < B)[:, None] & k_ok[None, :]
        b64 = b.to(tl.int64)[:, None]
        gt = tl.load(g_ptr + b64 * stride_g + row[None, :], mask=ok, other=0.0)
        xt = tl.load(x_ptr + b64 * stride_x + col[None, :], mask=ok, other=0.0)
        acc += gt.to(tl.float32) * xt.to(tl.float32)
    out = tl.sum(acc, axis=0)
    tl.store(out_ptr + k, out.to(out_ptr.dtype.element_ty), mask=k_ok)


@functools.lru_cache(maxsize=1024)
def sddmm_config(batch: int, nnz: int) -> dict:
    """BLOCK_B: the batch tile, a power of two up to 32 (no wider than the batch, so batch 1 does
    not multiply zeros); BLOCK_K: nonzeros per program, TILE / BLOCK_B (128 at large batch), but no
    more than the nonzeros there are (rounded up to a power of two, at least 16)."""
    block_b = min(32, next_pow2(max(1, batch)))
    block_k = max(16, min(TILE // block_b, 1024, next_pow2(max(1, nnz))))
    return dict(BLOCK_B=block_b, BLOCK_K=block_k, num_warps=4)


def sddmm(g2: torch.Tensor, x2: torch.Tensor, pattern, *, config: dict | None = None) -> torch.Tensor:
    """``out[k] = sum_b g2[b, row_k] * x2[b, col_k]`` over the kept positions of the CSR
    ``pattern`` [rows, cols] (its values are not read), for g2 [B, rows] and x2 [B, cols] of one
    dtype, all on the kernels' device; returns [nnz] in that dtype (accumulated in fp32).
    ``config`` overrides ``sddmm_config`` (BLOCK_B, BLOCK_K, num_warps)."""
    if g2.dtype != x2.dtype or g2.dtype not in SDDMM_DTYPES:
        raise ValueError(f"sddmm: g is {g2.dtype} and x {x2.dtype}; both must be one of float32, float16, bfloat16")
    rows, cols = pattern.shape
    if g2.dim() != 2 or x2.dim() != 2 or g2.shape[1] != rows or x2.shape[1] != cols or g2.shape[0] != x2.shape[0]:
        raise ValueError(f"sddmm: g {tuple(g2.shape)} and x {tuple(x2.shape)} do not fit a pattern "
                         f"of shape {(rows, cols)}")
    crow, col = pattern.data["crow"], pattern.data["col"]
    if crow.dtype != torch.int32 or col.dtype not in (torch.int16, torch.int32):
        raise ValueError(f"sddmm: crow must be int32 and col int16 or int32, got {crow.dtype} and {col.dtype}")
    nnz = col.numel()
    out = torch.empty(nnz, dtype=g2.dtype, device=g2.device)
    if nnz == 0:
        return out
    if g2.stride(-1) != 1:
        g2 = g2.contiguous()
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    batch = g2.shape[0]
    cfg = dict(sddmm_config(batch, nnz), **(config or {}))
    steps = (rows - 1).bit_length()  # ceil(log2(rows)): enough halvings of [0, rows - 1]
    _sddmm_kernel[(cdiv(nnz, cfg["BLOCK_K"]),)](
        g2, x2, crow, col, out, batch, rows, nnz, g2.stride(0), x2.stride(0), steps,
        BLOCK_B=cfg["BLOCK_B"], BLOCK_K=cfg["BLOCK_K"], num_warps=cfg["num_warps"],
    )
    return out
