"""Kernel-level tests of the Triton backend (hpo_bench.kernels) against the torch reference,
hpo_bench.ops.reference.

On a machine without CUDA they run under the Triton interpreter (TRITON_INTERPRET=1, set here
before Triton is imported); with CUDA they run on CUDA tensors. Block and chunk sizes are shrunk
so that small tensors cross loop-block and program boundaries, ties included.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from hpo_bench import kernels  # noqa: E402
from hpo_bench.kernels import _common  # noqa: E402
from hpo_bench.ops import reference  # noqa: E402
from hopper import compile_for_hopper  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(_common, "BLOCK", 256)
    monkeypatch.setattr(_common, "CHUNK", 1024)


def _rand(shape, dtype, gen, scale=1.0):
    return (torch.randn(shape, generator=gen) * scale).to(dtype)


def _check_prune(tensors, k):
    ref = [t.clone() for t in tensors]
    ref_masks = reference.prune_(ref, k)
    work = [t.clone().to(DEV) for t in tensors]
    masks = kernels.prune_(work, k)
    assert sum(int((~m).sum()) for m in masks) == k
    for m, rm, w, rw in zip(masks, ref_masks, work, ref):
        assert m.dtype == torch.bool and m.shape == rm.shape
        assert torch.equal(m.cpu(), rm)
        assert torch.equal(w.cpu(), rw)


def test_available():
    assert kernels.available(), kernels.unavailable_reason()


@pytest.mark.parametrize("dtype", DTYPES)
def test_prune_and_threshold_odd_sizes(dtype):
    gen = torch.Generator().manual_seed(1)
    tensors = [_rand(s, dtype, gen) for s in [(1500,), (3, 7), (0,), (2, 1029), (1,)]]
    n = sum(t.numel() for t in tensors)
    for k in (0, 1, n // 2 + 1, n):
        _check_prune(tensors, k)
        if k:
            assert kernels.kth_magnitude([t.to(DEV) for t in tensors], k) == reference.kth_magnitude(tensors, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_across_blocks_and_programs(dtype):
    # Few distinct magnitudes: the k-th value is tied thousands of times, across every boundary.
    gen = torch.Generator().manual_seed(2)
    vals = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0, float("inf"), -float("inf")])
    tensors = [vals[torch.randint(0, 7, (n,), generator=gen)].to(dtype) for n in (2500, 333, 1777)]
    n = sum(t.numel() for t in tensors)
    for k in (5, 2345, 4500):
        _check_prune(tensors, k)
        assert kernels.kth_magnitude([t.to(DEV) for t in tensors], k) == reference.kth_magnitude(tensors, k)


def test_all_equal_and_single_element():
    t = torch.full((3000,), -0.5)
    _check_prune([t], 1234)
    assert kernels.kth_magnitude([t.to(DEV)], 3000) == 0.5
    _check_prune([torch.tensor([3.0])], 1)


def test_mixed_dtypes():
    gen = torch.Generator().manual_seed(3)
    tensors = [_rand((700,), torch.float32, gen), _rand((1300,), torch.bfloat16, gen),
               _rand((5, 99), torch.float16, gen)]
    tensors[1][:50] = 1.0  # equal magnitudes across dtypes
    tensors[2][0, :30] = 1.0
    tensors[0][:20] = 1.0
    n = sum(t.numel() for t in tensors)
    for k in (1, n // 2):
        _check_prune(tensors, k)
        assert kernels.kth_magnitude([t.to(DEV) for t in tensors], k) == reference.kth_magnitude(tensors, k)


def test_every_radix_width_gives_the_same_answer(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    tensors = [_rand((2100,), torch.float32, gen, 1e-3), _rand((900,), torch.float32, gen, 1e3)]
    for bits in ("5", "8", "11"):
        monkeypatch.setenv("HPO_BENCH_TRITON_RADIX_BITS", bits)
        _check_prune(tensors, 1777)


def test_radix_plan_covers_every_bit():
    for bits in (31, 15):
        for most in (5, 8, 11):
            os.environ["HPO_BENCH_TRITON_RADIX_BITS"] = str(most)
            plan = _common.radix_plan(bits)
            assert sum(b for _, b in plan) == bits and max(b for _, b in plan) <= most
            assert plan[-1][0] == 0
    del os.environ["HPO_BENCH_TRITON_RADIX_BITS"]


@pytest.mark.parametrize("where", [0, 1700, 2999])
def test_nan_raises_and_leaves_weights_alone(where):
    a, b = torch.randn(1800), torch.randn(1200)
    (a if where < 1800 else b)[where % 1800] = float("nan")
    work = [a.clone().to(DEV), b.clone().to(DEV)]
    with pytest.raises(ValueError, match="NaN"):
        kernels.prune_(work, 1000)
    with pytest.raises(ValueError, match="NaN"):
        kernels.prune_(work, 0)
    with pytest.raises(ValueError, match="NaN"):
        kernels.kth_magnitude(work, 3000)
    assert torch.allclose(work[0].cpu(), a, equal_nan=True) and torch.allclose(work[1].cpu(), b, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(2, 4), (1, 3), (5, 8), (0, 2), (4, 4)])
def test_nm_equals_reference(dtype, n, m):
    gen = torch.Generator().manual_seed(5)
    t = _rand((37, 24 * m), dtype, gen)
    t[0, : 2 * m] = 1.0  # tied groups
    t[1, :m] = -0.0
    t[2, :m] = float("inf")
    ref = t.clone()
    ref_mask = reference.nm_mask_prune_(ref, n, m)
    work = t.clone().to(DEV)
    mask = kernels.nm_mask_prune_(work, n, m)
    assert torch.equal(mask.cpu(), ref_mask) and torch.equal(work.cpu(), ref)


def test_nm_nan_leaves_tensor_unchanged():
    t = torch.randn(16, 8)
    t[3, 5] = float("nan")
    work = t.clone().to(DEV)
    with pytest.raises(ValueError, match="NaN"):
        kernels.nm_mask_prune_(work, 2, 4)
    assert torch.allclose(work.cpu(), t, equal_nan=True)


def test_kernels_compile_for_hopper():
    """Compile (no GPU needed) every kernel for sm_90, in a process without the interpreter:
    catches GPU-only lowering errors on a CPU-only machine."""
    compile_for_hopper(_COMPILE_SCRIPT)


_COMPILE_SCRIPT = """
from hpo_bench.kernels import apply, nm, select

