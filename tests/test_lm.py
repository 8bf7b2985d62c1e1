"""The language-model problem (problems/lm.py): its corpus, its model, and that it trains, prunes,
fine-tunes deterministically and resumes exactly like the digits problems.

Sizes here are cut down (width 32, 64 training windows) so each test takes about a second."""
from __future__ import annotations

import math

import pytest
import torch

from hpo_bench.evaluate import CachingEvaluator, CheckpointStore, Evaluator
from hpo_bench.evaluate.pretrained import pretrain_dense
from hpo_bench.problems import PROBLEMS, get_problem
from hpo_bench.problems.lm import CORPUS_MODULES, TinyGPT, block_linear, lm_corpus, lm_windows

SMALL = {"width": 32, "depth": 1, "heads": 2, "context": 16, "n_train": 64, "n_val": 32, "batch_size": 8,
         "pretrain_epochs": 3}


@pytest.fixture(scope="module")
def lm():
    return get_problem("lm-bytes", **SMALL)


def test_the_corpus_is_the_named_stdlib_modules_in_order():
    import sysconfig
    from pathlib import Path

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = lm_corpus()
    first = (stdlib / CORPUS_MODULES[0]).read_bytes()
    assert text.startswith(first) and len(text) == sum((stdlib / m).stat().st_size for m in CORPUS_MODULES)


def test_windows_are_next_byte_pairs_and_train_precedes_val():
    data = bytes(range(256)) * 40
    train, val = lm_windows(data, 8, 10, 4)
    x, y = train.tensors
    assert x.shape == y.shape == (10, 8)
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one byte
    split = int(len(data) * 0.9)
    assert int(val.tensors[0][0, 0]) == data[split]  # validation starts where training text ends
    with pytest.raises(ValueError, match="windows of 9, 5000 needed"):
        lm_windows(data, 8, 5000, 4)


