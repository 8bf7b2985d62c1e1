"""Sparse inference on CUDA beyond the Triton kernels: torch's 2:4 (semi-structured) path behind
``ops.to_sparse(w, "2:4")`` and ``sparsify()`` choosing formats on a GPU.

These need a CUDA device: on a CPU-only machine (CI) the module is skipped as a whole, with that
reason; benchmarks/gpu/run.sh runs it on a lent GPU. (2:4 on CPU is a clear error, tested in
tests/test_sparse_ops.py.)
"""
import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (run by benchmarks/gpu/run.sh)", allow_module_level=True)

from hpo_bench import ops  # noqa: E402
from hpo_bench.compression import sparsify as sp  # noqa: E402

DEV = torch.device("cuda")
TOL = {torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _two_four(rows, cols, dtype, seed=0):
    gen = torch.Generator(device=DEV).manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen, device=DEV).to(dtype)
    ops.nm_prune_(w, 2, 4)
    return w


def _semi_structured_runs() -> bool:
    try:
        from torch.sparse import to_sparse_semi_structured

        to_sparse_semi_structured(_two_four(128, 128, torch.float16))
        return True
    except Exception:  # noqa: BLE001 - e.g. a GPU older than sm_80
        return False


needs_24 = pytest.mark.skipif(not _semi_structured_runs(), reason="torch's 2:4 kernels do not run on this GPU")


@needs_24
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape,batch", [((128, 256), 64), ((512, 1024), 128), ((256, 128), 32)])
def test_two_four_matches_the_reference(dtype, shape, batch):
    w = _two_four(*shape, dtype)
    sw = ops.to_sparse(w, "2:4")
    assert sw.format == "2:4" and sw.nnz == int((w != 0).sum())
    x = torch.randn(batch, shape[1], device=DEV).to(dtype)
    b = torch.randn(shape[0], device=DEV).to(dtype)
    y = ops.sparse_linear(x, sw, b)
    ref = torch.nn.functional.linear(x.float(), w.float(), b.float())
    assert y.dtype == dtype and y.shape == (batch, shape[0])
    torch.testing.assert_close(y.float(), ref, rtol=TOL[dtype], atol=TOL[dtype] * ref.abs().max().item())


@needs_24
def test_two_four_refuses_weights_that_are_not_two_four():
    w = torch.randn(128, 256, device=DEV, dtype=torch.float16)
    with pytest.raises(ValueError, match="2 nonzeros in every 4"):
        ops.to_sparse(w, "2:4")


@pytest.mark.parametrize("pattern", ["2:4", "block32"])
def test_sparsify_on_cuda_keeps_predictions(pattern, tmp_path, monkeypatch):
    # A 2:4-pruned fp16 MLP and a 90%-block-pruned bf16 one: sparsify measures every format on
    # this GPU (2:4 and the Triton BSR kernels included), and the converted model predicts the same.
    monkeypatch.setenv("HPO_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(sp, "_CHOICES", {})
    dtype = torch.float16 if pattern == "2:4" else torch.bfloat16
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 1024),
                                torch.nn.ReLU(), torch.nn.Linear(1024, 16)).to(DEV, dtype).eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear) and m.out_features > 16:
                if pattern == "2:4":
                    ops.nm_prune_(m.weight.data, 2, 4)
                else:
                    ops.block_prune_([m.weight.data], 0.9, (32, 32))
    x = torch.randn(256, 1024, device=DEV, dtype=dtype)
    fast = sp.sparsify(model, x, repeats=5)
    report = {k: v["format"] for k, v in fast.sparsify_report.items()}
    print(pattern, report, {k: {f: round(s * 1e6, 1) for f, s in v["seconds"].items()}
                            for k, v in fast.sparsify_report.items()})
    assert set(report) == {"0", "2", "4"}
    if pattern == "2:4" and _semi_structured_runs():
        assert all(v["seconds"]["2:4"] < float("inf") for k, v in fast.sparsify_report.items() if k != "4")
    with torch.no_grad():
        ref, out = model(x).float(), fast(x).float()
    torch.testing.assert_close(out, ref, rtol=5e-2, atol=5e-2 * ref.abs().max().item())
    assert (out.argmax(1) == ref.argmax(1)).float().mean() > 0.95
