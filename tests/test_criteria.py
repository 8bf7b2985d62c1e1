"""Pruning criteria (magnitude, wanda, taylor), allocations (global, uniform, erk, owl), calibration
batches and one-shot (0-epoch) evaluation. The reference implementations here are written from the
papers' rules, independently of hpo_bench.compression."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hpo_bench import ops
from hpo_bench.compression import calibration_batches, effective_config, prune_model
from hpo_bench.compression.allocation import erk_densities, layer_counts, outlier_ratio, owl_sparsities
from hpo_bench.evaluate import CachingEvaluator, Evaluator
from hpo_bench.evaluate.base import DEFAULTS, check_config
from hpo_bench.evaluate.store import CheckpointStore, prefix_key


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


def _batches(n=3, size=20, features=16, classes=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, features, generator=g) * torch.linspace(0.1, 3, features),
             torch.randint(0, classes, (size,), generator=g)) for _ in range(n)]


def _zeros(masks):
    return [int((~m).sum()) for m in masks]


# ------------------------------------------------------------------ reference rules (from the papers)
def _wanda_reference_rowwise(weights, inputs, sparsity):
    """Sun et al. 2023: S_ij = |W_ij| * ||X_j||_2, per output row prune the int(C * s) smallest
    (the Wanda code: sort each row of W_metric, stable, zero the first int(C * s))."""
    masks = []
    for w, x in zip(weights, inputs):
        metric = w.abs() * x.norm(p=2, dim=0)[None, :]
        prune = torch.sort(metric, dim=-1, stable=True).indices[:, : int(w.shape[1] * sparsity)]
        keep = torch.ones_like(w, dtype=torch.bool)
        keep.scatter_(1, prune, False)
        masks.append(keep)
    return masks


def _mlp_layer_inputs(model, batches):
    """The inputs each Linear of ``_mlp`` sees, by a plain forward (no hooks)."""
    x = torch.cat([b[0] for b in batches])
    with torch.no_grad():
        h = F.relu(model[0](x))
    return [x, h]


def _taylor_reference(model, layers, batches):
    """Molchanov et al. 2019, first order: per batch |w * dL/dw| of the batch's mean loss, summed."""
    acc = [torch.zeros_like(layer.weight) for layer in layers]
    for x, y in batches:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for a, layer in zip(acc, layers):
            a += (layer.weight * layer.weight.grad).abs()
    model.zero_grad(set_to_none=True)
    return [a.detach() for a in acc]


def _global_smallest(scores, k):
    flat = torch.cat([s.flatten() for s in scores])
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:k]] = False
    return list(torch.split(keep, [s.numel() for s in scores]))


# ------------------------------------------------------------------ wanda
def test_wanda_masks_equal_the_papers_rule():
    batches = _batches()
    ref_model = _mlp()
    inputs = _mlp_layer_inputs(ref_model, batches)
    expected = _wanda_reference_rowwise([ref_model[0].weight.detach(), ref_model[2].weight.detach()], inputs, 0.5)
    m = _mlp()
    res = prune_model(m, "unstructured", 0.5, criterion="wanda", allocation="uniform", calibration=batches)
    for got, want in zip(res.masks, expected):
        assert torch.equal(got, want)
    assert torch.equal(m[0].weight.detach() != 0, expected[0])  # pruned in place
    assert torch.equal(m[0].weight.detach()[expected[0]], ref_model[0].weight.detach()[expected[0]])


