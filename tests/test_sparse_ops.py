"""Contract suite of sparse inference: every backend that lists a format in its ``SPARSE_FORMATS``
(ops.sparse_linear hands it those products it ``supports``) must equal the reference,
``hpo_bench.ops.reference.sparse_linear`` (densify + F.linear), on odd shapes, empty rows, fully
dense and fully zero weights, partial BSR blocks and every batch-tile path."""
import pytest
import torch
import torch.nn.functional as F

from hpo_bench import ops
from hpo_bench.ops import dispatch, reference

FORMATS = ["csr", "bsr", "bitmask"]


def _backends(fmt):
    """(backend, device) pairs that run ``fmt`` themselves; the torch backend *is* the reference."""
    out = []
    for name in ops.available_backends():
        module = dispatch.load(name)
        if name == "torch" or fmt not in module.SPARSE_FORMATS:
            continue
        out.append((name, "cuda" if name == "triton" and torch.cuda.is_available() else "cpu"))
    return out


CASES = [(fmt, b, d) for fmt in FORMATS for b, d in _backends(fmt)]


def _weight(rows, cols, density, gen, empty_rows=True):
    w = torch.randn(rows, cols, generator=gen) * (torch.rand(rows, cols, generator=gen) < density)
    if empty_rows and rows > 2:
        w[1] = 0  # an empty row
        w[rows // 2] = 0
    return w


def _check(fmt, backend, device, w, batch, block=16, bias=True, dtype=torch.float32, lead=()):
    gen = torch.Generator().manual_seed(batch + w.shape[0])
    x = torch.randn(*lead, batch, w.shape[1], generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(w.shape[0], generator=gen).to(device=device, dtype=dtype) if bias else None
    w = w.to(device=device, dtype=dtype)
    sw = ops.to_sparse(w, fmt, block=block)
    y = ops.sparse_linear(x, sw, b, backend=backend)
    ref = reference.sparse_linear(x.reshape(-1, w.shape[1]), sw, b).reshape(*lead, batch, w.shape[0])
    assert y.shape == ref.shape and y.dtype == dtype
    tol = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
    torch.testing.assert_close(y.float(), ref.float(), rtol=tol, atol=tol * scale)
    if dtype == torch.float32:  # the reference itself against the unpacked weight
        torch.testing.assert_close(ref, F.linear(x, w, b), rtol=1e-5, atol=1e-4 * scale)


@pytest.mark.parametrize("fmt,backend,device", CASES)
@pytest.mark.parametrize("shape", [(1, 1), (37, 53), (129, 300), (8, 64)])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("batch", [1, 3, 17, 70])
def test_equals_reference(fmt, backend, device, shape, density, batch):
    w = _weight(*shape, density, torch.Generator().manual_seed(shape[0] * 1000 + shape[1]))
    _check(fmt, backend, device, w, batch, block=(8, 5) if fmt == "bsr" else 16)


@pytest.mark.parametrize("backend,device", _backends("bsr"))
@pytest.mark.parametrize("block", [4, 16, 64, (4, 64), (64, 4), (7, 12)])
@pytest.mark.parametrize("batch", [1, 9, 40])
def test_bsr_blocks_and_partial_edges(backend, device, block, batch):
    gen = torch.Generator().manual_seed(5)
    w = _weight(131, 203, 0.2, gen)  # no block size divides 131 or 203: partial edge blocks
    _check("bsr", backend, device, w, batch, block=block)


@pytest.mark.parametrize("fmt,backend,device", CASES)
@pytest.mark.parametrize("batch", [1, 64, 130])
def test_threads_split_large_layer(fmt, backend, device, batch):
    # Big enough for every thread to get rows; a few dense rows test the nonzero-balanced split.
    gen = torch.Generator().manual_seed(11)
    w = _weight(700, 1100, 0.08, gen)
    w[:5] = torch.randn(5, 1100, generator=gen)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            _check(fmt, backend, device, w, batch)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("fmt,backend,device", CASES)
def test_no_bias_leading_dims_and_wide_rows(fmt, backend, device):
    gen = torch.Generator().manual_seed(2)
    _check(fmt, backend, device, _weight(19, 45, 0.3, gen), 5, bias=False, lead=(2, 3))
    # in_features >= 32768: CSR column indices are int32
    _check(fmt, backend, device, _weight(6, 33000, 0.01, gen), 2)


@pytest.mark.parametrize("fmt,backend,device", CASES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(fmt, backend, device, dtype):
    gen = torch.Generator().manual_seed(4)
    _check(fmt, backend, device, _weight(33, 70, 0.2, gen), 7, dtype=dtype)


def test_reference_formats_agree():
    gen = torch.Generator().manual_seed(9)
    w = _weight(45, 77, 0.25, gen)
    for fmt in ["dense", *FORMATS]:
        assert torch.equal(ops.to_sparse(w, fmt, block=(4, 8)).to_dense(), w)


def test_forced_torch_backend_runs_the_reference(monkeypatch):
    from hpo_bench import ops

    w = torch.randn(9, 12)
    w[w.abs() < 1] = 0
    sw = ops.to_sparse(w, "csr")
    x = torch.randn(3, 12)
    monkeypatch.setenv("HPO_BENCH_BACKEND", "torch")
    assert torch.equal(ops.sparse_linear(x, sw), reference.sparse_linear(x, sw, None))
    monkeypatch.delenv("HPO_BENCH_BACKEND")
    assert torch.equal(ops.sparse_linear(x, sw, backend="torch"), reference.sparse_linear(x, sw, None))
