"""The sampled-bracket path of the Triton k-th magnitude (kernels/select.py): one bracketed pass,
the radix select over the candidates, and the fallback to the radix select over everything when
the bracket misses. Checked against an independent reference (float64 sort of every |w|) and
against the radix select's full state ``[key, r, equal, NaNs]``.

Runs under the Triton interpreter without CUDA (TRITON_INTERPRET=1, set here before Triton is
imported). The module settings are shrunk so that a few thousand keys take the bracket (a small
sample, small blocks and chunks: every loop and program boundary is crossed).
"""
import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from hpo_bench import kernels, ops  # noqa: E402
from hpo_bench.kernels import _common, select  # noqa: E402
from hopper import compile_for_hopper  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(autouse=True)
def small_settings(monkeypatch):
    monkeypatch.setattr(_common, "BLOCK", 256)
    monkeypatch.setattr(_common, "CHUNK", 1024)
    monkeypatch.setattr(select, "BRACKET_MIN_N", 0)
    monkeypatch.setattr(select, "SAMPLE_PLACES", 64)
    monkeypatch.setattr(select, "BRACKET", True)
    select.counters.clear()


def _ref(tensors, k):
    """The k-th smallest |w| by a float64 sort of every magnitude (widening is exact)."""
    mags = torch.cat([t.detach().cpu().double().abs().reshape(-1) for t in tensors])
    return float(torch.sort(mags).values[k - 1])


def _kth(tensors, k, path=None):
    """kernels.kth_magnitude == the reference; ``path`` ("bracket"/"fallback"): the one it took."""
    before = dict(select.counters)
    got = kernels.kth_magnitude([t.to(DEV) for t in tensors], k)
    want = _ref(tensors, k)
    assert got == want or (got != got and want != want), (k, got, want)
    taken = [p for p in ("bracket", "fallback", "radix") if select.counters[p] != before.get(p, 0)]
    assert len(taken) == 1
    if path is not None:
        assert taken[0] == path, (k, taken)
    return taken[0]


def _state(tensors, k):
    """select.select gives radix_select's state, and leaves it in batch.state."""
    work = [t.to(DEV) for t in tensors]
    batch = _common.make_batch(work, None, k)
    got = select.select(batch, work, k)
    assert batch.state.tolist() == got
    want = select.radix_select(_common.make_batch(work, None, k))
    assert got == want, (k, got, want)
    return got


def _rand(n, dtype, gen, scale=1.0):
    return (torch.randn(n, generator=gen) * scale).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_takes_the_bracket(dtype):
    gen = torch.Generator().manual_seed(11)
    tensors = [_rand(1500, dtype, gen), torch.empty(0, dtype=dtype), _rand((3, 700), dtype, gen),
               torch.empty((0, 4), dtype=dtype), _rand(1, dtype, gen)]
    n = sum(t.numel() for t in tensors)
    for k in (1, 2, 77, n // 3, n // 2 + 1, n - 1, n):
        _kth(tensors, k, "bracket")
    assert select.counters["fallback"] == 0


def test_random_state_equals_radix():
    gen = torch.Generator().manual_seed(12)
    tensors = [_rand(2000, torch.float32, gen), _rand(1700, torch.float32, gen)]
    tensors[1][100:400] = 0.75  # a run of ties inside the bracket: r < equal
    n = 3700
    for k in (1, 500, 1850, 2900, n):
        _state(tensors, k)
    assert select.counters["fallback"] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sorted_and_reverse_sorted(dtype):
    gen = torch.Generator().manual_seed(13)
    x = torch.sort(torch.randn(3300, generator=gen).abs()).values
    for data in (x, x.flip(0), -x):
        tensors = [data[:1000].to(dtype), data[1000:].to(dtype)]
        for k in (1, 1650, 3300):
            _kth(tensors, k, "bracket")


def test_all_equal_overflows_then_falls_back():
    # Every key is a candidate: more than the buffer holds, so the radix select answers.
    t = torch.full((8192,), -0.5)
    for k in (1, 4096, 8192):
        _kth([t], k, "fallback")
    assert _state([t], 3000) == [int(np.float32(0.5).view(np.int32)), 3000, 8192, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_heavy_ties(dtype):
    gen = torch.Generator().manual_seed(14)
    vals = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0, float("inf"), -float("inf")])
    tensors = [vals[torch.randint(0, 7, (n,), generator=gen)].to(dtype)
               for n in (2500, 0, 333, 1777)]
    n = sum(t.numel() for t in tensors)
    for k in (1, 3000, n):
        _kth(tensors, k)
    for k in (5, 2345, 4500):
        _state(tensors, k)