@pytest.mark.parametrize("groups", [1, 2])
def test_wanda_conv_scores_each_input_channel_over_the_kernel_window(groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=groups)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten())
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(5, 4, 6, 6, generator=g) * torch.tensor([0.2, 1.0, 3.0, 0.5])[None, :, None, None],
                torch.zeros(5, dtype=torch.long)) for _ in range(2)]
    x = torch.cat([b[0] for b in batches])
    chan_norm = x.transpose(0, 1).reshape(4, -1).norm(dim=1)  # per input channel, over samples and positions
    w = conv.weight.detach().clone()
    per_group_in, per_group_out = 4 // groups, 6 // groups
    metric = torch.empty_like(w)
    for o in range(6):
        g_o = o // per_group_out
        for c in range(per_group_in):
            metric[o, c] = w[o, c].abs() * chan_norm[g_o * per_group_in + c]
    flat = metric.reshape(6, -1)
    row_len = flat.shape[1]  # 36 or 18: a third is whole
    expected = torch.ones_like(flat, dtype=torch.bool)
    expected.scatter_(1, torch.sort(flat, dim=1, stable=True).indices[:, : row_len // 3], False)
    res = prune_model(model, "unstructured", 1 / 3, lambda mod: isinstance(mod, nn.Conv2d), criterion="wanda",
                      allocation="uniform", calibration=batches)
    assert torch.equal(res.masks[0].reshape(6, -1), expected)


def test_wanda_spreads_a_layers_remainder_over_its_first_rows():
    m = _mlp()
    res = prune_model(m, "unstructured", 0.3, criterion="wanda", allocation="uniform", calibration=_batches())
    counts = [(~mask).sum(dim=1).tolist() for mask in res.masks]
    # layer 0: 0.3 * 512 = 153.6 -> uniform's largest remainder gives layers 154 + 77 = 231 = round(0.3 * 768)
    assert sum(map(sum, counts)) == round(0.3 * 768)
    for rows in counts:
        q, r = divmod(sum(rows), len(rows))
        assert rows == [q + 1] * r + [q] * (len(rows) - r)


def test_wanda_global_counts_follow_one_threshold_then_rows():
    batches = _batches()
    ref_model = _mlp()
    inputs = _mlp_layer_inputs(ref_model, batches)
    scores = [ref_model[i].weight.detach().abs() * x.norm(dim=0)[None, :] for i, x in zip((0, 2), inputs)]
    k = round(0.6 * 768)
    per_layer = _zeros(_global_smallest(scores, k))
    res = prune_model(_mlp(), "unstructured", 0.6, criterion="wanda", calibration=batches)
    assert _zeros(res.masks) == per_layer and sum(per_layer) == k
    for mask, score, count in zip(res.masks, scores, per_layer):  # each row: its smallest scores pruned
        for r in range(mask.shape[0]):
            pruned, kept = score[r][~mask[r]], score[r][mask[r]]
            assert pruned.numel() in (count // mask.shape[0], count // mask.shape[0] + 1)
            assert pruned.numel() == 0 or kept.numel() == 0 or pruned.max() <= kept.min()


# ------------------------------------------------------------------ taylor
@pytest.mark.parametrize("allocation", ["global", "uniform"])
def test_taylor_masks_equal_an_independent_implementation(allocation):
    batches = _batches()
    ref_model = _mlp()
    scores = _taylor_reference(ref_model, [ref_model[0], ref_model[2]], batches)
    if allocation == "global":
        expected = _global_smallest(scores, round(0.75 * 768))
    else:
        # per layer: 384 and 192, whole numbers, so uniform's counts are these
        expected = [_global_smallest([s], round(0.75 * s.numel()))[0].reshape(s.shape) for s in scores]
    expected = [e.reshape(s.shape) for e, s in zip(expected, scores)]
    m = _mlp()
    res = prune_model(m, "unstructured", 0.75, criterion="taylor", allocation=allocation, calibration=batches)
    for got, want in zip(res.masks, expected):
        assert torch.equal(got, want)
    # Scoring writes no gradient and leaves the model's mode alone.
    assert all(p.grad is None for p in m.parameters()) and m.training


def test_taylor_accumulates_absolute_values_per_batch():
    """Two batches with the same inputs and other labels: their gradients partly cancel, so
    sum_b |w g_b| (Molchanov's per-batch accumulation) differs from |w sum_b g_b|."""
    x, y = _batches(1)[0]
    batches = [(x, y), (x, (y + 3) % 8)]
    ref = _mlp()
    per_batch = _taylor_reference(ref, [ref[0], ref[2]], batches)
    summed = [a + b for a, b in zip(_taylor_reference(ref, [ref[0], ref[2]], batches[:1]),
                                    _taylor_reference(ref, [ref[0], ref[2]], batches[1:]))]
    assert all(torch.allclose(p, s) for p, s in zip(per_batch, summed))
    ref.zero_grad()
    (F.cross_entropy(ref(x), y) + F.cross_entropy(ref(x), (y + 3) % 8)).backward()
    cancelled = [(ref[i].weight * ref[i].weight.grad).abs().detach() for i in (0, 2)]
    want = [_global_smallest([s], 256)[0].reshape(32, 16) for s in (per_batch[0], cancelled[0])]
    assert not torch.equal(want[0], want[1])  # the two rules prune differently here
    res = prune_model(_mlp(), "unstructured", 0.5, criterion="taylor", allocation="uniform", calibration=batches)
    assert torch.equal(res.masks[0], want[0])


# ------------------------------------------------------------------ allocations
def test_erk_matches_the_formula_by_hand():
    # raw = sum(dims) / prod(dims): 20/100 = 0.2, 110/1000 = 0.11, 7/10 = 0.7. At S = 0.5, keep 555.
    # eps = 555 / (20 + 110 + 7) = 4.05 puts layer 3 at density 2.84 > 1: it goes dense (10 kept), then
    # eps = (555 - 10) / (20 + 110) = 545/130, densities 0.2 * 545/130 and 0.11 * 545/130.
    shapes = [(10, 10), (100, 10), (2, 5)]
    d = erk_densities(shapes, 0.5)
    assert d == pytest.approx([0.2 * 545 / 130, 0.11 * 545 / 130, 1.0])
    # pruned quotas 100 * (1 - 109/130) = 16.15, 1000 * (1 - 59.95/130) = 538.85, 0: sum 555;
    # floors 16 + 538 = 554, the one left goes to the larger remainder (.85).
    assert layer_counts("erk", shapes, 0.5) == [16, 539, 0]
    # a convolution's kernel dims count: (8 + 4 + 3 + 3) / 288 and (16 + 8) / 128; eps = 41.6 / 42
    assert erk_densities([(8, 4, 3, 3), (16, 8)], 0.9) == pytest.approx([18 / 288 * 41.6 / 42, 24 / 128 * 41.6 / 42])


def _owl_scores():
    a = torch.tensor([1.0] * 9 + [100.0])          # mean 10.9, > 54.5: 1 of 10   -> D = 0.10
    b = torch.ones(10)                              # no outliers                 -> D = 0
    c = torch.tensor([1.0] * 17 + [60.0] * 3)      # mean 9.85, > 49.25: 3 of 20 -> D = 0.15
    return [a.reshape(2, 5), b.reshape(2, 5), c.reshape(4, 5)]


def test_owl_matches_the_formula_by_hand():
    # r = (D - 0) / 0.15 * 2 * 0.08 = [0.10667, 0, 0.16]; size-weighted mean (10 r_a + 20 r_c) / 40 =
    # 0.10667; S_l = S - (r_l - mean) = [0.5, 0.60667, 0.44667]: more outliers, less pruning.
    s = owl_sparsities(_owl_scores(), 0.5, lam=0.08, m=5)
    assert s == pytest.approx([0.5, 0.5 + 0.16 / 1.5, 0.5 + 0.16 / 1.5 - 0.16])
    # quotas 5, 6.067, 8.933 (sum 20); floors 19, the last goes to the .933
    assert layer_counts("owl", [(2, 5), (2, 5), (4, 5)], 0.5, wanda=_owl_scores(), owl_lambda=0.08) == [5, 6, 9]
    assert outlier_ratio(torch.tensor([0.0, 0, 0, 0, 5]), 5) == 0  # strictly above M x mean (mean 1)
    assert outlier_ratio(torch.tensor([0.0, 0, 0, 0, 5]), 4.9) == 0.2
    # M = 100: no outliers anywhere, every D equal -> uniform
    assert owl_sparsities(_owl_scores(), 0.5, lam=0.08, m=100) == pytest.approx([0.5, 0.5, 0.5])


def test_owl_clamps_to_one_and_rebalances_the_rest():
    # S = 0.95, lambda = 0.2: r = [0.2667, 0, 0.4], mean 0.2667, S_l = [0.95, 1.2167, 0.8167]. b is
    # clamped to 1; the rest shift by (38 - 10 - 25.833) / 30: a reaches 1.022, clamped to 1; c takes
    # the remaining 18 of its 20.
    assert owl_sparsities(_owl_scores(), 0.95, lam=0.2, m=5) == pytest.approx([1.0, 1.0, 0.9])
    assert layer_counts("owl", [(2, 5), (2, 5), (4, 5)], 0.95, wanda=_owl_scores(), owl_lambda=0.2) == [10, 10, 18]


def test_uniform_gives_every_layer_its_target():
    shapes = [(7, 3), (10, 10), (5, 9), (64, 33)]
    counts = layer_counts("uniform", shapes, 0.37)
    sizes = [math.prod(s) for s in shapes]
    assert sum(counts) == round(0.37 * sum(sizes))
    assert all(math.floor(0.37 * n) <= c <= math.ceil(0.37 * n) for c, n in zip(counts, sizes))
    assert layer_counts("uniform", [(10, 10), (20, 10)], 0.3) == [30, 60]
    m = _mlp()
    res = prune_model(m, "unstructured", 0.25, allocation="uniform")  # magnitude, by layer
    assert _zeros(res.masks) == [128, 64]
    for w, mask in zip((m[0].weight, m[2].weight), res.masks):
        assert w.detach()[~mask].abs().sum() == 0


@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "taylor"])
@pytest.mark.parametrize("allocation", ["global", "uniform", "erk", "owl"])
@pytest.mark.parametrize("sparsity", [0.0, 0.37, 0.9, 1.0])
def test_every_criterion_and_allocation_prunes_exactly_the_target(criterion, allocation, sparsity):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(16, 13), nn.ReLU(), nn.Linear(13, 7), nn.ReLU(), nn.Linear(7, 8))
    res = prune_model(model, "unstructured", sparsity, criterion=criterion, allocation=allocation,
                      calibration=_batches(2))
    total = sum(w.numel() for w in res.weights)
    assert sum(_zeros(res.masks)) == round(sparsity * total)
    assert sum(int((w == 0).sum()) for w in res.weights) == round(sparsity * total)


