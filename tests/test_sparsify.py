"""SparseLinear and sparsify(): same predictions as the pruned dense model; the per-layer format
choice is cached in memory and on disk; profile-kernels writes its JSON and plot; the latency
objective is computed only when a problem asks for it. No timing is asserted."""
import json

import pytest
import torch
from torch import nn

from hpo_bench.cli import main
from hpo_bench.compression import sparsify as sp
from hpo_bench.compression.pruning import prune_model
from hpo_bench.evaluate.training import as_tensors
from hpo_bench.nn import SparseLinear
from hpo_bench.evaluate.pretrained import dense_state
from hpo_bench.problems import get_problem


@pytest.fixture(scope="module")
def pruned_mlp():
    problem = get_problem("digits-mlp")
    model = problem.model()
    model.load_state_dict(dense_state(problem))
    prune_model(model, "unstructured", 0.9)
    x, _ = as_tensors(problem.val, torch.device("cpu"))
    return model.eval(), x


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(sp, "_CHOICES", {})
    return tmp_path


def _linears(model):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("fmt", ["dense", "csr", "bsr", "bitmask"])
def test_sparse_linear_keeps_predictions(pruned_mlp, fmt):
    model, x = pruned_mlp
    converted = nn.Sequential(*[SparseLinear.from_linear(m, fmt) if isinstance(m, nn.Linear) else m for m in model])
    with torch.no_grad():
        ref, out = model(x), converted(x)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_sparsify_keeps_predictions_and_reports(pruned_mlp, fresh_cache):
    model, x = pruned_mlp
    fast = sp.sparsify(model, x, repeats=3)
    assert set(fast.sparsify_report) == set(_linears(model))
    for name, r in fast.sparsify_report.items():
        layer = fast.get_submodule(name)
        assert (r["format"] == "dense") == isinstance(layer, nn.Linear)
    with torch.no_grad():
        assert torch.equal(fast(x).argmax(1), model(x).argmax(1))
    assert not any(isinstance(m, SparseLinear) for m in model.modules()), "sparsify must not change its input"
    assert sp.measure_latency(fast, x, repeats=3) > 0


def test_restricted_formats_and_margin(pruned_mlp, fresh_cache):
    model, x = pruned_mlp
    only_csr = sp.sparsify(model, x, formats=("dense", "csr"), repeats=3)
    assert {r["format"] for r in only_csr.sparsify_report.values()} <= {"dense", "csr"}
    never = sp.sparsify(model, x, margin=1e9, repeats=3)  # no format beats dense by 1e9x
    assert all(r["format"] == "dense" for r in never.sparsify_report.values())
    with pytest.raises(ValueError, match="dense"):
        sp.sparsify(model, x, formats=("csr",))


def test_choice_cache_memory_then_disk(pruned_mlp, fresh_cache, monkeypatch):
    model, x = pruned_mlp
    first = sp.sparsify(model, x, repeats=3).sparsify_report
    files = list((fresh_cache / "formats").glob("*.json"))
    assert len(files) == len(_linears(model))
    entry = json.loads(files[0].read_text())
    assert {"device", "dtype", "shape", "density", "batch"} <= set(entry["key"])
    assert {"dense", "csr", "bsr", "bitmask"} <= set(entry["seconds"])
    if x.device.type == "cpu":  # 2:4 cannot run here: remembered as such, not retried each time
        assert entry["unavailable"] == ["2:4"] and "2:4" not in entry["seconds"]

    def no_timing(*a, **k):
        raise AssertionError("a cached choice was measured again")

    monkeypatch.setattr(sp, "time_interleaved", no_timing)
    assert sp.sparsify(model, x).sparsify_report == first  # from memory
    monkeypatch.setattr(sp, "_CHOICES", {})
    assert sp.sparsify(model, x).sparsify_report == first  # from disk
    files[0].write_text("{ not json")  # a corrupt entry is measured again, not trusted
    monkeypatch.setattr(sp, "_CHOICES", {})
    with pytest.raises(AssertionError, match="measured again"):
        sp.sparsify(model, x)


def test_profile_kernels_quick_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "prof"
    assert main(["profile-kernels", "--quick", "--out", str(out)]) == 0
    result = json.loads((out / "profile.json").read_text())
    assert result["points"] and (out / "profile.png").stat().st_size > 0
    p = result["points"][0]
    assert {"dense", "csr", "bsr", "bitmask"} <= set(p["seconds"]) and p["choice"] in p["seconds"]
    assert "x dense" in capsys.readouterr().out
    assert main(["profile-kernels", "--quick", "--out", str(tmp_path / "no" / "such")]) == 2


def test_latency_objective_only_when_asked(fresh_cache):
    from hpo_bench import Float, Problem, SearchSpace
    from hpo_bench.evaluate import Evaluator
    from hpo_bench.problems.digits import digits_data

    train, val = digits_data()

    def problem(objectives):
        return Problem(name="tiny-latency",
                       model=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                       train=train, val=val, space=SearchSpace({"lr": Float(1e-3, 1e-2, log=True)}),
                       objectives=objectives, fixed={"sparsity": 0.9, "pattern": "unstructured", "epochs": 1},
                       pretrain={"epochs": 2, "lr": 1e-2, "batch_size": 128, "seed": 0})

    res = Evaluator(p := problem(("accuracy", "latency_ms"))).evaluate(p.config({"lr": 1e-3}))
    assert list(res.values)[:2] == ["accuracy", "latency_ms"] and res.values["latency_ms"] > 0
    assert res.info["latency"]["device"] and set(res.info["latency"]["formats"]) == {"0", "2"}
    plain = Evaluator(p := problem(("accuracy",))).evaluate(p.config({"lr": 1e-3}))
    assert "latency_ms" not in plain.values and "latency" not in plain.info
    assert get_problem("digits-mlp-latency").objectives == ("accuracy", "latency_ms")