def test_zeros_from_earlier_pruning_are_counted_not_candidates():
    # 60% zeros (+0.0 and -0.0): lo == 0, the zeros are counted below the bracket, and a k inside
    # them is answered 0 by the bracket itself.
    gen = torch.Generator().manual_seed(15)
    w = torch.randn(5000, generator=gen)
    w[torch.randperm(5000, generator=gen)[:3000]] = 0.0
    w[:50] = -0.0
    zeros = int((w == 0).sum())
    for k in (1, zeros - 1, zeros):
        _kth([w], k, "bracket")
    assert _state([w], 2000) == [0, 2000, zeros, 0]
    for k in (zeros + 1, 4000, 5000):
        _kth([w], k)
        _state([w], k)


def test_signed_zero_and_inf():
    gen = torch.Generator().manual_seed(16)
    w = torch.randn(4000, generator=gen)
    w[::97] = -0.0
    w[5::89] = float("inf")
    w[7::83] = -float("inf")
    n_inf = int(w.isinf().sum())
    for k in (1, 2000, 4000 - n_inf, 4000 - n_inf + 1):
        _kth([w], k)
    for k in (10, 4000 - n_inf + 1, 4000):
        _state([w], k)
    assert kernels.kth_magnitude([w.to(DEV)], 4000) == float("inf")
    assert kernels.kth_magnitude([w.to(DEV)], 1) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("outlier", ["large", "zero", "tiny"])