def test_owl_and_erk_allocations_reach_the_model():
    batches = _batches()
    ref_model = _mlp()
    inputs = _mlp_layer_inputs(ref_model, batches)
    wanda = [ref_model[i].weight.detach().abs() * x.norm(dim=0)[None, :] for i, x in zip((0, 2), inputs)]
    shapes = [(32, 16), (8, 32)]
    for allocation in ("erk", "owl"):
        res = prune_model(_mlp(), "unstructured", 0.8, criterion="magnitude", allocation=allocation,
                          owl_lambda=0.1, owl_m=2, calibration=batches)
        want = layer_counts(allocation, shapes, 0.8, wanda=wanda, owl_lambda=0.1, owl_m=2)
        assert _zeros(res.masks) == want
        # magnitude within each layer: every pruned |w| <= every kept |w|
        for w, mask in zip((ref_model[0].weight.detach(), ref_model[2].weight.detach()), res.masks):
            assert w[~mask].abs().max() <= w[mask].abs().min()
    owl = layer_counts("owl", shapes, 0.8, wanda=wanda, owl_lambda=0.1, owl_m=2)
    assert owl != layer_counts("uniform", shapes, 0.8)


# ------------------------------------------------------------------ patterns
def test_nm_with_a_criterion_keeps_the_highest_scores_of_each_group_and_ignores_allocation():
    batches = _batches()
    ref_model = _mlp()
    inputs = _mlp_layer_inputs(ref_model, batches)
    scores = [ref_model[i].weight.detach().abs() * x.norm(dim=0)[None, :] for i, x in zip((0, 2), inputs)]
    masks = [prune_model(_mlp(), "2:4", 0.9, criterion="wanda", allocation=a, calibration=batches).masks
             for a in ("global", "erk")]
    for got_a, got_b, s in zip(*masks, scores):
        assert torch.equal(got_a, got_b)
        groups = s.reshape(-1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, torch.sort(groups, dim=1, stable=True).indices[:, 2:], True)
        assert torch.equal(got_a, keep.reshape(s.shape))


