import pytest
import torch

from hpo_bench.evaluate import EvaluationFailed, Evaluator
from hpo_bench.problems import Problem


def _cfg(**kw):
    return {"sparsity": 0.8, "pattern": "unstructured", "lr": 1e-2, "epochs": 3, "batch_size": 256, **kw}


def test_evaluation_is_a_pure_function_of_config_and_seed(tiny):
    a = Evaluator(tiny, seed=0).evaluate(_cfg())
    b = Evaluator(tiny, seed=0).evaluate(_cfg())
    assert a.curve == b.curve and a.values == b.values
    c = Evaluator(tiny, seed=1).evaluate(_cfg())
    assert c.curve != a.curve  # the evaluation seed is the data order


def test_fine_tuning_recovers_accuracy_and_masks_stay_fixed(tiny):
    r = Evaluator(tiny).evaluate(_cfg(sparsity=0.9, epochs=3))
    assert r.values["sparsity"] == pytest.approx(0.9, abs=1e-3)  # still 90% zeros after training
    assert r.curve[-1] > r.info["accuracy_before_finetune"]


def test_reporter_sees_every_epoch_and_can_stop(tiny):
    seen = []
    r = Evaluator(tiny).evaluate(_cfg(epochs=3), lambda e, v: seen.append((e, v)) or e == 2)
    assert [e for e, _ in seen] == [1, 2] and r.pruned_at == 2 and r.nominal_epochs == 2
    assert [v for _, v in seen] == r.curve


def test_divergence_fails_the_trial_with_a_reason(tiny):
    broken = Problem(
        name="nan-data", model=tiny.model, train=torch.utils.data.TensorDataset(
            torch.full((8, 64), float("nan")), torch.zeros(8, dtype=torch.long)),
        val=tiny.val, space=tiny.space, fixed=tiny.fixed,
        pretrained_state={k: v for k, v in tiny.model().state_dict().items()},
    )
    with pytest.raises(EvaluationFailed, match="diverged") as info:
        Evaluator(broken).evaluate(_cfg())
    assert "nan" in info.value.reason


def test_missing_config_keys_are_named(tiny):
    with pytest.raises(ValueError, match="lr"):
        Evaluator(tiny).evaluate({"sparsity": 0.5, "pattern": "unstructured", "epochs": 1})


def test_digits_default_is_beaten_by_a_tuned_config():
    # The default problem has headroom for a search to find: untuned pruning to 97% collapses.
    from hpo_bench.problems import get_problem

    p = get_problem("digits-mlp")
    ev = Evaluator(p)
    base = ev.evaluate(p.baseline_config()).values["accuracy"]
    tuned = ev.evaluate(p.config({"pattern": "unstructured-layer", "lr": 1e-2, "epochs": 4,
                                  "batch_size": 64, "weight_decay": 1e-5})).values["accuracy"]
    assert base < 0.5 < 0.9 < tuned
