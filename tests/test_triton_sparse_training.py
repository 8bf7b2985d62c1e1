"""Triton sparse training (hpo_bench.kernels: sddmm_csr.py, csr.py) against independent references,
and ``nn.SparseTrainingLinear`` trained on the Triton backend against the reference backend.

Without CUDA these run under the Triton interpreter (TRITON_INTERPRET=1, set before Triton is
imported), so the shapes are small: odd sizes, empty rows, nnz = 0, batch 0, 1 and batches that
are not a multiple of the batch tile (tiles shrunk by ``config`` so that a few hundred elements
cross several programs and loop steps), int16 and int32 column indices, with and without the
``perm`` buffer. The references are dense float64 products of the same (rounded) inputs, built from
the mask and the weight directly (not from the CSR buffers): ``(g.T @ x)[mask]`` for sddmm,
``x @ W.T + b`` for the product.

Tolerances: float32 within 1e-5 (fp32 accumulation over <= 64 terms); float16 and bfloat16, whose
kernels accumulate in fp32 and round once at the store, within two units of the output's last
place (rtol 2^-9 for float16, 2^-6 for bfloat16) plus atol 1e-4 for results near zero.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from hpo_bench import kernels, ops  # noqa: E402
from hpo_bench.kernels import bsr, csr, sddmm_csr  # noqa: E402
from hpo_bench.nn import SparseTrainingLinear  # noqa: E402
from hpo_bench.ops import dispatch  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (2.0 ** -9, 1e-4), torch.bfloat16: (2.0 ** -6, 1e-4)}
SMALL = dict(BLOCK_B=8, BLOCK_K=16, num_warps=4)  # sddmm: several programs and batch tiles
SMALL_CSR = dict(BLOCK_M=8, BLOCK_N=4, BLOCK_J=16, num_warps=4)  # csr: several tiles and steps


def _mask(rows, cols, density, gen, empty_rows=()):
    mask = torch.rand(rows, cols, generator=gen) < density
    for r in empty_rows:
        mask[r] = False
    return mask


def _csr(mask, values, col_dtype=torch.int32):
    """W [rows, cols] as CSR on DEV, built here from the mask (row-major order of the kept ones)."""
    rows, cols = mask.shape
    crow = torch.zeros(rows + 1, dtype=torch.int32)
    crow[1:] = mask.sum(1).cumsum(0)
    col = mask.nonzero(as_tuple=True)[1].to(col_dtype)
    data = {"crow": crow.to(DEV), "col": col.to(DEV), "values": values.to(DEV)}
    return ops.SparseWeight("csr", (rows, cols), data, None, values.dtype, torch.device(DEV), col.numel())


def _close(y, ref, dtype):
    rtol, atol = TOL[dtype]
    assert y.dtype == dtype and y.shape == ref.shape
    torch.testing.assert_close(y.cpu().double(), ref, rtol=rtol, atol=atol)


def test_available_and_formats():
    assert kernels.available(), kernels.unavailable_reason()
    assert set(kernels.SPARSE_FORMATS) == {"bsr", "csr"}
    # No kernel module is named like a backend function: importing one would replace the function.
    assert callable(kernels.sddmm) and callable(kernels.supports_sddmm)
    assert not isinstance(kernels.sddmm, type(sddmm_csr))


# ------------------------------------------------------------------ sddmm
SHAPES = [  # rows, cols, batch, density, empty rows
    (10, 64, 5, 0.5, (3,)),
    (37, 23, 45, 0.3, (0, 36)),  # batch 45: not a multiple of the batch tile (8 or 32)
    (1, 40, 17, 0.6, ()),        # a single row (no search steps)
    (64, 9, 1, 1.0, (5,)),       # batch 1, dense rows
    (33, 31, 64, 0.05, ()),      # very sparse: many empty rows
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("col_dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("small", [False, True])
def test_sddmm_against_dense(shape, col_dtype, small):
    rows, cols, batch, density, empty = shape
    gen = torch.Generator().manual_seed(rows * 100 + batch)
    mask = _mask(rows, cols, density, gen, empty)
    g = torch.randn(batch, rows, generator=gen)
    x = torch.randn(batch, cols, generator=gen)
    pattern = _csr(mask, torch.zeros(int(mask.sum())), col_dtype)
    out = sddmm_csr.sddmm(g.to(DEV), x.to(DEV), pattern, config=SMALL if small else None)
    _close(out, (g.double().t() @ x.double())[mask], torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sddmm_half_precision(dtype):
    gen = torch.Generator().manual_seed(3)
    mask = _mask(29, 47, 0.4, gen, (2,))
    g = torch.randn(37, 29, generator=gen).to(dtype)
    x = torch.randn(37, 47, generator=gen).to(dtype)
    pattern = _csr(mask, torch.zeros(int(mask.sum()), dtype=dtype), torch.int16)
    for cfg in (None, SMALL):
        out = sddmm_csr.sddmm(g.to(DEV), x.to(DEV), pattern, config=cfg)
        _close(out, (g.double().t() @ x.double())[mask], dtype)  # reference from the rounded inputs


def test_sddmm_nnz_zero_and_batch_zero():
    gen = torch.Generator().manual_seed(4)
    empty = _csr(torch.zeros(12, 20, dtype=torch.bool), torch.zeros(0))
    out = sddmm_csr.sddmm(torch.randn(5, 12, device=DEV), torch.randn(5, 20, device=DEV), empty)
    assert out.shape == (0,) and out.dtype == torch.float32
    mask = _mask(12, 20, 0.5, gen)
    pattern = _csr(mask, torch.zeros(int(mask.sum())))
    out = sddmm_csr.sddmm(torch.zeros(0, 12, device=DEV), torch.zeros(0, 20, device=DEV), pattern)
    assert out.shape == (int(mask.sum()),) and not out.any()  # an empty sum


def test_sddmm_through_ops_and_errors():
    # ops.sddmm with the triton backend forced: leading dimensions, and the Triton kernel runs it.
    gen = torch.Generator().manual_seed(5)
    mask = _mask(21, 18, 0.5, gen, (4,))
    pattern = _csr(mask, torch.zeros(int(mask.sum())))
    g = torch.randn(2, 7, 21, generator=gen)
    x = torch.randn(2, 7, 18, generator=gen)
    module = dispatch.module_for(torch.device(DEV), "triton")
    assert module is kernels and kernels.supports_sddmm(g.reshape(-1, 21), x.reshape(-1, 18), pattern)
    out = ops.sddmm(g.to(DEV), x.to(DEV), pattern, backend="triton")
    _close(out, (g.reshape(-1, 21).double().t() @ x.reshape(-1, 18).double())[mask], torch.float32)
    assert not kernels.supports_sddmm(g.reshape(-1, 21), x.reshape(-1, 18).double(), pattern)
    with pytest.raises(ValueError, match="float16"):
        sddmm_csr.sddmm(torch.zeros(3, 21, device=DEV), torch.zeros(3, 18, device=DEV, dtype=torch.float16), pattern)


# ------------------------------------------------------------------ CSR product
def _weight(rows, cols, density, gen, empty_rows=()):
    mask = _mask(rows, cols, density, gen, empty_rows)
    return mask, torch.randn(rows, cols, generator=gen) * mask


@pytest.mark.parametrize("shape", [(37, 53, 45, 0.3), (8, 64, 1, 0.5), (50, 20, 17, 0.9), (70, 33, 3, 0.05)])
@pytest.mark.parametrize("col_dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("small", [False, True])
def test_csr_against_dense(shape, col_dtype, small):
    rows, cols, batch, density = shape
    gen = torch.Generator().manual_seed(rows + batch)
    mask, w = _weight(rows, cols, density, gen, (1, rows - 1))
    x = torch.randn(batch, cols, generator=gen)
    b = torch.randn(rows, generator=gen)
    sw = _csr(mask, w[mask], col_dtype)
    ref = x.double() @ w.double().t()
    cfg = SMALL_CSR if small else None
    _close(csr.csr_linear(x.to(DEV), sw, b.to(DEV), config=cfg), ref + b.double(), torch.float32)
    _close(csr.csr_linear(x.to(DEV), sw, None, config=cfg), ref, torch.float32)


@pytest.mark.parametrize("col_dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("small", [False, True])
def test_csr_with_perm_is_the_transpose(col_dtype, small):
    # The input gradient of SparseTrainingLinear: W.T in CSR whose k-th value is values[perm[k]].
    gen = torch.Generator().manual_seed(8)
    mask, w = _weight(27, 41, 0.35, gen, (0, 13))
    w[:, 5] = 0  # an empty row of W.T
    mask[:, 5] = False
    layer = SparseTrainingLinear(w, mask).to(DEV)
    t = layer.transposed(layer.values)
    assert "perm" in t.data and t.shape == (41, 27)
    t.data["col"] = t.data["col"].to(col_dtype)
    g = torch.randn(19, 27, generator=gen)
    out = csr.csr_linear(g.to(DEV), t, None, config=SMALL_CSR if small else None)
    _close(out, g.double() @ w.double(), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_csr_half_precision(dtype):
    gen = torch.Generator().manual_seed(9)
    mask, w = _weight(30, 44, 0.4, gen, (2,))
    w = w.to(dtype)
    x = torch.randn(21, 44, generator=gen).to(dtype)
    b = torch.randn(30, generator=gen).to(dtype)
    sw = _csr(mask, w[mask], torch.int16)
    ref = x.double() @ w.double().t() + b.double()
    for cfg in (None, SMALL_CSR):
        _close(csr.csr_linear(x.to(DEV), sw, b.to(DEV), config=cfg), ref, dtype)
    layer = SparseTrainingLinear(w, mask).to(DEV)  # the perm path in half precision too
    g = torch.randn(9, 30, generator=gen).to(dtype)
    _close(csr.csr_linear(g.to(DEV), layer.transposed(layer.values), None), g.double() @ w.double(), dtype)


def test_csr_nnz_zero_and_batch_zero():
    gen = torch.Generator().manual_seed(10)
    sw = _csr(torch.zeros(12, 20, dtype=torch.bool), torch.zeros(0))
    b = torch.randn(12, generator=gen)
    y = csr.csr_linear(torch.randn(6, 20, device=DEV), sw, b.to(DEV))
    _close(y, b.double().expand(6, 12), torch.float32)  # the bias alone
    assert not csr.csr_linear(torch.randn(6, 20, device=DEV), sw, None).any()
    mask, w = _weight(12, 20, 0.5, gen)
    assert csr.csr_linear(torch.zeros(0, 20, device=DEV), _csr(mask, w[mask]), None).shape == (0, 12)


def test_csr_mixed_dtypes_are_a_clear_error():
    mask, w = _weight(8, 8, 0.5, torch.Generator().manual_seed(11))
    sw = _csr(mask, w[mask])
    with pytest.raises(ValueError, match="bfloat16 but the weight is torch.float32"):
        csr.csr_linear(torch.zeros(2, 8, dtype=torch.bfloat16, device=DEV), sw)


def test_dispatch_routes_csr_and_bsr(monkeypatch):
    # CSR products go to csr.py, BSR ones still to bsr.py / skinny.py (each stand-in would raise).
    gen = torch.Generator().manual_seed(12)
    _, w = _weight(40, 48, 0.5, gen)
    w = w.to(DEV)
    x = torch.randn(20, 48, generator=gen).to(DEV)
    b = torch.randn(40, generator=gen).to(DEV)
    ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
    s_csr, s_bsr = ops.to_sparse(w, "csr"), ops.to_sparse(w, "bsr", block=16)
    for sw in (s_csr, s_bsr):
        assert dispatch.product_backend(x, sw, b, "triton") is kernels

    def refuse(*args, **kwargs):
        raise AssertionError("the wrong kernel was called")

    monkeypatch.setattr(kernels, "_sparse_runners", None)
    monkeypatch.setattr(csr, "csr_linear", refuse)
    for batch in (3, 20):  # skinny and tl.dot kernels
        _close(ops.sparse_linear(x[:batch], s_bsr, b, backend="triton"), ref[:batch], torch.float32)
    monkeypatch.undo()
    monkeypatch.setattr(kernels, "_sparse_runners", None)
    monkeypatch.setattr(bsr, "bsr_linear", refuse)
    from hpo_bench.kernels import skinny

    monkeypatch.setattr(skinny, "skinny_linear", refuse)
    for batch in (3, 20):
        _close(ops.sparse_linear(x[:batch], s_csr, b, backend="triton"), ref[:batch], torch.float32)
    monkeypatch.undo()  # _sparse_runners as it was: the real kernels again for later tests


# ------------------------------------------------------------------ training
def _train(backend, monkeypatch, steps=3):
    """A SparseTrainingLinear (with bias) trained ``steps`` Adam steps with ``backend`` forced for
    every op of the step; returns the losses, the final values and bias, and the ops' call counts
    on the Triton backend."""
    monkeypatch.setenv("HPO_BENCH_BACKEND", backend)
    gen = torch.Generator().manual_seed(21)
    mask, w = _weight(24, 35, 0.4, gen, (3, 17))
    layer = SparseTrainingLinear(w, mask, torch.randn(24, generator=gen)).to(DEV)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x = torch.randn(steps, 2, 9, 35, generator=gen).to(DEV)  # leading dims: batch 18 per step
    target = torch.randn(steps, 2, 9, 24, generator=gen).to(DEV)
    calls = {"sparse_linear": 0, "sddmm": 0}
    run_linear, run_sddmm = kernels.sparse_linear, kernels.sddmm

    def counted_linear(x2, sw, bias=None):
        calls["sparse_linear"] += sw.format == "csr"
        return run_linear(x2, sw, bias)

    def counted_sddmm(g2, x2, pattern):
        calls["sddmm"] += 1
        return run_sddmm(g2, x2, pattern)

    monkeypatch.setattr(kernels, "sparse_linear", counted_linear)
    monkeypatch.setattr(kernels, "sddmm", counted_sddmm)
    xin = x.clone().requires_grad_(True)
    losses = []
    for i in range(steps):
        opt.zero_grad()
        loss = ((layer(xin[i]) - target[i]) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    monkeypatch.undo()
    return losses, layer.values.detach().cpu(), layer.bias.detach().cpu(), xin.grad.cpu(), calls


def test_training_triton_equals_reference(monkeypatch):
    ref_losses, ref_values, ref_bias, ref_gx, ref_calls = _train("torch", monkeypatch)
    losses, values, bias, gx, calls = _train("triton", monkeypatch)
    assert ref_calls == {"sparse_linear": 0, "sddmm": 0}
    # Each step: the forward and the input gradient by csr.py, the values' gradient by sddmm_csr.py.
    assert calls == {"sparse_linear": 6, "sddmm": 3}
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    torch.testing.assert_close(values, ref_values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bias, ref_bias, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-5, atol=1e-6)
    assert len(set(losses)) == len(losses)  # it did train
