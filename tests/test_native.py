"""Native-only tests of the C++ backend (csrc/): sizes and thread counts that put many chunk
boundaries inside tensors and inside runs of ties, mixed dtypes, inf/NaN/subnormal edge cases. Every
result is compared with the torch reference (hpo_bench.ops.reference), bit for bit."""
import pytest
import torch

from hpo_bench import ops
from hpo_bench.ops import dispatch, reference

pytestmark = pytest.mark.skipif(
    "native" not in ops.available_backends(),
    reason=f"native backend: {dispatch.load_error('native')}",
)

_BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


@pytest.fixture(params=[2, 3, 7], ids=lambda t: f"threads{t}")
def threads(request):
    """The native backend uses torch's thread count; 3 and 7 chunks do not divide evenly. (One
    thread, one chunk, is what the small tensors of tests/test_ops_contract.py get.)"""
    old = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(old)


def _odd_sizes(count, total, gen):
    """`count` sizes summing to about `total`, all odd-ish and uneven, with a few empty tensors."""
    w = torch.rand(count, generator=gen) + 0.05
    sizes = [int(x) | 1 for x in (w / w.sum() * total)]
    for i in (3, 17, 40):
        if i < count:
            sizes[i] = 0
    return sizes


def _assert_prune_matches_reference(tensors, sparsity):
    k = ops.prune_count(sum(t.numel() for t in tensors), sparsity)
    ref = [t.clone() for t in tensors]
    ref_masks = reference.prune_(ref, k)
    work = [t.clone() for t in tensors]
    masks = ops.magnitude_prune_(work, sparsity, backend="native")
    assert sum(int((~m).sum()) for m in masks) == k
    for i, (m, rm, w, r) in enumerate(zip(masks, ref_masks, work, ref)):
        assert m.dtype == torch.bool and m.shape == rm.shape, i
        assert torch.equal(m, rm), f"mask of tensor {i} differs"
        assert torch.equal(w.view(_BITS[w.dtype]), r.view(_BITS[r.dtype])), f"tensor {i} differs"
    if k:  # the k-th smallest |w| is the largest pruned one (a second reference sort is slow)
        kth = max(float(t[~m].abs().max()) for t, m in zip(tensors, ref_masks) if (~m).any())
        assert ops.magnitude_threshold(tensors, sparsity, backend="native") == kth


@pytest.mark.parametrize(
    "threads,dtype",
    [(2, torch.float32), (3, torch.float32), (7, torch.float32), (3, torch.float16),
     (7, torch.bfloat16)],
    indirect=["threads"],
)
def test_fifty_odd_tensors_about_a_million(threads, dtype):
    gen = torch.Generator().manual_seed(100 + threads)
    tensors = [torch.randn(n, generator=gen).to(dtype) for n in _odd_sizes(50, 1_000_000, gen)]
    for sparsity in (0.37, 0.9):
        _assert_prune_matches_reference(tensors, sparsity)


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.77])
def test_ties_across_chunk_boundaries(threads, sparsity):
    # Seven distinct magnitudes over ~1e6 weights: the threshold falls inside a run of ~140k ties
    # that spans several tensors and several thread chunks; ties must go lowest position first.
    gen = torch.Generator().manual_seed(5)
    sizes = _odd_sizes(50, 1_000_000, gen)
    values = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, 0.5, -0.5, 4.0, float("inf")])
    tensors = [values[torch.randint(0, len(values), (n,), generator=gen)] for n in sizes]
    _assert_prune_matches_reference(tensors, sparsity)


