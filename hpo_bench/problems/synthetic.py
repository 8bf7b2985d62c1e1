"""A teacher-student classification task of any size, for GPU-scale comparisons.

A fixed random teacher MLP (``n_features -> teacher_width -> n_classes``) labels Gaussian inputs by
its argmax; the student is an MLP ``n_features -> width x depth -> n_classes``, trained dense once,
then pruned to ``sparsity`` and fine-tuned as for digits. Everything is generated from ``seed`` on
the CPU, so the data (and the problem's fingerprint) are the same on every machine. The defaults
are small (seconds on a CPU); a suite passes larger sizes through ``problem_args``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..space import Categorical, Float, Int, SearchSpace
from .base import Problem

__all__ = ["synthetic_data", "synthetic_mlp"]


def synthetic_data(n_train: int = 4000, n_val: int = 1000, n_features: int = 32, n_classes: int = 10,
                   teacher_width: int = 64, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(n_features, teacher_width, generator=g) / n_features**0.5
    w2 = torch.randn(teacher_width, n_classes, generator=g) / teacher_width**0.5
    x = torch.randn(n_train + n_val, n_features, generator=g)
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    return TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])


def synthetic_mlp(n_train: int = 4000, n_val: int = 1000, n_features: int = 32, n_classes: int = 10,
                  teacher_width: int = 64, width: int = 256, depth: int = 2, sparsity: float = 0.95,
                  pretrain_epochs: int = 10, seed: int = 0, pretrain_device: str = "cpu") -> Problem:
    """``pretrain_device``: where the dense model trains (``cuda`` for the GPU sizes: 100k samples
    through a 2048-wide MLP is minutes on a GPU and ~10 minutes per epoch on one CPU thread); the
    device enters the fingerprint, so the default keeps every existing problem's."""
    for k, v in {"n_train": n_train, "n_val": n_val, "n_features": n_features, "n_classes": n_classes,
                 "teacher_width": teacher_width, "width": width, "depth": depth}.items():
        if int(v) != v or v < 1:
            raise ValueError(f"synthetic-mlp: {k} must be an integer >= 1, got {v!r}")
    train, val = synthetic_data(n_train, n_val, n_features, n_classes, teacher_width, seed)

    def model() -> nn.Module:
        layers: list[nn.Module] = []
        d = n_features
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        return nn.Sequential(*layers, nn.Linear(d, n_classes))

    return Problem(
        name="synthetic-mlp",
        model=model, train=train, val=val,
        space=SearchSpace({
            "pattern": Categorical(["unstructured", "unstructured-layer", "block4"]),
            "lr": Float(1e-4, 1e-1, log=True),
            "epochs": Int(1, 8),
            "batch_size": Categorical([128, 64, 256]),
            "weight_decay": Float(1e-6, 1e-2, log=True),
        }),
        objectives=("accuracy",),
        fixed={"sparsity": sparsity},
        default_config={"pattern": "unstructured", "lr": 1e-3, "epochs": 2, "batch_size": 128, "weight_decay": 1e-5},
        pretrain={"epochs": pretrain_epochs, "lr": 1e-3, "batch_size": 128, "seed": seed,
                  **({"device": pretrain_device} if pretrain_device != "cpu" else {})},
        description=f"teacher-student MLP {n_features}-{'-'.join([str(width)] * depth)}-{n_classes}, "
                    f"{n_train} samples, pruned to {sparsity:g}; maximise accuracy",
    )
