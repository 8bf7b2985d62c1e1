import pytest
import torch
from torch import nn

from hpo_bench.compression.pruning import model_size_bytes, parse_pattern, prune_model


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Conv2d(2, 4, 3), nn.Linear(32, 8))


def _weights(m):
    return [m[0].weight, m[2].weight, m[3].weight]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 1.0])
def test_unstructured_global_prunes_exactly_k(sparsity):
    m = _model()
    n = sum(w.numel() for w in _weights(m))
    before = [w.detach().clone() for w in _weights(m)]
    res = prune_model(m, "unstructured", sparsity)
    zeros = sum(int((w == 0).sum()) for w in _weights(m))
    assert zeros == round(sparsity * n) and res.sparsity == pytest.approx(zeros / n)
    kept = torch.cat([w.detach().abs().flatten()[mask.flatten()] for w, mask in zip(_weights(m), res.masks)])
    # Global pruning keeps the n - k largest magnitudes over all layers, untouched.
    largest = torch.cat([b.abs().flatten() for b in before]).sort().values[round(sparsity * n):]
    assert torch.equal(kept.sort().values, largest)
    for w, b, mask in zip(_weights(m), before, res.masks):
        assert torch.equal(w.detach()[mask], b[mask])
    assert m[0].bias.ne(0).all()  # biases are not pruned


def test_unstructured_layer_prunes_each_layer():
    m = _model()
    prune_model(m, "unstructured-layer", 0.5)
    for w in _weights(m):
        assert int((w == 0).sum()) == round(0.5 * w.numel())


def test_nm_pattern_skips_layers_it_cannot_group():
    m = _model()
    res = prune_model(m, "2:4", 0.9)  # sparsity is ignored for N:M
    assert int((m[0].weight == 0).sum()) == m[0].weight.numel() // 2
    assert any("fan-in 18" in s for s in res.skipped)  # conv 2*3*3 = 18 is not a multiple of 4
    assert int((m[2].weight == 0).sum()) == 0


def test_block_pattern_zeroes_whole_tiles():
    m = _model()
    prune_model(m, "block4", 0.5)
    w = m[0].weight.detach()  # 32 x 16 -> 8 x 4 tiles
    tiles = w.reshape(8, 4, 4, 4).permute(0, 2, 1, 3).reshape(32, 16)
    per_tile = (w.reshape(8, 4, 4, 4) != 0).sum(dim=(1, 3))
    assert set(per_tile.unique().tolist()) <= {0, 16}
    assert tiles.numel() == w.numel()


@pytest.mark.parametrize("bad", ["dense", "5:4", "0:4", "block0", "blockx"])
def test_bad_patterns_are_named(bad):
    with pytest.raises(ValueError, match="pattern"):
        parse_pattern(bad)


def test_size_bytes_shrinks_with_sparsity():
    m = _model()
    dense = model_size_bytes(m, _weights(m))
    assert dense == sum(p.numel() * 4 for p in m.parameters())
    prune_model(m, "unstructured", 0.9)
    assert model_size_bytes(m, [w.data for w in _weights(m)]) < 0.5 * dense
