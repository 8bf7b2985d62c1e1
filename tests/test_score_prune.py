"""Pruning by score (``ops.score_prune_``, ``ops.score_threshold``) on every backend, the torch
reference included: each must equal a brute force written here from the definition alone (plain
Python: every score as an exact float, each group sorted by (score, position)), bit for bit.

Triton runs under its interpreter on CPU (TRITON_INTERPRET=1, as ``make test`` sets it), so its
cases are small; the native-only tests at the end use larger rows, both the AVX-512 and the
portable kernels, several thread counts, and data built to defeat the row kernel's sampled
brackets (sorted rows, outliers, few distinct values, extreme sparsities).
"""
import math

import pytest
import torch

from hpo_bench import ops
from hpo_bench.ops import dispatch
from hopper import compile_for_hopper

BACKENDS = list(ops.available_backends())
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
_BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def _device(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- brute force
def _groups(scores, group):
    """Each comparison group as a list of (tensor index, flat index), in position order."""
    if group == "global":
        return [[(i, j) for i, s in enumerate(scores) for j in range(s.numel())]]
    if group == "tensor":
        return [[(i, j) for j in range(s.numel())] for i, s in enumerate(scores)]
    out = []
    for i, s in enumerate(scores):
        cols = s.numel() // s.shape[0] if s.shape[0] else 0
        out += [[(i, r * cols + c) for c in range(cols)] for r in range(s.shape[0])]
    return out


def _values(scores):
    """Every score as a Python float (exact for all three dtypes); -0.0 == 0.0 in Python."""
    return [s.detach().cpu().float().reshape(-1).tolist() for s in scores]


def _brute_force(scores, sparsity):
    def run(group):
        vals = _values(scores)
        keep = [[True] * s.numel() for s in scores]
        kth = []
        for members in _groups(scores, group):
            k = round(sparsity * len(members))
            order = sorted(members, key=lambda p: (vals[p[0]][p[1]], p))
            for i, j in order[:k]:
                keep[i][j] = False
            kth.append(vals[order[k - 1][0]][order[k - 1][1]] if k else -math.inf)
        masks = [torch.tensor(m, dtype=torch.bool).reshape(s.shape) for m, s in zip(keep, scores)]
        return masks, kth

    return run


def _expected_kth(scores, group, kth):
    """The brute force's per-group k-th values shaped as score_threshold returns them."""
    if group == "global":
        return [torch.tensor(kth[0]) for _ in scores]
    if group == "tensor":
        return [torch.tensor(v) for v in kth]
    out, start = [], 0
    for s in scores:
        out.append(torch.tensor(kth[start : start + s.shape[0]], dtype=torch.float32))
        start += s.shape[0]
    return out


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(_BITS[a.dtype]), b.contiguous().view(_BITS[b.dtype]))