def test_a_data_file_replaces_the_corpus(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("hello world. " * 2000)
    p = get_problem("lm-bytes", data_file=str(f), **SMALL)
    q = get_problem("lm-bytes", **SMALL)
    assert p.fingerprint() != q.fingerprint() and "data_file=" in p.name
    with pytest.raises(ValueError, match="does not exist"):
        get_problem("lm-bytes", data_file=str(tmp_path / "missing.txt"))


def test_the_model_is_causal():
    torch.manual_seed(0)
    m = TinyGPT(256, 32, 1, 2, 16).eval()
    x = torch.randint(0, 256, (1, 16))
    y = x.clone()
    y[0, 10] = (y[0, 10] + 1) % 256  # change a later byte: earlier predictions must not move
    a, b = m(x), m(y)
    assert a.shape == (1, 256, 16)
    assert torch.allclose(a[..., :10], b[..., :10]) and not torch.allclose(a[..., 10:], b[..., 10:])


def test_pruning_takes_the_blocks_linears_and_leaves_the_head(lm):
    m = lm.model()
    pruned = [name for name, mod in m.named_modules() if block_linear(mod)]
    assert pruned == ["blocks.0.qkv", "blocks.0.proj", "blocks.0.fc1", "blocks.0.fc2"]


def test_pretraining_lowers_the_loss():
    from hpo_bench.evaluate.training import as_tensors, evaluate_metric

    lm = get_problem("lm-bytes", **{**SMALL, "pretrain_epochs": 10})
    val = as_tensors(lm.val, torch.device("cpu"))
    torch.manual_seed(0)
    untrained = evaluate_metric(lm.model(), val, "language_model")
    assert abs(untrained - math.log(256)) < 0.5  # a random byte model: about ln 256 nats
    trained = lm.model()
    trained.load_state_dict(pretrain_dense(lm))
    assert evaluate_metric(trained, val, "language_model") < untrained - 1.0


def test_fine_tune_is_deterministic_and_resumes_exactly(lm, tmp_path):
    cfg = {**lm.baseline_config(), "epochs": 3}
    a = Evaluator(lm).evaluate(cfg)
    b = Evaluator(lm).evaluate(cfg)
    assert a.curve == b.curve and len(a.curve) == 3 and set(a.values) >= {"val_loss"}
    store = CheckpointStore(tmp_path / "cache")
    cached = CachingEvaluator(Evaluator(lm), store)
    short = cached.evaluate({**cfg, "epochs": 1})
    resumed = cached.evaluate(cfg)  # resumes from the 1-epoch checkpoint
    assert short.curve == a.curve[:1] and resumed.curve == a.curve
    assert resumed.info["epochs_trained"] == 2
    assert cached.evaluate(cfg).curve == a.curve  # an exact hit replays it


def test_the_registry_lists_both_language_models():
    assert {"lm-bytes", "lm-bytes-mo"} <= set(PROBLEMS)
    mo = get_problem("lm-bytes-mo", **SMALL)
    assert mo.objectives == ("val_loss", "sparsity") and mo.directions == ["minimize", "maximize"]


def test_one_shot_pruning_scores_the_pruned_model(lm):
    """epochs = 0, the LLM practice: the pruned model's loss, worse than the dense model's."""
    from hpo_bench.evaluate.training import as_tensors, evaluate_metric

    dense = lm.model()
    dense.load_state_dict(pretrain_dense(lm))
    dense_loss = evaluate_metric(dense, as_tensors(lm.val, torch.device("cpu")), "language_model")
    r = Evaluator(lm).evaluate({**lm.baseline_config(), "epochs": 0})
    assert r.curve == [] and r.values["val_loss"] > dense_loss
    assert r.values["val_loss"] == r.info["val_loss_before_finetune"]


def test_an_epoch_draws_its_windows_afresh_from_the_whole_corpus():
    """epoch_samples: each epoch trains on that many windows, a different draw per epoch (so the
    dense model cannot memorise a fixed subset), and still resumes exactly."""
    from hpo_bench.evaluate.training import train_epoch

    seen: list[list[int]] = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(4))

        def forward(self, x):
            seen[-1].extend(int(i) for i in x[:, 0])
            return self.w.expand(len(x), 4)

    x, y = torch.arange(64).unsqueeze(1), torch.zeros(64, dtype=torch.long)
    model = Spy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        seen.append([])
        train_epoch(model, (x, y), opt, batch_size=4, seed=0, epoch=epoch, samples=16)
    assert [len(s) for s in seen] == [16, 16] and len(set(seen[0])) == 16 and set(seen[0]) != set(seen[1])

    p = get_problem("lm-bytes", **{**SMALL, "epoch_windows": 16})
    assert p.epoch_samples == 16 and p.fingerprint() != get_problem("lm-bytes", **SMALL).fingerprint()
    cfg = {**p.baseline_config(), "epochs": 2}
    fresh = Evaluator(p).evaluate(cfg)
    assert Evaluator(p).evaluate(cfg).curve == fresh.curve


def test_sparse_fine_tune_of_the_language_model_matches_dense_and_resumes_exactly(tmp_path):
    """The GPT's Linears see (batch, tokens, features) inputs: the sparse path trains them (3-D
    through reshape), its losses track the dense path's within float rounding, and it resumes
    bit for bit."""
    dense = get_problem("lm-bytes", **SMALL, train_path="dense")
    sparse = get_problem("lm-bytes", **SMALL, train_path="sparse")
    cfg = {**dense.baseline_config(), "epochs": 2}
    d = Evaluator(dense).evaluate(cfg)
    s = Evaluator(sparse).evaluate(cfg)
    assert s.info["train_path"] == "sparse"
    assert list(Evaluator(sparse).start(cfg).train_plan.values()) == ["sparse"] * 4
    assert s.curve == pytest.approx(d.curve, rel=1e-4)
    cached = CachingEvaluator(Evaluator(sparse), CheckpointStore(tmp_path / "cache"))
    cached.evaluate({**cfg, "epochs": 1})
    assert cached.evaluate(cfg).curve == s.curve