i64 = {"tab_ptr": "*i64", "state_ptr": "*i64"}
for src, key32, inf in [(0, True, 0x7F800000), (1, False, 0x7C00), (1, True, 0x7F800000),
                        (2, False, 0x7F80), (2, True, 0x7F800000)]:
    compile_(select._hist_kernel, dict(i64, hist_ptr="*i64"),
             dict(SRC=src, KEY32=key32, INF=inf, SHIFT=0, BITS=8, COUNT_NAN=True,
                  ALIGNED=True, BLOCK=4096), 8)
    compile_(apply._count_eq_kernel, dict(i64, counts_ptr="*i64"),
             dict(SRC=src, KEY32=key32, ALIGNED=False, BLOCK=4096), 8)
    for split in (False, True):
        compile_(apply._apply_kernel, dict(i64, before_ptr="*i64"),
                 dict(SRC=src, KEY32=key32, SPLIT=split, ALIGNED=True, BLOCK=4096), 8)
compile_(select._pick_kernel, {"hist_ptr": "*i64", "state_ptr": "*i64"}, dict(BITS=11), 4)
for src, ty in ((0, "*fp32"), (2, "*bf16")):
    compile_(nm._nm_mask_kernel, {"w_ptr": ty, "mask_ptr": "*i8", "nan_ptr": "*i32", "groups": "i32"},
             dict(M=4, MP=4, PRUNE=2, INF=0x7F80, SRC=src, BLOCK_G=1024), 4)
    compile_(nm._zero_pruned_kernel, {"w_ptr": ty, "mask_ptr": "*i8", "n": "i32"},
             dict(SRC=src, BLOCK=8192), 4)
print("ok")
"""
