"""Triton sparse inference (hpo_bench.kernels: bsr.py, skinny.py) against the reference product,
``hpo_bench.ops.reference.sparse_linear``.

Without CUDA these run under the Triton interpreter (TRITON_INTERPRET=1, set before Triton is
imported; about 1 ms per program), so the weights are small: odd sizes that are not multiples of
the block, empty block-rows, fully dense and fully zero weights, batch 1, 16 (the skinny kernel's
limit) and > 16, blocks 16, 32 and small / non-square / non-power-of-two ones. The reference is
computed in float32 from the same (rounded) inputs; bf16/fp16 outputs may differ from it by their
final rounding only (both kernels accumulate in fp32).
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from hpo_bench import kernels, ops  # noqa: E402
from hpo_bench.kernels import bsr, skinny  # noqa: E402
from hpo_bench.ops import reference  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
# (rtol, atol) vs the fp32 reference: a few units of the output's last place.
TOL = {torch.float32: (2e-5, 2e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}


def _block_sparse(rows, cols, block, keep, gen, dtype, empty_rows=()):
    """A [rows, cols] weight in which a fraction ``keep`` of the (bh, bw) blocks are nonzero; the
    block-rows in ``empty_rows`` are all zero."""
    bh, bw = (block, block) if isinstance(block, int) else block
    nr, nc = -(-rows // bh), -(-cols // bw)
    mask = torch.rand(nr, nc, generator=gen) < keep
    for r in empty_rows:
        mask[r] = False
    full = mask.repeat_interleave(bh, 0).repeat_interleave(bw, 1)[:rows, :cols]
    return (torch.randn(rows, cols, generator=gen) * full).to(dtype)


def _check(w, block, batch, dtype, gen, bias=True, run=None, nan_pad=False):
    x = torch.randn(batch, w.shape[1], generator=gen).to(dtype)
    xd = x.to(DEV)
    if nan_pad:  # rows padded with NaN past `in`: a kernel reading past the row's end shows it
        buf = torch.full((batch, w.shape[1] + 40), float("nan"), dtype=dtype, device=DEV)
        buf[:, : w.shape[1]] = xd
        xd = buf[:, : w.shape[1]]
    b = torch.randn(w.shape[0], generator=gen).to(dtype) if bias else None
    sw = ops.to_sparse(w, "bsr", block=block)
    ref = reference.sparse_linear(x.float(), ops.to_sparse(w.float(), "bsr", block=block),
                                None if b is None else b.float())
    swd = ops.SparseWeight(sw.format, sw.shape, {k: v.to(DEV) for k, v in sw.data.items()}, sw.block,
                           sw.dtype, torch.device(DEV), sw.nnz)
    run = run or kernels.sparse_linear
    y = run(xd, swd, None if b is None else b.to(DEV))
    assert y.shape == (batch, w.shape[0]) and y.dtype == dtype and y.device.type == DEV
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y.float().cpu(), ref, rtol=rtol, atol=atol)
    return y


def test_available_and_formats():
    assert kernels.available(), kernels.unavailable_reason()
    assert "bsr" in kernels.SPARSE_FORMATS


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block", [16, 32])
@pytest.mark.parametrize("batch", [1, 16, 17, 45])
def test_odd_shapes_empty_rows(dtype, block, batch):
    gen = torch.Generator().manual_seed(block * 100 + batch)
    w = _block_sparse(83, 101, block, 0.5, gen, dtype, empty_rows=(1,))  # 83 x 101: no block multiple
    _check(w, block, batch, dtype, gen, nan_pad=True)


@pytest.mark.parametrize("block", [(16, 32), (8, 8), (4, 12), (24, 40), (64, 16)])
@pytest.mark.parametrize("batch", [3, 20])
def test_small_and_non_square_blocks(block, batch):
    gen = torch.Generator().manual_seed(7)
    w = _block_sparse(70, 90, block, 0.4, gen, torch.float32, empty_rows=(0,))
    _check(w, block, batch, torch.float32, gen)


@pytest.mark.parametrize("batch", [2, 33])
def test_fully_dense_and_fully_zero(batch):
    gen = torch.Generator().manual_seed(9)
    dense = torch.randn(40, 48, generator=gen)
    _check(dense, 16, batch, torch.float32, gen)
    y = _check(torch.zeros(40, 48), 16, batch, torch.float32, gen, bias=False)
    assert not y.any()
    y = _check(torch.zeros(40, 48, dtype=torch.bfloat16), 32, batch, torch.bfloat16, gen)  # bias only
    assert ops.to_sparse(torch.zeros(40, 48), "bsr", block=32).data["values"].numel() == 0


def test_fp16_and_no_bias():
    gen = torch.Generator().manual_seed(11)
    w = _block_sparse(50, 64, 16, 0.6, gen, torch.float16)
    for batch in (1, 30):
        _check(w, 16, batch, torch.float16, gen, bias=False)


@pytest.mark.parametrize("batch", [1, 8, 16])
def test_both_kernels_agree_at_small_batch(batch):
    # The router sends batch <= 16 to the skinny kernel; the tl.dot kernel must be right there too.
    gen = torch.Generator().manual_seed(13)
    w = _block_sparse(64, 80, 16, 0.5, gen, torch.float32, empty_rows=(2,))
    _check(w, 16, batch, torch.float32, gen, run=bsr.bsr_linear)
    _check(w, 16, batch, torch.float32, gen, run=skinny.skinny_linear)
    with pytest.raises(ValueError, match="at most"):
        skinny.skinny_linear(torch.zeros(17, 80, device=DEV), ops.to_sparse(w.to(DEV), "bsr", block=16))


@pytest.mark.parametrize("run", [bsr.bsr_linear, skinny.skinny_linear])
def test_mixed_dtypes_are_a_clear_error(run):
    # Compiled, tl.dot rejects bf16 x fp32 deep in Triton; the interpreter would compute it: both
    # kernels refuse at the door instead, naming the dtypes.
    w = ops.to_sparse(torch.ones(32, 32, device=DEV), "bsr", block=16)
    with pytest.raises(ValueError, match="bfloat16 but the weight is torch.float32"):
        run(torch.zeros(4, 32, dtype=torch.bfloat16, device=DEV), w)
    with pytest.raises(ValueError, match="bias"):
        run(torch.zeros(4, 32, device=DEV), w, torch.zeros(32, dtype=torch.float16, device=DEV))


def test_block_m_tiles_and_skinny_slices():
    # Several x tiles (BLOCK_M 16 forced) and several slices per block-row (SUB_H 8 forced).
    gen = torch.Generator().manual_seed(15)
    w = _block_sparse(64, 70, 32, 0.5, gen, torch.float32)
    _check(w, 32, 40, torch.float32, gen,
           run=lambda x, sw, b: bsr.bsr_linear(x, sw, b, config=dict(BLOCK_M=16)))
    # Block-rows hold 0..3 blocks: NB-steps with a tail; both ways of multiplying, at any batch.
    for cfg in (dict(USE_DOT=False, SUB_H=8, NB=1), dict(USE_DOT=False, SUB_H=4, NB=4),
                dict(USE_DOT=True, NB=1), dict(USE_DOT=True, NB=2)):
        for batch, dtype in ((1, torch.float32), (5, torch.bfloat16), (16, torch.float32)):
            _check(w.to(dtype), 32, batch, dtype, gen,
                   run=lambda x, sw, b, c=cfg: skinny.skinny_linear(x, sw, b, config=c))


def test_through_ops_dispatch():
    # ops.sparse_linear with the triton backend forced: any leading dims, empty batch, and the
    # formats the Triton backend does not run (csr) fall back to the reference.
    gen = torch.Generator().manual_seed(17)
    w = _block_sparse(48, 40, 16, 0.5, gen, torch.float32).to(DEV)
    b = torch.randn(48, generator=gen).to(DEV)
    sw = ops.to_sparse(w, "bsr", block=16)
    x = torch.randn(2, 3, 40, generator=gen).to(DEV)
    y = ops.sparse_linear(x, sw, b, backend="triton")
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w, b), rtol=2e-5, atol=2e-5)
    assert ops.sparse_linear(x[:0], sw, b, backend="triton").shape == (0, 3, 48)
    csr = ops.to_sparse(w, "csr")
    torch.testing.assert_close(ops.sparse_linear(x, csr, b, backend="triton"),
                               torch.nn.functional.linear(x, w, b), rtol=2e-5, atol=2e-5)


def test_configs():
    dev = torch.device(DEV)
    small = bsr.bsr_config(17, (64, 64), 64, dev)["BLOCK_M"]
    large = bsr.bsr_config(4096, (64, 64), 64, dev)["BLOCK_M"]
    assert 16 <= small <= large <= 128
    for m in (1, 2, 5, 16):
        for block in ((64, 64), (32, 32), (4, 60), (16, 4)):
            cfg = skinny.skinny_config(m, block, 64, 64 * 7, dev)
            bw_t = 1 << (block[1] - 1).bit_length()
            assert cfg["M_P"] >= m and cfg["SUB_H"] >= 4 and cfg["NB"] * bw_t <= skinny.T_MAX
            assert cfg["USE_DOT"] == (m >= 3 and block[0] >= 16)
            if cfg["USE_DOT"]:
                assert cfg["M_P"] == cfg["SUB_H"] == 16 and cfg["NB"] * bw_t >= 16
            else:
                assert cfg["M_P"] * cfg["SUB_H"] * cfg["NB"] * bw_t <= skinny.TILE
