"""One contract suite over every kernel backend, the torch reference (``"torch"``) included: each
must equal an independent brute-force expectation computed here from the definition (a two-key
sort by (|w|, position) in numpy, tile L1 norms in float64), so a bug in the reference fails too.
Pruning by score has its own suite of the same kind, tests/test_score_prune.py.
"""
import math
import os

import numpy as np
import pytest
import torch

from hpo_bench import ops
from hpo_bench.ops import dispatch

BACKENDS = list(ops.available_backends())
_BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def test_backends_present_when_required():
    # CI sets HPO_BENCH_REQUIRE_NATIVE=1 (and runs with TRITON_INTERPRET=1), so a broken C++ build
    # or a missing Triton fails the suite instead of silently skipping that backend's tests.
    if os.environ.get("HPO_BENCH_REQUIRE_NATIVE") == "1":
        assert "native" in BACKENDS, dispatch.load_error("native")
        if os.environ.get("TRITON_INTERPRET") == "1":
            assert "triton" in BACKENDS, dispatch.load_error("triton")


def test_public_names_do_not_expose_the_backend_protocol():
    # A protocol ``prune_`` next to ``magnitude_prune_`` (or ``kth_magnitude`` next to
    # ``magnitude_threshold``) could not be told apart: they live in ops.reference only.
    assert set(ops.__all__) == {
        "SCORE_GROUPS", "SPARSE_FORMATS", "SUPPORTED_DTYPES", "SparseWeight", "available_backends",
        "backend_for", "block_prune_", "magnitude_prune_", "magnitude_threshold", "nm_prune_",
        "prune_count", "score_prune_", "score_threshold", "sddmm", "sparse_linear", "to_sparse",
    }
    for name in ("kth_magnitude", "prune_", "nm_mask_prune_", "score_kth", "ref_sparse_linear"):
        assert not hasattr(ops, name), name


def _rand(shape, dtype, gen):
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(dtype)