def test_outliers_at_the_sampled_places_miss(dtype, outlier):
    # Every sampled key is an outlier: the bracket is built around keys the rest of the data does
    # not have, so rank k cannot be inside it; the radix select must answer (and be right).
    gen = torch.Generator().manual_seed(17)
    tensors = [_rand(2600, torch.float32, gen, 1e-2), torch.empty(0),
               _rand(1900, torch.float32, gen, 1e-2)]
    pos = select.sampled_positions(tensors)
    assert pos.size > 0
    flat = torch.cat([t.reshape(-1) for t in tensors])
    value = {"large": 100.0, "zero": 0.0, "tiny": 1e-4}[outlier]
    spread = torch.rand(pos.size, generator=gen) * (outlier != "zero")
    flat[torch.from_numpy(pos.reshape(-1))] = value * (1 + spread)
    flat = flat.abs() * torch.where(torch.rand(flat.numel(), generator=gen) < 0.5, -1.0, 1.0)
    tensors = [flat[:2600].to(dtype), torch.empty(0, dtype=dtype), flat[2600:].to(dtype)]
    n = flat.numel()
    _kth(tensors, n // 2, "fallback")
    _kth(tensors, n // 3, "fallback")
    # At the ends the sample is not misleading (e.g. the largest keys are the large outliers):
    # whichever path answers, the answer is exact.
    _kth(tensors, 1)
    _kth(tensors, n)


def test_mixed_dtypes_take_the_bracket():
    gen = torch.Generator().manual_seed(18)
    tensors = [_rand(700, torch.float32, gen), _rand(1300, torch.bfloat16, gen),
               torch.empty(0, dtype=torch.float16), _rand((5, 199), torch.float16, gen)]
    tensors[1][:50] = 1.0
    tensors[3][0, :30] = 1.0
    tensors[0][:20] = 1.0
    n = sum(t.numel() for t in tensors)
    for k in (1, n // 2, n):
        _kth(tensors, k, "bracket")
    _state(tensors, n // 2)


@pytest.mark.parametrize("where", ["sampled", "unsampled"])
def test_nan_raises_as_the_radix_select(where, monkeypatch):
    gen = torch.Generator().manual_seed(19)
    tensors = [torch.randn(1800, generator=gen), torch.randn(1200, generator=gen)]
    pos = set(select.sampled_positions(tensors).reshape(-1).tolist())
    at = min(pos) if where == "sampled" else min(set(range(3000)) - pos)
    tensors[at // 1800][at % 1800] = float("nan")
    tensors[1][-1] = float("nan")
    msgs = []
    for bracket in (True, False):
        monkeypatch.setattr(select, "BRACKET", bracket)
        for k in (1, 1500, 3000):
            with pytest.raises(ValueError, match="NaN") as e:
                kernels.kth_magnitude([t.to(DEV) for t in tensors], k)
            msgs.append(str(e.value))
    assert len(set(msgs)) == 1 and "(2 values)" in msgs[0]
    # Found by the bracketed pass itself (no fallback), and by the radix select's first pass.
    assert dict(select.counters) == {"bracket": 3, "radix": 3}


def test_ops_threshold_takes_the_bracket():
    gen = torch.Generator().manual_seed(20)
    tensors = [torch.randn(2100, generator=gen), torch.randn(3, 400, generator=gen)]
    for sparsity in (0.5, 0.9, 0.99):
        got = ops.magnitude_threshold([t.to(DEV) for t in tensors], sparsity, backend="triton")
        assert got == ops.magnitude_threshold(tensors, sparsity, backend="torch")
    assert select.counters["bracket"] == 3


def test_small_inputs_and_switch_use_the_radix_select(monkeypatch):
    t = torch.randn(3000)
    monkeypatch.setattr(select, "BRACKET_MIN_N", 1 << 20)
    _kth([t], 1500, "radix")
    monkeypatch.setattr(select, "BRACKET_MIN_N", 0)
    monkeypatch.setattr(select, "BRACKET", False)
    _kth([t], 1500, "radix")
    monkeypatch.setattr(select, "BRACKET", True)
    _kth([torch.randn(100)], 50, "radix")  # too few keys for MIN_PLACES places


def test_sampled_positions_are_spread_and_in_range():
    sizes = [1000, 0, 5, 3000]
    tensors = [torch.zeros(n) for n in sizes]
    pos = select.sampled_positions(tensors)
    assert pos.shape == (31, select.SAMPLE_RUN)  # min(64, 4005 // 128) places
    assert pos.min() >= 0 and pos.max() < 4005
    starts = pos[:, 0]
    assert (np.diff(starts) > 0).all()


def test_bracket_kernels_compile_for_hopper():
    compile_for_hopper(_COMPILE_SCRIPT)


_COMPILE_SCRIPT = """
from hpo_bench.kernels import select

for src, key32, inf in [(0, True, 0x7F800000), (1, False, 0x7C00), (1, True, 0x7F800000),
                        (2, False, 0x7F80), (2, True, 0x7F800000)]:
    compile_(select._sample_kernel, {"spl_ptr": "*i64", "out_ptr": "*i32", "P": "i32"},
             dict(SRC=src, KEY32=key32, RUN=8, PB=64), 4)
    compile_(select._bracket_kernel, {"tab_ptr": "*i64", "ctl_ptr": "*i64", "cand_ptr": "*i32",
                                      "CAP": "i64"},
             dict(SRC=src, KEY32=key32, INF=inf, ALIGNED=True, BLOCK=4096), 8)
compile_(select._bounds_kernel, {"sorted_ptr": "*i32", "ctl_ptr": "*i64", "IA": "i32", "IB": "i32"},
         dict(HAS_LO=True, HAS_HI=True), 1)
compile_(select._cand_setup_kernel, {"ctl_ptr": "*i64", "ctab_ptr": "*i64", "k": "i64",
                                     "CAP": "i64", "CHUNK": "i64", "NROWS": "i32"},
         dict(ROWS=256), 1)
print("ok")
"""


@pytest.mark.parametrize("data", ["random", "ties"])
def test_prune_takes_the_bracket_and_keeps_the_tie_rule(data):
    """kernels.prune_ selects through the bracket too: its masks equal the torch reference's
    (ops/reference.py: exact k pruned, ties broken by lowest global position)."""
    from hpo_bench.ops import reference

    gen = torch.Generator().manual_seed(11)
    if data == "random":
        ws = [torch.randn(n, generator=gen) for n in (1500, 0, 2600)]
    else:
        ws = [torch.randint(0, 6, (n,), generator=gen).float() for n in (1500, 0, 2600)]
    k = 2300
    want = [w.clone() for w in ws]
    want_masks = reference.prune_(want, k)
    before = select.counters["bracket"]
    work = [w.clone().to(DEV) for w in ws]
    masks = kernels.prune_(work, k)
    assert select.counters["bracket"] == before + 1
    for m, wm, w, ww in zip(masks, want_masks, work, want):
        assert torch.equal(m.cpu(), wm)
        assert torch.equal(w.cpu(), ww)
