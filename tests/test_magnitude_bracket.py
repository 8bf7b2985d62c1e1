"""The bracketed select of csrc/magnitude.cpp (float32 magnitude threshold and prune): exactness on
inputs built to make its sampled bracket miss or overflow, against an independent brute-force
reference (a stable sort of the integer |w| keys of the concatenated tensors), on all three paths:
auto (AVX-512 kernels where the CPU has them), the portable kernels, and the radix select alone.

The test hooks `_native._set_magnitude_path` and `_native._magnitude_fallbacks` (csrc/magnitude.h)
choose the path and count the selections that fell back from the bracket to the radix select."""
import pytest
import torch

from hpo_bench import ops
from hpo_bench.ops import dispatch

pytestmark = pytest.mark.skipif(
    "native" not in ops.available_backends(),
    reason=f"native backend: {dispatch.load_error('native')}",
)

if "native" in ops.available_backends():
    from hpo_bench import _native

PATHS = {"auto": 0, "portable": 1, "radix": 2}
THREADS = 4  # chunks of >= 2^16 keys each: inputs of 2^18 and more get 4 chunks


@pytest.fixture(params=list(PATHS), ids=lambda p: p)
def path(request):
    _native._set_magnitude_path(PATHS[request.param])
    yield request.param
    _native._set_magnitude_path(0)


# ------------------------------------------------------------------ the independent reference
def _keys(tensors):
    """|w| as int64 keys (float32 bits with the sign cleared): ordered like |w|, -0.0 == +0.0."""
    return torch.cat([(t.reshape(-1).view(torch.int32).to(torch.int64) & 0x7FFFFFFF)
                      for t in tensors])


def _ref_kth(tensors, k):
    key = int(torch.sort(_keys(tensors)).values[k - 1])
    return torch.tensor([key], dtype=torch.int32).view(torch.float32).item()


def _ref_masks(tensors, k):
    """Prune the k smallest keys, of equal keys the lowest global position first (brute force: a
    stable sort by key keeps position order among equal keys)."""
    order = torch.sort(_keys(tensors), stable=True).indices
    keep = torch.ones(order.numel(), dtype=torch.bool)
    keep[order[:k]] = False
    return list(torch.split(keep, [t.numel() for t in tensors]))


# ------------------------------------------------------------------ calling the kernels
def _args(tensors):
    return [t.data_ptr() for t in tensors], [t.numel() for t in tensors], [0] * len(tensors)


def native_kth(tensors, k):
    return _native.kth_magnitude(*_args(tensors), k, THREADS)


def native_prune(tensors, k):
    masks = [torch.empty(t.numel(), dtype=torch.bool) for t in tensors]
    _native.prune(*_args(tensors), [m.data_ptr() for m in masks], k, THREADS)
    return masks


def check(tensors, ks):
    """Threshold and prune of every k against the reference, bit for bit."""
    n = sum(t.numel() for t in tensors)
    for k in ks:
        k = min(max(int(k), 1), n)
        want = _ref_kth(tensors, k)
        got = native_kth(tensors, k)
        assert got == want or (got != got and want != want), (k, got, want)
        work = [t.clone() for t in tensors]
        masks = native_prune(work, k)
        for t, w, m, r in zip(tensors, work, masks, _ref_masks(tensors, k)):
            assert torch.equal(m, r), f"k={k}: masks differ at {int((m != r).sum())} places"
            expect = torch.where(r, t.reshape(-1), torch.zeros(()))  # pruned: +0.0
            assert torch.equal(w.reshape(-1).view(torch.int32), expect.view(torch.int32)), k


