"""scikit-learn's bundled digits (1,797 8x8 images, offline): an MLP and a small CNN to prune.

Seconds on a 2-core CPU per fine-tune, so whole comparisons of search methods run on a laptop.

* ``digits-mlp``: fixed target sparsity 0.97 (where untuned pruning collapses); search the pattern, the fine-tuning learning rate,
  epochs, batch size and weight decay; objective: validation accuracy.
* ``digits-mlp-mo``: also search the sparsity (0.5-0.98) and 2:4; objectives: accuracy and sparsity
  (multi-objective: the Pareto front of accuracy vs compression).
* ``digits-mlp-latency``: search the sparsity (0.5-0.98) and the pattern; objectives: accuracy and
  the latency of the validation pass after ``sparsify()`` (measured on the evaluating machine).
* ``digits-cnn``: the same single-objective search on a small CNN.
* ``digits-mlp-criteria``: the MLP at the same 97%, unstructured, searching *how* it is pruned:
  the criterion (magnitude, wanda, taylor), the allocation across layers (global, uniform, erk, owl)
  and OWL's lambda, with the fine-tune, whose epochs start at 0 (one-shot pruning).
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..space import Categorical, Float, Int, SearchSpace
from .base import Problem

__all__ = ["digits_data", "digits_cnn", "digits_mlp", "digits_mlp_criteria", "digits_mlp_latency", "digits_mlp_mo",
           "digits_mlp_nuisance"]


@functools.lru_cache(maxsize=1)
def digits_data(val_fraction: float = 0.3, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Standardised digits, split once by a fixed seeded permutation (stratification is not needed
    at 1,797 samples over 10 balanced classes)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    y = torch.tensor(y, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * len(x)))
    val, train = perm[:n_val], perm[n_val:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.reshape(-1, 1, 8, 8)))


PATTERNS_AT_TARGET = ["unstructured", "unstructured-layer", "block4"]

_FINETUNE = {
    "lr": Float(1e-4, 1e-1, log=True),
    "epochs": Int(1, 8),
    "batch_size": Categorical([64, 32, 128]),
    "weight_decay": Float(1e-6, 1e-2, log=True),
}

# What a user would try first: global magnitude pruning, Adam's default lr, two epochs.
_DEFAULT = {"pattern": "unstructured", "lr": 1e-3, "epochs": 2, "batch_size": 64, "weight_decay": 1e-5}


def _pruned_to_target(name: str, model, description: str, **extra) -> Problem:
    """A single-objective problem: pruned to a fixed 97%, search the pattern and the fine-tune."""
    train, val = digits_data()
    return Problem(
        name=name,
        model=model,
        train=train,
        val=val,
        space=SearchSpace({"pattern": Categorical(PATTERNS_AT_TARGET), **_FINETUNE}),
        objectives=("accuracy",),
        fixed={"sparsity": 0.97},
        default_config=_DEFAULT,
        description=description,
        **extra,
    )


def digits_mlp() -> Problem:
    return _pruned_to_target("digits-mlp", _mlp, "MLP 64-512-512-10 on sklearn digits, pruned to 97%; maximise accuracy")


def digits_mlp_nuisance() -> Problem:
    """``digits-mlp`` plus a parameter that does not matter (the evaluator ignores the key): with
    few parameters that matter, random search should beat a grid that spends levels on it
    (Bergstra & Bengio 2012). It is listed first, as a user who does not know which parameters
    matter might: a budget-matched grid gives earlier parameters their levels first."""
    p = digits_mlp()
    p.name = "digits-mlp-nuisance"
    p.space = SearchSpace({"nuisance": Float(0.0, 1.0), **dict(p.space.items())})
    p.description = "digits-mlp + an ignored Float 'nuisance' (random vs grid); maximise accuracy"
    return p


def _digits_mlp_tradeoff(name: str, objectives: tuple[str, str], patterns: list[str], description: str) -> Problem:
    """The MLP with the sparsity searched too, traded against a second objective (Pareto front)."""
    train, val = digits_data()
    return Problem(
        name=name,
        model=_mlp,
        train=train,
        val=val,
        space=SearchSpace({
            "sparsity": Float(0.5, 0.98, step=0.01),
            "pattern": Categorical(patterns),
            **_FINETUNE,
        }),
        objectives=objectives,
        default_config={"sparsity": 0.9, **_DEFAULT},
        description=description,
    )


def digits_mlp_mo() -> Problem:
    return _digits_mlp_tradeoff("digits-mlp-mo", ("accuracy", "sparsity"), [*PATTERNS_AT_TARGET, "2:4"],
                                "MLP on digits: accuracy vs sparsity (Pareto front); 2:4 ignores 'sparsity'")


def digits_mlp_latency() -> Problem:
    return _digits_mlp_tradeoff("digits-mlp-latency", ("accuracy", "latency_ms"), PATTERNS_AT_TARGET,
                                "MLP on digits: accuracy vs measured latency of the sparsified model (Pareto front)")


def digits_cnn() -> Problem:
    return _pruned_to_target("digits-cnn", _SmallCNN, "small CNN on sklearn digits, pruned to 97%; maximise accuracy",
                             pretrain={"epochs": 15, "lr": 1e-3, "batch_size": 64, "seed": 0})


def digits_mlp_criteria() -> Problem:
    """``digits-mlp``'s MLP and 97% target, unstructured, with the pruning method searched: the
    criterion, the allocation of the sparsity across the three layers, OWL's lambda (used only by
    ``allocation = owl``; compression/allocation.py) and the fine-tune, from 0 epochs (one-shot: the
    pruned model is scored as it is, the LLM practice) to 8. At 97% the first layer (64 x 512) has
    no Wanda outliers at M = 5, so OWL prunes it hardest; lambda >= 0.2 prunes it entirely."""
    train, val = digits_data()
    return Problem(
        name="digits-mlp-criteria",
        model=_mlp,
        train=train,
        val=val,
        space=SearchSpace({
            "criterion": Categorical(["magnitude", "wanda", "taylor"]),
            "allocation": Categorical(["global", "uniform", "erk", "owl"]),
            "owl_lambda": Float(0.01, 0.2, log=True),
            **_FINETUNE,
            "epochs": Int(0, 8),
        }),
        objectives=("accuracy",),
        fixed={"sparsity": 0.97, "pattern": "unstructured"},
        default_config={"criterion": "magnitude", "allocation": "global", "owl_lambda": 0.08,
                        **{k: v for k, v in _DEFAULT.items() if k != "pattern"}},
        description="MLP on digits pruned to 97%: search criterion x allocation (+ OWL lambda) and the fine-tune "
                    "(0 epochs = one-shot); maximise accuracy",
    )