@pytest.mark.parametrize("dtype", ops.SUPPORTED_DTYPES)
@pytest.mark.parametrize("value", [0.0, -1.5, float("inf")])
def test_all_equal(threads, dtype, value):
    tensors = [torch.full((n,), value, dtype=dtype) for n in (200_001, 0, 77, 250_000)]
    for sparsity in (0.0, 1e-6, 0.5, 1.0):
        _assert_prune_matches_reference(tensors, sparsity)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_with_infinities_and_subnormals(threads, dtype):
    gen = torch.Generator().manual_seed(9)
    t = torch.randn(400_003, generator=gen).to(dtype)
    t[::1000] = float("inf")
    t[7::1000] = -float("inf")
    t[3::997] = torch.finfo(dtype).tiny / 4  # subnormal
    t[5::991] = -0.0
    for sparsity in (0.0005, 0.2, 0.999, 1.0):
        _assert_prune_matches_reference([t, t[:1001].clone()], sparsity)


def test_mixed_dtypes_compare_by_value(threads):
    # float16 subnormals and bfloat16 values next to float32 ones: compared as exact values.
    gen = torch.Generator().manual_seed(13)
    a = torch.randn(200_001, generator=gen)
    b = (torch.randn(150_000, generator=gen) * 1e-5).half()  # many float16 subnormals
    c = torch.randn(250_000, generator=gen).bfloat16()
    a[:1000] = b[:1000].float()  # exact ties across dtypes
    c[:1000] = a[1000:2000].bfloat16()
    a[1000:2000] = c[:1000].float()
    for sparsity in (0.001, 0.004, 0.3, 0.5, 0.95):
        _assert_prune_matches_reference([a, b, c], sparsity)


@pytest.mark.parametrize(
    "nan_bits", [0x7FC00000, 0x7F800001, 0xFF800001], ids=["quiet", "signaling", "negative"]
)
def test_nan_raises_and_leaves_weights_untouched(threads, nan_bits):
    # 0x7f800001 shares the top radix digit with +inf, so it takes the scan path: an inf is present.
    gen = torch.Generator().manual_seed(2)
    tensors = [torch.randn(n, generator=gen) for n in (100_000, 333_333, 2)]
    tensors[0][5] = float("inf")
    nan = torch.tensor(nan_bits, dtype=torch.int64).to(torch.int32)  # wraps to the same bits
    tensors[1].view(torch.int32)[123_456] = nan
    before = [t.clone() for t in tensors]
    for sparsity in (0.0, 0.5):
        with pytest.raises(ValueError, match="NaN"):
            ops.magnitude_prune_(tensors, sparsity, backend="native")
    with pytest.raises(ValueError, match="NaN"):
        ops.magnitude_threshold(tensors, 0.5, backend="native")
    for t, b in zip(tensors, before):
        assert torch.equal(t.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nan_raises_half_types(dtype):
    t = torch.randn(70_000).to(dtype)
    t[69_999] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ops.magnitude_prune_([torch.randn(10).to(dtype), t], 0.3, backend="native")
    with pytest.raises(ValueError, match="NaN"):
        ops.nm_prune_(t.reshape(-1, 4), 2, 4, backend="native")


@pytest.mark.parametrize("dtype", ops.SUPPORTED_DTYPES)
@pytest.mark.parametrize("n,m", [(2, 4), (1, 8), (5, 64), (0, 40), (40, 40), (31, 33)])
def test_nm_large_and_tied(threads, dtype, n, m):
    gen = torch.Generator().manual_seed(m * 100 + n)
    t = torch.randn(97, m * 31, generator=gen).to(dtype)
    t[::3] = torch.randint(-2, 3, (t[::3].shape), generator=gen).to(dtype)  # rows full of ties
    ref = t.clone()
    ref_mask = reference.nm_mask_prune_(ref, n, m)
    work = t.clone()
    mask = ops.nm_prune_(work, n, m, backend="native")
    assert torch.equal(mask, ref_mask)
    assert torch.equal(work.view(_BITS[dtype]), ref.view(_BITS[dtype]))


def test_parameters_are_pruned_in_place():
    layer = torch.nn.Linear(300, 301)
    weight = layer.weight
    ops.magnitude_prune_([layer.weight, layer.bias], 0.6, backend="native")
    assert layer.weight is weight
    assert abs(float((weight == 0).float().mean()) - 0.6) < 0.01