def _ks(n):
    return [1, 2, n // 100, n // 2, n // 2 + 1, int(0.9 * n), int(0.99 * n), n - 1, n]


def _fallbacks():
    return _native._magnitude_fallbacks()


# ------------------------------------------------------------------ cases
def test_random_large_does_not_fall_back(path):
    gen = torch.Generator().manual_seed(0)
    ts = [torch.randn(1 << 18, generator=gen), torch.randn(12345, generator=gen) * 3]
    before = _fallbacks()
    check(ts, _ks(sum(t.numel() for t in ts)))
    if path != "radix":  # the bracket holds the k-th key of ordinary data
        assert _fallbacks() == before


@pytest.mark.parametrize("n", [1, 2, 3, 17, 100, 1000, 40000, 70001])
def test_sizes_around_the_sampling_threshold(path, n):
    # Below 2^15 keys every key is a candidate; 40000 and 70001 use a small sample.
    t = torch.randn(n, generator=torch.Generator().manual_seed(n))
    check([t], _ks(n))


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, float("inf")])
def test_all_equal(path, value):
    t = torch.full((1 << 18,), value)
    check([t], [1, 1 << 17, (1 << 18) - 1, 1 << 18])


def test_all_equal_overflows_and_falls_back():
    _native._set_magnitude_path(0)
    before = _fallbacks()
    t = torch.full((1 << 18,), 0.25)
    check([t], [1 << 17])  # every key is a candidate: the buffers overflow
    assert _fallbacks() > before


def test_heavy_ties_at_the_threshold(path):
    gen = torch.Generator().manual_seed(1)
    t = torch.round(torch.randn(1 << 18, generator=gen) * 4) / 4  # ~20 distinct values
    check([t], _ks(t.numel()))


@pytest.mark.parametrize("frac_small", [0.001, 0.3, 0.5, 0.97])
def test_two_valued(path, frac_small):
    gen = torch.Generator().manual_seed(2)
    n = 1 << 18
    t = torch.where(torch.rand(n, generator=gen) < frac_small, 0.5, -2.0)
    check([t], _ks(n))