def _device(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- brute force
# The expectations below follow the definition in hpo_bench/ops/__init__.py, with none of the
# reference's code: magnitudes as exact float64 values, and an explicit two-key sort.
def _magnitudes(tensors):
    """Every |w| as an exact float64 (float16/bfloat16/float32 all widen exactly), tensors in
    order, each row-major."""
    return np.concatenate([t.detach().cpu().float().abs().reshape(-1).numpy().astype(np.float64)
                           for t in tensors])


def _pruning_order(mags):
    """Positions sorted by (|w|, position): np.lexsort's last key is the primary one."""
    return np.lexsort((np.arange(mags.size), mags))


def _brute_force_prune(tensors, k):
    """(masks, pruned weights) of pruning the first k weights of the (|w|, position) order."""
    keep = np.ones(sum(t.numel() for t in tensors), dtype=bool)
    keep[_pruning_order(_magnitudes(tensors))[:k]] = False
    masks, values, start = [], [], 0
    for t in tensors:
        mask = torch.from_numpy(keep[start : start + t.numel()].copy()).reshape(t.shape)
        start += t.numel()
        masks.append(mask)
        values.append(torch.where(mask, t, torch.zeros((), dtype=t.dtype)))  # pruned: +0.0
    return masks, values


def _brute_force_nm(t, n, m):
    """(mask, pruned tensor): in each group of m along the last dim, prune the m - n first of the
    (|w|, position) order."""
    groups = t.detach().float().abs().reshape(-1, m).numpy().astype(np.float64)
    keep = np.ones(groups.shape, dtype=bool)
    for g, row in enumerate(groups):
        order = sorted(range(m), key=lambda j: (row[j], j))
        keep[g, order[: m - n]] = False
    mask = torch.from_numpy(keep).reshape(t.shape)
    return mask, torch.where(mask, t, torch.zeros((), dtype=t.dtype))


def _assert_same_bits(a, b):
    """Equal bit for bit: +0.0 and -0.0 differ here (a pruned weight is +0.0)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a.contiguous().view(_BITS[a.dtype]), b.contiguous().view(_BITS[b.dtype]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ops.SUPPORTED_DTYPES)
@pytest.mark.parametrize("sparsity", [0.0, 0.13, 0.5, 0.9, 1.0])
def test_global_prune_matches_brute_force(backend, dtype, sparsity):
    gen = torch.Generator().manual_seed(7)
    shapes = [(37, 11), (5,), (3, 7, 9), (0, 4), (129,)]
    tensors = [_rand(s, dtype, gen) for s in shapes]
    tensors[0][3, :5] = tensors[2][1, 2, :5] = 0.75  # ties across tensors
    tensors[4][:7] = -0.0
    k = ops.prune_count(sum(t.numel() for t in tensors), sparsity)
    expected_masks, expected_values = _brute_force_prune(tensors, k)
    work = [t.clone().to(_device(backend)) for t in tensors]
    masks = ops.magnitude_prune_(work, sparsity, backend=backend)
    assert sum(int((~m).sum()) for m in masks) == k
    for m, em, w, ev in zip(masks, expected_masks, work, expected_values):
        assert m.dtype == torch.bool and m.shape == em.shape
        assert torch.equal(m.cpu(), em)
        _assert_same_bits(w.cpu(), ev)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ops.SUPPORTED_DTYPES)
def test_threshold_matches_brute_force(backend, dtype):
    gen = torch.Generator().manual_seed(3)
    tensors = [_rand((101, 3), dtype, gen), _rand((17,), dtype, gen)]
    tensors[1][:4] = float("-inf")
    ascending = np.sort(_magnitudes(tensors))
    for s in (0.01, 0.37, 0.9, 1.0):
        k = ops.prune_count(320, s)
        assert ops.magnitude_threshold(tensors, s, backend=backend) == ascending[k - 1]
    assert ops.magnitude_threshold(tensors, 0.0, backend=backend) == -math.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_zeros_and_infinities(backend):
    # Ties at the threshold: the lowest positions (tensor order, then row-major) are pruned first.
    a = torch.tensor([1.0, -1.0, 0.0, 2.0, 1.0])
    b = torch.tensor([[float("inf"), -0.0], [1.0, -float("inf")]])
    work = [a.clone(), b.clone()]
    masks = ops.magnitude_prune_(work, 5 / 9, backend=backend)  # k = 5
    # order: zeros (a[2], b[0,1]) then the 1s by position: a[0], a[1], a[4] | b[1,0] kept
    assert masks[0].tolist() == [False, False, False, True, False]
    assert masks[1].tolist() == [[True, False], [True, True]]
    assert ops.magnitude_threshold([a, b], 8 / 9, backend=backend) == float("inf")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_raises(backend):
    t = torch.randn(50)
    t[17] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ops.magnitude_prune_([t], 0.5, backend=backend)
    with pytest.raises(ValueError, match="NaN"):
        ops.magnitude_threshold([t], 0.5, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ops.SUPPORTED_DTYPES)
def test_nm_matches_brute_force(backend, dtype):
    gen = torch.Generator().manual_seed(11)
    t = _rand((13, 24), dtype, gen)
    t[0, :4] = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=dtype)  # a tied group
    t[1, :6] = torch.tensor([-2.0, 0.5, 2.0, -0.5, 0.0, -0.0], dtype=dtype)  # tied pairs
    for n, m in ((2, 4), (1, 4), (4, 8), (0, 2), (3, 3)):
        expected_mask, expected = _brute_force_nm(t, n, m)
        work = t.clone().to(_device(backend))
        mask = ops.nm_prune_(work, n, m, backend=backend)
        assert mask.dtype == torch.bool and torch.equal(mask.cpu(), expected_mask)
        _assert_same_bits(work.cpu(), expected)
        assert int(mask.reshape(-1, m).sum(1).min()) == n


def test_nm_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of 4"):
        ops.nm_prune_(torch.randn(3, 6), 2, 4)
    with pytest.raises(ValueError, match="n <= m"):
        ops.nm_prune_(torch.randn(3, 8), 5, 4)


def test_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="sparsity"):
        ops.magnitude_prune_([torch.randn(4)], 1.5)
    with pytest.raises(ValueError, match="contiguous"):
        ops.magnitude_prune_([torch.randn(4, 6).t()], 0.5)
    with pytest.raises(ValueError, match="dtype"):
        ops.magnitude_prune_([torch.randn(4).double()], 0.5)
    with pytest.raises(ValueError, match="empty"):
        ops.magnitude_prune_([], 0.5)


def test_forced_missing_backend_fails_loudly(monkeypatch):
    monkeypatch.setenv("HPO_BENCH_BACKEND", "nonsense")
    with pytest.raises(RuntimeError, match="HPO_BENCH_BACKEND"):
        ops.magnitude_prune_([torch.randn(4)], 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_masks_match_torch_prune_global_unstructured(backend):
    # torch's own pruning agrees with ours wherever there are no ties (random weights).
    import torch.nn.utils.prune as tprune

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(33, 65), torch.nn.ReLU(), torch.nn.Linear(65, 7))
    params = [(model[0], "weight"), (model[2], "weight")]
    weights = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.7)
    ours = ops.magnitude_prune_(weights, 0.7, backend=backend)
    assert torch.equal(ours[0], model[0].weight_mask.bool())
    assert torch.equal(ours[1], model[2].weight_mask.bool())


def _brute_force_blocks(tensors, sparsity, bh, bw):
    """Masks of block pruning by its definition: every tensor as 2-D [rows, rest], cut into
    (bh, bw) tiles (smaller at the edges); tiles ordered by (L1 norm in float64, position: tensors
    in order, tiles row-major); the first round(sparsity * tiles) are pruned."""
    tiles = []  # (L1 norm, tensor index, first row, first column), in position order
    for i, t in enumerate(tensors):
        w = t.detach().float().reshape(t.shape[0], -1).numpy().astype(np.float64)
        for r in range(0, w.shape[0], bh):
            for c in range(0, w.shape[1], bw):
                tiles.append((np.abs(w[r : r + bh, c : c + bw]).sum(), i, r, c))
    order = sorted(range(len(tiles)), key=lambda j: (tiles[j][0], j))
    masks = [np.ones((t.shape[0], t[0].numel() if t.shape[0] else 0), dtype=bool) for t in tensors]
    for j in order[: round(sparsity * len(tiles))]:
        _, i, r, c = tiles[j]
        masks[i][r : r + bh, c : c + bw] = False
    return [torch.from_numpy(m).reshape(t.shape) for m, t in zip(masks, tensors)], len(tiles)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("block", [(4, 4), (2, 3)])
def test_block_prune_zeroes_the_smallest_tiles(backend, sparsity, block):
    gen = torch.Generator().manual_seed(5)
    a, b = _rand((10, 12), torch.float32, gen), _rand((8, 9), torch.float32, gen)
    c = _rand((4, 2, 3), torch.float32, gen)  # block pruning sees it as (4, 6)
    # Ties of 4 x 4 tiles, also between full and edge tiles: a[0:4, 4:8] (16 x 0.5) and a[8:10, 0:4]
    # (8 x 1.0) both have L1 norm 8, as do b[0:4, 8:9] (4 x -2.0) and c[0:4, 4:6] (8 x 1.0).
    a[0:4, 4:8] = 0.5
    a[8:10, 0:4] = 1.0
    b[0:4, 8:9] = -2.0
    c.reshape(4, 6)[:, 4:6] = 1.0
    tensors = [a, b, c]
    bh, bw = block
    expected, n_tiles = _brute_force_blocks(tensors, sparsity, bh, bw)
    assert n_tiles == {(4, 4): 9 + 6 + 2, (2, 3): 20 + 12 + 4}[block]
    work = [t.clone().to(_device(backend)) for t in tensors]
    masks = ops.block_prune_(work, sparsity, block, backend=backend)
    for m, e, w, t in zip(masks, expected, work, tensors):
        assert m.dtype == torch.bool and m.shape == t.shape
        assert torch.equal(m.cpu(), e)  # exactly these tiles, no others
        assert torch.equal(w.cpu(), torch.where(e, t, torch.zeros(())))
    pruned_tiles = sum(_tile_states(m.cpu(), bh, bw).count(False) for m in masks)
    assert pruned_tiles == ops.prune_count(n_tiles, sparsity)


def _tile_states(mask, bh, bw):
    """Per tile of a mask (as 2-D, row-major tiles): True kept, False pruned; a tile half kept
    fails the test."""
    m = mask.reshape(mask.shape[0], -1)
    states = []
    for r in range(0, m.shape[0], bh):
        for c in range(0, m.shape[1], bw):
            tile = m[r : r + bh, c : c + bw]
            assert bool(tile.all()) or not bool(tile.any()), (r, c)
            states.append(bool(tile.all()))
    return states