def _case(dtype, seed=0):
    """Weights and scores of odd shapes with ties, zeros of both signs, and an inf."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 13), (1, 1), (3, 1000), (4, 3, 5), (0, 6), (2, 0)]
    weights = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    scores = [torch.rand(s, generator=gen) for s in shapes]
    scores[0][2] = 0.5  # a row of equal scores
    scores[0][3, ::2] = 0.0
    scores[0][3, 1::2] = -0.0
    scores[0][4, :6] = 0.25  # ties inside a row
    scores[2][1] = torch.randint(0, 3, (1000,), generator=gen).float()  # 3 distinct values
    scores[2][2, 7] = math.inf
    scores[3][1, 1] = scores[3][2, 2]  # ties across rows
    return weights, [s.to(dtype) for s in scores]


# --------------------------------------------------------------------------- every backend
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group", ops.SCORE_GROUPS)
@pytest.mark.parametrize("sparsity", [0.0, 0.13, 0.5, 1.0])
def test_score_prune_matches_brute_force(backend, dtype, group, sparsity):
    weights, scores = _case(dtype)
    expected, _ = _brute_force(scores, sparsity)(group)
    dev = _device(backend)
    work = [w.clone().to(dev) for w in weights]
    masks = ops.score_prune_(work, [s.to(dev) for s in scores], sparsity, group, backend=backend)
    assert len(masks) == len(weights)
    for i, (m, e, w, w0) in enumerate(zip(masks, expected, work, weights)):
        assert m.dtype == torch.bool and m.shape == w0.shape and m.device == w.device, i
        assert torch.equal(m.cpu(), e), f"mask of tensor {i} differs"
        assert _same_bits(w.cpu(), torch.where(e, w0, torch.zeros((), dtype=dtype))), i  # +0.0
    n = {"global": [sum(s.numel() for s in scores)], "tensor": [s.numel() for s in scores],
         "row": [s.numel() // s.shape[0] if s.shape[0] else 0 for s in scores]}[group]
    pruned = sum(int((~m).sum()) for m in masks)
    if group == "global":
        assert pruned == ops.prune_count(n[0], sparsity)
    elif group == "tensor":
        assert pruned == sum(ops.prune_count(x, sparsity) for x in n)
    else:
        assert pruned == sum(s.shape[0] * ops.prune_count(x, sparsity) for s, x in zip(scores, n))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group", ops.SCORE_GROUPS)
def test_score_threshold_matches_brute_force(backend, dtype, group):
    _, scores = _case(dtype, seed=1)
    dev = _device(backend)
    for sparsity in (0.0, 0.37, 1.0):
        _, kth = _brute_force(scores, sparsity)(group)
        got = ops.score_threshold([s.to(dev) for s in scores], sparsity, group, backend=backend)
        for g, e, s in zip(got, _expected_kth(scores, group, kth), scores):
            assert g.dtype == torch.float32 and g.device.type == dev
            assert g.shape == ((s.shape[0],) if group == "row" else ())
            assert torch.equal(g.cpu(), e.float()), (sparsity, g, e)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes_and_a_parameter(backend):
    # bf16 weights with fp32 scores and the reverse, in one list; an nn.Parameter is pruned in place.
    gen = torch.Generator().manual_seed(4)
    lin = torch.nn.Linear(11, 5)
    weights = [lin.weight, torch.randn(6, 9, generator=gen).to(torch.bfloat16)]
    scores = [torch.rand(5, 11, generator=gen).to(torch.bfloat16), torch.rand(6, 9, generator=gen)]
    original = [w.detach().clone() for w in weights]
    for group in ops.SCORE_GROUPS:
        with torch.no_grad():
            for w, o in zip(weights, original):
                w.copy_(o)
        dev = _device(backend)
        if dev != "cpu":
            weights_dev = [w.detach().to(dev) for w in weights]
        else:
            weights_dev = weights
        expected, _ = _brute_force(scores, 0.4)(group)
        masks = ops.score_prune_(weights_dev, [s.to(dev) for s in scores], 0.4, group, backend=backend)
        for m, e, w, o in zip(masks, expected, weights_dev, original):
            assert torch.equal(m.cpu(), e)
            assert torch.equal(w.detach().cpu(), torch.where(e, o, torch.zeros((), dtype=o.dtype)))


def test_wanda_rows():
    # Wanda: score = |W| * ||X_j||_2 per input feature j, compared within each output row.
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(16, 40, generator=gen)
    x = torch.randn(64, 40, generator=gen) * torch.linspace(0.1, 3, 40)
    score = w.abs() * x.norm(dim=0)
    work = w.clone()
    (mask,) = ops.score_prune_(work, score, 0.5, "row")
    assert bool((mask.sum(1) == 20).all())
    thr = ops.score_threshold(score, 0.5, "row")[0]
    assert bool((score[~mask].reshape(16, 20).amax(1) == thr).all())
    assert bool((score[mask].reshape(16, 20).amin(1) >= thr).all())


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group", ops.SCORE_GROUPS)
@pytest.mark.parametrize("bad,message", [(math.nan, "NaN"), (-0.5, "negative"), (-math.inf, "negative")])
def test_bad_scores_raise_and_change_nothing(backend, group, bad, message):
    dev = _device(backend)
    weights = [torch.randn(4, 9).to(dev), torch.randn(3, 70).to(dev)]
    scores = [torch.rand(4, 9).to(dev), torch.rand(3, 70).to(dev)]
    scores[1][2, 33] = bad  # in the last row of the last tensor: every earlier row is fine
    before = [w.clone() for w in weights]
    with pytest.raises(ValueError, match=message) as err:
        ops.score_prune_(weights, scores, 0.5, group, backend=backend)
    assert "1" in str(err.value)  # names the tensor
    for w, b in zip(weights, before):
        assert torch.equal(w, b)
    with pytest.raises(ValueError, match=message):
        ops.score_threshold(scores, 0.5, group, backend=backend)
    with pytest.raises(ValueError, match=message):  # k == 0 selects nothing but still checks
        ops.score_prune_(weights, scores, 0.0, group, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_weights_are_no_error(backend):
    dev = _device(backend)
    w = torch.tensor([[math.nan, 1.0, 2.0, 3.0]]).to(dev)
    (mask,) = ops.score_prune_(w, torch.tensor([[0.0, 1.0, 2.0, 3.0]]).to(dev), 0.5, "row", backend=backend)
    assert mask.cpu().tolist() == [[False, False, True, True]]
    assert w.cpu().tolist() == [[0.0, 0.0, 2.0, 3.0]]


def test_arguments_are_checked_at_the_door():
    w, s = torch.randn(4, 6), torch.rand(4, 6)
    with pytest.raises(ValueError, match="shape"):
        ops.score_prune_(w, torch.rand(6, 4), 0.5)
    with pytest.raises(ValueError, match="one score per weight"):
        ops.score_prune_([w, w.clone()], [s], 0.5)
    with pytest.raises(ValueError, match="group"):
        ops.score_prune_(w, s, 0.5, "column")
    with pytest.raises(ValueError, match=">= 2 dims"):
        ops.score_prune_(torch.randn(6), torch.rand(6), 0.5, "row")
    with pytest.raises(ValueError, match=">= 2 dims"):
        ops.score_threshold(torch.rand(6), 0.5, "row")
    with pytest.raises(ValueError, match="sparsity"):
        ops.score_prune_(w, s, 1.5)
    with pytest.raises(ValueError, match="sparsity"):
        ops.score_prune_(w, s, math.nan)
    with pytest.raises(ValueError, match="score tensor 0 .* not contiguous"):
        ops.score_prune_(w, torch.rand(6, 4).t(), 0.5)
    with pytest.raises(ValueError, match="weight 0 .* not contiguous"):
        ops.score_prune_(torch.randn(6, 4).t(), s, 0.5)
    with pytest.raises(ValueError, match="dtype"):
        ops.score_prune_(w, s.double(), 0.5)
    with pytest.raises(ValueError, match="empty"):
        ops.score_prune_([], [], 0.5)
    # only the scores are read to choose; the order of the checks does not matter for a good call
    (mask,) = ops.score_prune_(w, s, 0.5, "row")
    assert mask.shape == (4, 6)


def test_public_names():
    for name in ("score_prune_", "score_threshold", "SCORE_GROUPS"):
        assert name in ops.__all__
    assert not hasattr(ops, "score_kth")  # the backend protocol's name stays in the backends
    assert ops.SCORE_GROUPS == ("global", "tensor", "row")


# --------------------------------------------------------------------------- native, larger
native_only = pytest.mark.skipif(
    "native" not in BACKENDS, reason=f"native backend: {dispatch.load_error('native')}")


def _hard_rows(cols, dtype, gen):
    """Rows built against sampled brackets: random, ascending, descending, few distinct values,
    a heavy tail, all equal, a single small outlier among equals, zeros and -0.0."""
    r = torch.rand(cols, generator=gen)
    rows = [
        r,
        torch.sort(r).values,
        torch.sort(r, descending=True).values,
        torch.randint(0, 5, (cols,), generator=gen).float(),
        torch.exp(torch.randn(cols, generator=gen) * 8),
        torch.full((cols,), 0.3),
        torch.cat([torch.full((cols - 1,), 2.0), torch.tensor([1.0])]),
        torch.where(torch.rand(cols, generator=gen) < 0.5, torch.tensor(0.0), torch.tensor(-0.0)),
        torch.arange(cols, dtype=torch.float32) % 7,
    ]
    return torch.stack(rows).to(dtype)


@native_only
@pytest.mark.parametrize("simd", [True, False], ids=["simd", "portable"])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_rows_match_reference(simd, threads, dtype, monkeypatch):
    from hpo_bench.ops import native, reference

    monkeypatch.setattr(native, "SIMD", simd)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(3)
        scores = [_hard_rows(c, dtype, gen) for c in (65, 4099, 20000)]
        scores.append(torch.rand(300, 517, generator=gen).to(dtype))  # many rows: threads share them
        weights = [torch.randn(s.shape, generator=gen) for s in scores]
        for sparsity in (0.001, 0.01, 0.5, 0.77, 0.999):
            ks = [ops.prune_count(s.shape[1], sparsity) for s in scores]
            ref_w = [w.clone() for w in weights]
            ref = reference.score_prune_(ref_w, scores, "row", ks)
            work = [w.clone() for w in weights]
            masks = ops.score_prune_(work, scores, sparsity, "row", backend="native")
            for i, (m, r, w, rw) in enumerate(zip(masks, ref, work, ref_w)):
                assert torch.equal(m, r), (sparsity, i)
                assert _same_bits(w, rw), (sparsity, i)
            kth = ops.score_threshold(scores, sparsity, "row", backend="native")
            for got, want in zip(kth, reference.score_kth(scores, "row", ks)):
                assert torch.equal(got, want), sparsity
    finally:
        torch.set_num_threads(old)


@native_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_whole_groups_match_reference(dtype):
    from hpo_bench.ops import reference

    gen = torch.Generator().manual_seed(5)
    scores = [torch.rand(s, generator=gen).to(dtype) for s in ((300, 301), (17,), (70000,))]
    scores[2][::3] = 0.5  # a long run of ties across the threads' chunks
    weights = [torch.randn(s.shape, generator=gen) for s in scores]
    for group in ("global", "tensor"):
        for sparsity in (0.2, 0.6):
            ks = ([ops.prune_count(sum(s.numel() for s in scores), sparsity)] if group == "global"
                  else [ops.prune_count(s.numel(), sparsity) for s in scores])
            ref_w = [w.clone() for w in weights]
            ref = reference.score_prune_(ref_w, scores, group, ks)
            work = [w.clone() for w in weights]
            masks = ops.score_prune_(work, scores, sparsity, group, backend="native")
            for m, r, w, rw in zip(masks, ref, work, ref_w):
                assert torch.equal(m, r) and _same_bits(w, rw), (group, sparsity)
            for got, want in zip(ops.score_threshold(scores, sparsity, group, backend="native"),
                                 reference.score_kth(scores, group, ks)):
                assert torch.equal(got, want), (group, sparsity)


# --------------------------------------------------------------------------- triton, small blocks
triton_only = pytest.mark.skipif("triton" not in BACKENDS,
                                 reason=f"triton backend: {dispatch.load_error('triton')}")


@triton_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_rows_cross_blocks(dtype, monkeypatch):
    # Row blocks of 16 scores: ties and the k-th key fall across loop steps of a row program.
    from hpo_bench.kernels import score as kscore

    monkeypatch.setattr(kscore, "ROW_BLOCK", 16)
    gen = torch.Generator().manual_seed(6)
    scores = [_hard_rows(37, dtype, gen), torch.rand(3, 100, generator=gen).to(dtype)]
    dev = _device("triton")
    for sparsity in (0.05, 0.5, 0.95):
        expected, kth = _brute_force(scores, sparsity)("row")
        weights = [torch.randn(s.shape, generator=gen) for s in scores]
        work = [w.to(dev) for w in weights]
        masks = ops.score_prune_(work, [s.to(dev) for s in scores], sparsity, "row", backend="triton")
        for m, e, w, w0 in zip(masks, expected, work, weights):
            assert torch.equal(m.cpu(), e)
            assert torch.equal(w.cpu(), torch.where(e, w0, torch.zeros(())))
        got = ops.score_threshold([s.to(dev) for s in scores], sparsity, "row", backend="triton")
        for g, e in zip(got, _expected_kth(scores, "row", kth)):
            assert torch.equal(g.cpu(), e)


def test_score_kernels_compile_for_hopper():
    """Compile (no GPU needed) the score kernels for sm_90 in a process without the interpreter,
    as tests/test_triton_kernels.py does for the others: catches GPU-only lowering errors here."""
    compile_for_hopper(_COMPILE_SCRIPT)


_COMPILE_SCRIPT = """
from hpo_bench.kernels import apply, score
from hpo_bench.kernels._common import radix_plan

for src, key32 in ((0, True), (2, False), (1, True)):
    for split in (False, True):
        compile_(apply._mask_kernel, {"tab_ptr": "*i64", "state_ptr": "*i64", "before_ptr": "*i64"},
                 dict(SRC=src, KEY32=key32, SPLIT=split, ALIGNED=True, BLOCK=4096), 8)
for key16, ty, inf, bits in ((False, "*i32", 0x7F800000, 31), (True, "*i16", 0x7F80, 15)):
    plan = radix_plan(bits)
    npass = len(plan)
    plan += [(0, 1)] * (3 - len(plan))
    for write in (True, False):
        compile_(score._row_kernel,
                 {"s_ptr": ty, "mask_ptr": "*i8" if write else "*i32", "kth_ptr": "*i32",
                  "bad_ptr": "*i32", "cols": "i32", "k": "i32"},
                 dict(KEY16=key16, INF=inf, NPASS=npass, S0=plan[0][0], B0=plan[0][1],
                      S1=plan[1][0], B1=plan[1][1], S2=plan[2][0], B2=plan[2][1],
                      WRITE_MASK=write, BLOCK=2048), score.NUM_WARPS)
print("ok")
"""