def test_block_with_a_criterion_prunes_tiles_of_smallest_summed_score():
    batches = _batches()
    ref_model = _mlp()
    inputs = _mlp_layer_inputs(ref_model, batches)
    scores = [ref_model[i].weight.detach().abs() * x.norm(dim=0)[None, :] for i, x in zip((0, 2), inputs)]
    tiles = [s.reshape(s.shape[0] // 4, 4, s.shape[1] // 4, 4).sum(dim=(1, 3)) for s in scores]
    k = round(0.4 * sum(t.numel() for t in tiles))
    tile_keep = _global_smallest(tiles, k)
    # the summed score decides, not, say, the largest in the tile
    maxes = [s.reshape(s.shape[0] // 4, 4, s.shape[1] // 4, 4).amax(dim=(1, 3)) for s in scores]
    assert not all(torch.equal(a, b) for a, b in zip(tile_keep, _global_smallest(maxes, k)))
    res = prune_model(_mlp(), "block4", 0.4, criterion="wanda", calibration=batches)
    for got, keep, t in zip(res.masks, tile_keep, tiles):
        want = keep.reshape(t.shape).repeat_interleave(4, 0).repeat_interleave(4, 1)
        assert torch.equal(got, want)


@pytest.mark.parametrize("cfg, match", [
    ({"pattern": "block4", "allocation": "erk"}, "global"),
    ({"pattern": "unstructured-layer", "allocation": "uniform"}, "its own allocation"),
    ({"pattern": "unstructured", "criterion": "snip"}, "criterion"),
    ({"pattern": "unstructured", "allocation": "lamp"}, "allocation"),
    ({"pattern": "unstructured", "allocation": "owl", "owl_lambda": -0.1}, "owl_lambda"),
    ({"pattern": "unstructured", "owl_m": 0}, "owl_m"),
    ({"pattern": "unstructured", "calibration_samples": 0}, "calibration_samples"),
    ({"pattern": "unstructured", "epochs": -1}, "epochs"),
])
def test_bad_pruning_options_are_named(cfg, match):
    with pytest.raises(ValueError, match=match):
        check_config({"sparsity": 0.5, "lr": 1e-3, "epochs": 1, **cfg})


def test_effective_config_hides_what_is_ignored():
    cfg = {"pattern": "unstructured", "criterion": "wanda", "allocation": "erk", "owl_lambda": 0.1}
    assert effective_config(cfg) == {k: v for k, v in cfg.items() if k != "owl_lambda"}
    assert "owl_lambda" in effective_config({**cfg, "allocation": "owl"})
    assert effective_config({**cfg, "pattern": "2:4", "sparsity": 0.9}) == {"pattern": "2:4", "criterion": "wanda"}


# ------------------------------------------------------------------ today's behaviour
@pytest.mark.parametrize("pattern", ["unstructured", "unstructured-layer", "2:4", "block4"])
def test_magnitude_with_the_default_allocation_is_todays_result_bit_for_bit(pattern):
    def never():
        pytest.fail("magnitude pruning drew calibration batches")

    today = _mlp()
    ws = [today[0].weight.data, today[2].weight.data]
    if pattern == "unstructured":
        want = ops.magnitude_prune_(ws, 0.83)
    elif pattern == "unstructured-layer":
        want = [ops.magnitude_prune_([w], 0.83)[0] for w in ws]
    elif pattern == "2:4":
        want = [ops.nm_prune_(w, 2, 4) for w in ws]
    else:
        want = ops.block_prune_(ws, 0.83, (4, 4))
    explicit = {} if pattern == "unstructured-layer" else {"allocation": "global"}
    for kwargs in ({}, {"criterion": "magnitude", **explicit}):
        m = _mlp()
        res = prune_model(m, pattern, 0.83, criterion=kwargs.get("criterion", "magnitude"),
                          allocation=kwargs.get("allocation"), calibration=never)
        for got, w_mask, w_today, w in zip(res.masks, want, ws, (m[0].weight, m[2].weight)):
            assert torch.equal(got, w_mask) and torch.equal(w.detach(), w_today)


def test_configs_without_the_new_keys_keep_their_prefix_and_result(tiny):
    cfg = {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 2, "batch_size": 256}
    checked = check_config(cfg)
    assert checked == {**DEFAULTS, **cfg}  # nothing new filled in: the cache prefix is the one it had
    before = prefix_key(tiny.fingerprint(), {**DEFAULTS, **cfg}, 0, "cpu")
    assert prefix_key(tiny.fingerprint(), checked, 0, "cpu") == before
    plain = Evaluator(tiny).evaluate(cfg)
    explicit = Evaluator(tiny).evaluate({**cfg, "criterion": "magnitude", "allocation": "global",
                                         "owl_lambda": 0.08, "owl_m": 5})
    assert plain.values == explicit.values and plain.curve == explicit.curve


# ------------------------------------------------------------------ calibration
def test_calibration_batches_are_deterministic_for_a_seed():
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(300, 5, generator=g), torch.arange(300))
    state = torch.get_rng_state()
    a = calibration_batches(data, seed=0)
    b = calibration_batches(data, seed=0)
    c = calibration_batches(data, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is not touched
    assert [len(x) for x, _ in a] == [32, 32, 32, 32]
    ids = torch.cat([y for _, y in a])
    assert len(set(ids.tolist())) == 128  # without replacement, from the given (training) split
    assert all(torch.equal(data[0][y], x) for x, y in a)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(ids, torch.cat([y for _, y in c]))
    assert sum(len(x) for x, _ in calibration_batches(data, 0, samples=500)) == 300  # all, if fewer


def test_the_evaluation_seed_decides_the_calibration(tiny):
    cfg = {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 0, "criterion": "wanda",
           "allocation": "uniform"}
    masks = [Evaluator(tiny, seed=s).start(cfg).pruned.masks for s in (0, 0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(masks[0], masks[1]))
    assert not all(torch.equal(a, b) for a, b in zip(masks[0], masks[2]))
    few = Evaluator(tiny, seed=0).start({**cfg, "calibration_samples": 4}).pruned.masks
    assert not all(torch.equal(a, b) for a, b in zip(masks[0], few))


# ------------------------------------------------------------------ one-shot
def test_one_shot_scores_the_pruned_model_without_training(tiny, tmp_path):
    from hpo_bench.evaluate.pretrained import dense_state
    from hpo_bench.evaluate.training import evaluate_accuracy

    cfg = {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 0, "batch_size": 256,
           "criterion": "wanda", "allocation": "erk"}
    seen = []
    r = Evaluator(tiny).evaluate(cfg, lambda e, v: seen.append(e))
    assert r.curve == [] and r.nominal_epochs == 0 and r.info["epochs_trained"] == 0 and seen == []
    model = tiny.model()
    model.load_state_dict(dense_state(tiny))
    ev = Evaluator(tiny)
    prune_model(model, "unstructured", 0.8, criterion="wanda", allocation="erk",
                calibration=calibration_batches(ev.data()[0], 0))
    assert r.values["accuracy"] == evaluate_accuracy(model, ev.data()[1])
    assert r.values["sparsity"] == pytest.approx(0.8, abs=1e-3)

    store = CheckpointStore(tmp_path / "cache")
    ce = CachingEvaluator(Evaluator(tiny), store)
    first, again = ce.evaluate(cfg), ce.evaluate(cfg)
    assert first.values == again.values == r.values and first.curve == again.curve == []
    assert first.info["cache"] == "one-shot" and first.info["epochs_trained"] == 0
    longer = ce.evaluate({**cfg, "epochs": 2})  # the same prefix goes on to fine-tune
    assert longer.curve == Evaluator(tiny).evaluate({**cfg, "epochs": 2}).curve and longer.info["cache"] == "miss"
    assert ce.evaluate(cfg).values == r.values


@pytest.mark.slow
def test_one_shot_runs_end_to_end_in_a_search(tiny):
    from hpo_bench import Categorical, Float, Problem, SearchSpace, search

    p = Problem(name="tiny-oneshot", model=tiny.model, train=tiny.train, val=tiny.val,
                space=SearchSpace({"criterion": Categorical(["magnitude", "wanda", "taylor"]),
                                   "allocation": Categorical(["global", "uniform", "erk", "owl"]),
                                   "owl_lambda": Float(0.01, 0.2, log=True)}),
                fixed={"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-3, "epochs": 0},
                pretrain=tiny.pretrain)
    run = search(p, "random", budget=4, seed=0)
    assert len(run.trials) == 4 and all(t.state == "COMPLETE" and t.nominal_epochs == 0 for t in run.trials)
    assert all(0.0 <= t.values[0] <= 1.0 for t in run.trials)
