"""Sparse fine-tuning (issue 17): the kernels against independent references, the layer against
dense masked training (the reference the path must equal), and the training path's place in an
evaluation's identity (the cache never mixes paths; resumed == uninterrupted on every path)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hpo_bench import ops
from hpo_bench.compression import train_path as tp
from hpo_bench.evaluate import CachingEvaluator, Evaluator
from hpo_bench.evaluate.store import CheckpointStore, prefix_key
from hpo_bench.nn import SparseTrainingLinear
from hpo_bench.ops import native, reference


def _pattern(rows, cols, density, gen, empty_rows=()):
    mask = torch.rand(rows, cols, generator=gen) < density
    for r in empty_rows:
        mask[r] = False
    w = torch.randn(rows, cols, generator=gen) * mask
    return mask, w


def _csr(mask, values=None, col_dtype=torch.int32):
    rows, cols = mask.shape
    crow = torch.zeros(rows + 1, dtype=torch.int32)
    crow[1:] = mask.sum(1).cumsum(0)
    col = mask.nonzero(as_tuple=True)[1].to(col_dtype)
    vals = torch.zeros(col.numel()) if values is None else values
    return ops.SparseWeight("csr", (rows, cols), {"crow": crow, "col": col, "values": vals}, None, torch.float32,
                            torch.device("cpu"), col.numel())


# ------------------------------------------------------------------ sddmm
SHAPES = [  # rows, cols, batch, density, empty rows
    (10, 64, 5, 0.5, ()),
    (64, 48, 64, 0.2, (0, 7)),
    (33, 70, 130, 0.3, (32,)),      # batch: two full tiles of 64 and a partial one
    (300, 17, 1, 0.1, ()),
    (16, 16, 9, 0.0, ()),           # nothing kept
]


@pytest.mark.parametrize("rows,cols,batch,density,empty", SHAPES)
@pytest.mark.parametrize("col_dtype", [torch.int16, torch.int32])
def test_native_sddmm_equals_the_dense_product_read_at_the_mask(rows, cols, batch, density, empty, col_dtype):
    gen = torch.Generator().manual_seed(rows * 1000 + batch)
    mask, _ = _pattern(rows, cols, density, gen, empty)
    g = torch.randn(batch, rows, generator=gen)
    x = torch.randn(batch, cols, generator=gen)
    pattern = _csr(mask, col_dtype=col_dtype)
    assert native.supports_sddmm(g, x, pattern)
    truth = (g.double().t() @ x.double())[mask]  # independent: float64, boolean-mask order = CSR order
    out = ops.sddmm(g, x, pattern)
    assert out.shape == (int(mask.sum()),) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), truth, rtol=1e-5, atol=1e-5 * batch ** 0.5)
    torch.testing.assert_close(reference.sddmm(g, x, pattern).double(), truth, rtol=1e-5, atol=1e-5 * batch ** 0.5)


def test_sddmm_takes_leading_dimensions_and_is_the_same_on_any_thread_count():
    gen = torch.Generator().manual_seed(1)
    mask, _ = _pattern(200, 150, 0.2, gen)
    g = torch.randn(4, 40, 200, generator=gen)  # (batch, tokens, features), as a language model's layers see
    x = torch.randn(4, 40, 150, generator=gen)
    pattern = _csr(mask)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.sddmm(g, x, pattern)
        torch.set_num_threads(2)
        two = ops.sddmm(g, x, pattern)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    truth = (g.reshape(-1, 200).double().t() @ x.reshape(-1, 150).double())[mask]
    torch.testing.assert_close(one.double(), truth, rtol=1e-5, atol=1e-4)


def test_sddmm_rejects_what_it_cannot_compute():
    pattern = _csr(torch.ones(4, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="do not fit"):
        ops.sddmm(torch.zeros(3, 5), torch.zeros(3, 6), pattern)
    with pytest.raises(TypeError, match="CSR"):
        ops.sddmm(torch.zeros(3, 4), torch.zeros(3, 6), ops.to_sparse(torch.ones(4, 6), "bitmask"))


# ------------------------------------------------------------------ the transposed product
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_csr_product_through_a_value_permutation_is_the_product_with_the_transpose(batch):
    gen = torch.Generator().manual_seed(batch)
    mask, w = _pattern(40, 90, 0.25, gen, empty_rows=(3,))
    layer = SparseTrainingLinear(w, mask)
    g = torch.randn(batch, 40, generator=gen)
    wt = layer.transposed(layer.values)
    assert wt.shape == (90, 40)
    torch.testing.assert_close(wt.to_dense(), w.t())
    torch.testing.assert_close(ops.sparse_linear(g, wt), (g.double() @ w.double()).float(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ the layer vs dense masked training
def _twins(rows, cols, density, seed, bias=True):
    gen = torch.Generator().manual_seed(seed)
    dense = nn.Linear(cols, rows, bias=bias)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(rows, cols, generator=gen))
        mask = torch.rand(rows, cols, generator=gen) < density
        dense.weight.mul_(mask)
    return dense, SparseTrainingLinear.from_linear(copy.deepcopy(dense), mask), mask


def test_one_step_gives_the_dense_gradients_at_the_kept_positions():
    dense, sparse, mask = _twins(50, 70, 0.2, 0)
    x = torch.randn(33, 70)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    t = torch.randn(33, 50)
    ((dense(xd) - t) ** 2).sum().backward()
    ((sparse(xs) - t) ** 2).sum().backward()
    torch.testing.assert_close(sparse.values.grad, dense.weight.grad[mask], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
def test_adam_training_equals_dense_masked_training(bias):
    """20 Adam steps with L2 weight decay: the reference re-applies the mask after each dense step
    (what the evaluator's dense path does). Tolerance: float32 rounding of other summation orders,
    which Adam's normalised steps carry along (measured max difference ~1e-6 at this lr)."""
    dense, sparse, mask = _twins(64, 96, 0.1, 3, bias)
    opt_d = torch.optim.Adam(dense.parameters(), lr=1e-3, weight_decay=1e-4)
    opt_s = torch.optim.Adam(sparse.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        x = torch.randn(16, 96, generator=gen)
        t = torch.randn(16, 64, generator=gen)
        for model, opt in ((dense, opt_d), (sparse, opt_s)):
            opt.zero_grad()
            nn.functional.mse_loss(torch.relu(model(x)), t).backward()
            opt.step()
        with torch.no_grad():
            dense.weight.mul_(mask)
    torch.testing.assert_close(sparse.dense_weight(), dense.weight.detach(), rtol=0, atol=1e-5)
    assert not sparse.dense_weight()[~mask].any()
    if bias:
        torch.testing.assert_close(sparse.bias, dense.bias, rtol=0, atol=1e-5)


def test_a_kept_weight_that_is_zero_stays_a_parameter():
    w = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    mask = torch.tensor([[True, True], [False, True]])  # (0, 0) kept although zero; (1, 0) pruned though 3
    layer = SparseTrainingLinear(w, mask)
    assert layer.values.tolist() == [0.0, 2.0, 0.0]
    assert layer.dense_weight().tolist() == [[0.0, 2.0], [0.0, 0.0]]


# ------------------------------------------------------------------ the plan
def test_modes_plan_every_pruned_linear(tiny):
    from hpo_bench.compression.pruning import prune_model

    model = tiny.model()
    pruned = prune_model(model, "unstructured", 0.8, tiny.prunable)
    x = torch.randn(8, 64)
    names = ["0", "2", "4"]
    assert tp.plan_training(model, pruned.weights, pruned.masks, "dense", x) == dict.fromkeys(names, "dense")
    assert tp.plan_training(model, pruned.weights, pruned.masks, "sparse", x) == dict.fromkeys(names, "sparse")
    with pytest.raises(ValueError, match="train_path"):
        tp.plan_training(model, pruned.weights, pruned.masks, "fast", x)
    with torch.no_grad():
        want = model(x)
    left = tp.apply_plan(model, pruned.weights, pruned.masks, {"2": "sparse"})
    assert left == [0, 2] and isinstance(model[2], SparseTrainingLinear) and type(model[0]) is nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not pruned"):
        tp.apply_plan(tiny.model(), pruned.weights, pruned.masks, {"9": "sparse"})


def test_auto_follows_the_measurement(tiny, monkeypatch):
    from hpo_bench.compression.pruning import prune_model

    model = tiny.model()
    pruned = prune_model(model, "unstructured", 0.8, tiny.prunable)
    seen = []

    def fake(linear, mask, rows, input_grad=True, repeats=5):
        seen.append((tuple(linear.weight.shape), rows, input_grad))
        return ("sparse" if linear.out_features == 12 else "dense"), {}

    monkeypatch.setattr(tp, "choose_train_path", fake)
    plan = tp.plan_training(model, pruned.weights, pruned.masks, "auto", torch.randn(8, 64))
    assert plan == {"0": "dense", "2": "sparse", "4": "dense"}
    # rows per step from the real forward; the first layer's input (the data) needs no gradient
    assert seen == [((16, 64), 8, False), ((12, 16), 8, True), ((10, 12), 8, True)]


def test_a_measured_choice_is_remembered_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("HPO_BENCH_CACHE", str(tmp_path))
    lin = nn.Linear(256, 256)
    mask = torch.rand(256, 256, generator=torch.Generator().manual_seed(0)) < 0.05
    first, timings = tp.choose_train_path(lin, mask, rows=32, repeats=3)
    assert set(timings) == {"dense", "sparse"} and all(v > 0 for v in timings.values())
    assert list((tmp_path / "train-paths").glob("*.json"))
    monkeypatch.setattr(tp, "time_interleaved", lambda *a, **k: pytest.fail("measured twice"))
    assert tp.choose_train_path(lin, mask, rows=32) == (first, timings)


# ------------------------------------------------------------------ evaluations
CFG = {"sparsity": 0.8, "pattern": "unstructured", "lr": 3e-3, "epochs": 3, "batch_size": 256, "weight_decay": 0.0025}


def _variant(problem, mode):
    out = copy.copy(problem)
    out.train_path = mode
    return out


def test_sparse_and_dense_evaluations_agree(tiny):
    """Same config, same seed: the sparse path's curve equals the dense one's within a sample or
    two of 539 (float rounding can flip a borderline prediction), and it reports its plan."""
    dense = Evaluator(_variant(tiny, "dense")).evaluate(CFG)
    sparse = Evaluator(_variant(tiny, "sparse")).evaluate(CFG)
    assert sparse.info["train_path"] == "sparse" and dense.info["train_path"] == "dense"
    assert Evaluator(_variant(tiny, "sparse")).start(CFG).train_plan == {"0": "sparse", "2": "sparse", "4": "sparse"}
    for a, b in zip(dense.curve, sparse.curve):
        assert abs(a - b) <= 2 / 539
    assert sparse.values["sparsity"] == dense.values["sparsity"]


@pytest.mark.parametrize("mode", ["sparse", "auto"])
def test_resumed_equals_uninterrupted_on_every_path(tiny, tmp_path, mode):
    problem = _variant(tiny, mode)
    fresh = CachingEvaluator(Evaluator(problem), CheckpointStore(tmp_path / "a")).evaluate(CFG)
    store = CheckpointStore(tmp_path / "b")
    CachingEvaluator(Evaluator(problem), store).evaluate({**CFG, "epochs": 1})
    resumed = CachingEvaluator(Evaluator(problem), store).evaluate(CFG)
    assert resumed.info["cache"] == "prefix"
    assert resumed.curve == fresh.curve  # bit for bit


def test_a_resumed_auto_run_keeps_its_plan_whatever_is_measured_later(tiny, tmp_path, monkeypatch):
    problem = _variant(tiny, "auto")
    monkeypatch.setattr(tp, "choose_train_path", lambda linear, *a, **k: ("sparse", {}))
    store = CheckpointStore(tmp_path)
    CachingEvaluator(Evaluator(problem), store).evaluate({**CFG, "epochs": 1})
    monkeypatch.setattr(tp, "choose_train_path", lambda linear, *a, **k: ("dense", {}))
    resumed = CachingEvaluator(Evaluator(problem), store).evaluate(CFG)
    everything_sparse = CachingEvaluator(Evaluator(_variant(tiny, "sparse")), CheckpointStore(tmp_path / "s")).evaluate(CFG)
    assert resumed.curve == everything_sparse.curve


def test_the_cache_never_mixes_training_paths(tiny, tmp_path):
    store = CheckpointStore(tmp_path)
    CachingEvaluator(Evaluator(_variant(tiny, "dense")), store).evaluate(CFG)
    again = CachingEvaluator(Evaluator(_variant(tiny, "dense")), store).evaluate(CFG)
    assert again.info["cache"] == "hit"
    other = CachingEvaluator(Evaluator(_variant(tiny, "sparse")), store).evaluate(CFG)
    assert other.info["cache"] == "miss"
    fp, cfg = tiny.fingerprint(), {**CFG}
    keys = {prefix_key(fp, cfg, 0, "cpu", m) for m in ("dense", "sparse", "auto")}
    assert len(keys) == 3
    assert prefix_key(fp, cfg, 0, "cpu", "dense") == prefix_key(fp, cfg, 0, "cpu")  # old caches stay valid


def test_train_path_is_a_problem_argument_with_a_clear_error():
    from hpo_bench.problems import get_problem

    p = get_problem("digits-mlp", train_path="dense")
    assert p.train_path == "dense" and p.name == "digits-mlp[train_path=dense]"
    assert p.fingerprint() == get_problem("digits-mlp").fingerprint()  # the same dense model
    with pytest.raises(ValueError, match="train_path 'fast'"):
        get_problem("digits-mlp", train_path="fast")


def test_a_problem_name_with_arguments_reads_back_as_that_problem():
    from hpo_bench.problems import get_problem

    p = get_problem("digits-mlp[train_path=sparse]")
    assert p.train_path == "sparse" and p.name == "digits-mlp[train_path=sparse]"
    assert get_problem(p.name).name == p.name
    with pytest.raises(ValueError, match=r"key=value"):
        get_problem("digits-mlp[sparse]")
    with pytest.raises(ValueError, match=r"one pair of brackets"):
        get_problem("digits-mlp[")
    with pytest.raises(ValueError, match=r"given twice"):
        get_problem("digits-mlp[train_path=dense,train_path=sparse]")
    with pytest.raises(ValueError, match=r"it takes: n_train.*train_path"):
        get_problem("synthetic-mlp[widht=64]")


def test_a_suite_takes_train_path_as_a_problem_argument(tmp_path):
    from hpo_bench.harness.suite import load_suite

    path = tmp_path / "s.toml"
    body = 'seeds = 1\n[[comparison]]\nproblem = "digits-mlp"\nmethods = ["random"]\nbudget = { trials = 2 }\n'
    path.write_text(body + 'problem_args = { train_path = "dense" }\n')
    (cmp,) = load_suite(path).comparisons
    assert cmp.make_problem().train_path == "dense"
    path.write_text(body + 'problem_args = { train_path = "fast" }\n')
    with pytest.raises(ValueError, match="train_path must be one of"):
        load_suite(path)
    path.write_text(body.replace('"digits-mlp"', '"digits-mlp[train_path=dense]"'))
    with pytest.raises(ValueError, match="write a problem's arguments as problem_args"):
        load_suite(path)


def test_measuring_the_plan_leaves_no_trace_in_the_model(tiny):
    """A model with BatchNorm: the planning forward must not move its running statistics, or a
    config's first run (plan measured) and its resumed runs (plan read back) would start apart."""
    from hpo_bench import Problem

    bn = Problem(name="tiny-bn", model=lambda: nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                                              nn.Linear(16, 10)),
                 train=tiny.train, val=tiny.val, space=tiny.space, fixed=tiny.fixed,
                 pretrain={"epochs": 2, "lr": 1e-2, "batch_size": 128, "seed": 0}, train_path="auto")
    ev = Evaluator(bn)
    cfg = {**CFG, "epochs": 2}
    measured = ev.start(cfg)
    replayed = ev.start(cfg, plan=measured.train_plan)
    assert torch.equal(measured.model[1].running_mean, replayed.model[1].running_mean)
    assert int(measured.model[1].num_batches_tracked) == int(replayed.model[1].num_batches_tracked)
    assert [measured.train_epoch() for _ in range(2)] == [replayed.train_epoch() for _ in range(2)]


class _Shared(nn.Module):
    """One Linear reachable under two names, and two Linears tied to one weight."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(32, 32)
        self.again = self.lin
        self.a = nn.Linear(32, 32)
        self.b = nn.Linear(32, 32)
        self.b.weight = self.a.weight
        self.free = nn.Linear(32, 32)

    def forward(self, x):
        return self.free(self.b(self.a(self.again(self.lin(x)))))


def test_shared_and_tied_linears_stay_dense_with_their_masks():
    from hpo_bench.compression.pruning import prune_model

    model = _Shared()
    pruned = prune_model(model, "unstructured", 0.9)
    x = torch.randn(8, 32)
    plan = tp.plan_training(model, pruned.weights, pruned.masks, "sparse", x)
    assert plan == {"free": "sparse"}
    dense_idx = tp.apply_plan(model, pruned.weights, pruned.masks, plan)
    assert type(model.lin) is nn.Linear and model.again is model.lin and model.b.weight is model.a.weight
    free = next(i for i, w in enumerate(pruned.weights) if w.shape == (32, 32) and w.data_ptr() not in
                {model.lin.weight.data_ptr(), model.a.weight.data_ptr()})
    assert isinstance(model.free, SparseTrainingLinear)
    assert set(dense_idx) == set(range(len(pruned.weights))) - {free}  # the others' masks keep being re-applied


def test_a_table_names_the_training_path_its_cache_holds(tiny_registry, tmp_path, monkeypatch):
    from hpo_bench.evaluate import load_problem
    from hpo_bench.problems import get_problem

    monkeypatch.setenv("HPO_BENCH_CACHE", str(tmp_path))
    dense = get_problem("tiny", train_path="dense")
    CachingEvaluator(Evaluator(dense), CheckpointStore(tmp_path)).evaluate(CFG)
    assert load_problem(f"table:tiny[train_path=dense]@{tmp_path}").name.startswith("table:")
    with pytest.raises(ValueError, match=r"train_path=dense, not auto; name that one"):
        load_problem(f"table:tiny@{tmp_path}")


def test_auto_is_the_default_name():
    from hpo_bench.problems import get_problem

    assert get_problem("digits-mlp", train_path="auto").name == "digits-mlp"


def test_every_trial_records_how_it_trained(tiny, tmp_path):
    """run.json's trials name their training: auto's per-layer plan (the one kept with the
    results), or the mode; the same from a fresh evaluation and from the cache."""
    from hpo_bench.harness import Budget, search

    auto = _variant(tiny, "auto")
    store = CheckpointStore(tmp_path)
    fresh = search(auto, "random", Budget(trials=3), seed=1, evaluator=CachingEvaluator(Evaluator(auto), store))
    again = search(auto, "random", Budget(trials=3), seed=1, evaluator=CachingEvaluator(Evaluator(auto), store))
    plain = search(auto, "random", Budget(trials=3), seed=1, evaluator=Evaluator(auto))
    plans = [t.train_path for t in fresh.trials]
    assert all(isinstance(p, dict) and set(p) == {"0", "2", "4"} for p in plans)
    assert [t.train_path for t in again.trials] == plans == [t.train_path for t in plain.trials]
    assert fresh.to_dict()["trials"][0]["train_path"] == plans[0]
    dense = search(_variant(tiny, "dense"), "random", Budget(trials=2), seed=1)
    assert [t.train_path for t in dense.trials] == ["dense", "dense"]