@pytest.mark.parametrize("zeros", [0.5, 0.6])
def test_weights_already_pruned(path, zeros):
    # Many exact zeros (+0.0 and -0.0): at a sparsity up to the zero fraction the threshold is 0.
    gen = torch.Generator().manual_seed(3)
    n = 1 << 18
    t = torch.randn(n, generator=gen)
    t[torch.rand(n, generator=gen) < zeros] = 0.0
    t[::7][t[::7] == 0] = -0.0
    before = _fallbacks()
    check([t], [n // 2, int(zeros * n) - 5, int(zeros * n) + 5, int(0.9 * n)])
    if path != "radix":  # zeros are counted, not compacted: no overflow
        assert _fallbacks() == before


@pytest.mark.parametrize("order", ["ascending", "descending", "ascending_signs"])
def test_sorted_data(path, order):
    # Stride samples of sorted data are not random; the tie order must not depend on it either.
    gen = torch.Generator().manual_seed(4)
    n = (1 << 18) + 333
    t = torch.sort(torch.randn(n, generator=gen).abs(), descending=order == "descending").values
    if order == "ascending_signs":
        t[1::2] *= -1
    ts = list(torch.split(t.clone(), [n // 3, n // 3, n - 2 * (n // 3)]))
    check(ts, _ks(n))


def test_periodic_data_biases_the_sample(path):
    # Period 64 with one large value: a stride sample may see the large value only.
    n = 1 << 18
    t = torch.full((n,), 1e-3)
    t[::64] = 5.0
    t[1::64] = 7.0
    check([t], _ks(n))


def _sample_positions(n):
    """The places csrc/magnitude.cpp samples (sample_keys): 8 consecutive keys at each of
    min(4096, n // 128) evenly spaced places."""
    groups = min(4096, n // 128)
    return [(2 * (j // 8) + 1) * n // (2 * groups) + j % 8 for j in range(8 * groups)]


@pytest.mark.parametrize("sample_value", [1e30, 1e-30])
def test_crafted_miss_falls_back(path, sample_value):
    # Every sampled key is an outlier, so the bracket sits far from the k-th key: it must miss, and
    # the radix select must then give the exact answer.
    n = (1 << 18) + 17
    gen = torch.Generator().manual_seed(5)
    t = torch.rand(n, generator=gen) + 1.0
    t[torch.tensor(_sample_positions(n))] = sample_value
    before = _fallbacks()
    check([t], [n // 2])
    if path != "radix":
        assert _fallbacks() - before == 2  # one threshold, one prune


def test_special_values(path):
    gen = torch.Generator().manual_seed(6)
    n = 1 << 18
    t = torch.randn(n, generator=gen)
    pick = torch.randint(0, n, (n // 4,), generator=gen)
    specials = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-45, -1e-45, 1e-40,
                             -3e-39, 1.1754942e-38, 1.17549435e-38, 3.4028235e38])
    t[pick] = specials[torch.randint(0, specials.numel(), (pick.numel(),), generator=gen)]
    check([t], _ks(n) + [n - 10, n - 1000])


def test_denormals_only(path):
    gen = torch.Generator().manual_seed(7)
    bits = torch.randint(0, 1 << 23, (1 << 18,), generator=gen, dtype=torch.int32)
    t = bits.view(torch.float32).clone()  # every value subnormal or zero
    t[::3] *= -1
    check([t], _ks(t.numel()))


def test_many_small_and_empty_segments(path):
    gen = torch.Generator().manual_seed(8)
    sizes = torch.randint(0, 600, (1500,), generator=gen).tolist()
    for i in range(0, 1500, 37):
        sizes[i] = 0
    ts = [torch.randn(s, generator=gen) * (1 + i % 5) for i, s in enumerate(sizes)]
    check(ts, _ks(sum(sizes)))


def test_ties_straddle_chunks(path):
    # One value fills the middle of the list, across the 4 chunks' boundaries; the rest is random.
    gen = torch.Generator().manual_seed(9)
    n = 1 << 19
    t = torch.randn(n, generator=gen)
    t[n // 8: 7 * n // 8: 2] = 0.75
    ts = list(torch.split(t.clone(), [100, n // 2 - 100, n // 2]))
    k_below = int((_keys(ts) < _keys([torch.tensor([0.75])])[0]).sum())
    check(ts, [k_below + 1, k_below + 1000, k_below + n // 8, k_below + 3 * n // 8])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("op", ["threshold", "prune"])
def test_nan_raises_and_leaves_buffers_untouched(path, where, op):
    gen = torch.Generator().manual_seed(10)
    ts = [torch.randn(1 << 17, generator=gen) for _ in range(3)]
    idx = {"first": 0, "middle": 1, "last": 2}[where]
    ts[idx][12345] = float("nan")
    before = [t.clone() for t in ts]
    with pytest.raises(ValueError, match="NaN"):
        if op == "threshold":
            native_kth(ts, (3 << 17) // 2)
        else:
            native_prune(ts, (3 << 17) // 2)
    for t, b in zip(ts, before):
        assert torch.equal(t.view(torch.int32), b.view(torch.int32))


def test_nan_in_an_overflowing_input_raises():
    _native._set_magnitude_path(0)
    t = torch.full((1 << 18,), 2.0)
    t[-1] = float("nan")
    before = t.clone()
    with pytest.raises(ValueError, match="NaN"):
        native_prune([t], 1 << 17)
    assert torch.equal(t.view(torch.int32)[:-1], before.view(torch.int32)[:-1])


def test_ops_api_uses_the_same_kernels(path):
    # Through the public ops (torch's thread count) as well.
    gen = torch.Generator().manual_seed(11)
    ts = [torch.randn(70000, generator=gen), torch.randn(3, generator=gen)]
    for s in (0.5, 0.9, 0.99):
        k = ops.prune_count(70003, s)
        assert ops.magnitude_threshold(ts, s, backend="native") == _ref_kth(ts, k)
        work = [t.clone() for t in ts]
        masks = ops.magnitude_prune_(work, s, backend="native")
        for m, r in zip(masks, _ref_masks(ts, k)):
            assert torch.equal(m.reshape(-1), r)
