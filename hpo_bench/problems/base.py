"""What is compressed, and how it is scored.

A ``Problem`` bundles a model factory, its training and validation data, the search space, the
objectives and the constants every configuration shares. A user's own torch model works through the
same class (see examples/own_model.py): give it a function that builds the dense model, and either a
pre-trained state or a pre-training recipe.

``fingerprint()`` names the problem's content (data, architecture, dense weights' recipe, space,
objectives), so results cached for one problem are never served to another.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..compression.train_path import TRAIN_PATHS
from ..space import SearchSpace

__all__ = ["OBJECTIVES", "Objective", "Problem", "TASKS", "TRAIN_PATHS", "tensor_digest"]

#: What a model is trained and scored for, and the objective that scores it: ``classification``
#: (inputs -> class logits; accuracy) or ``language_model`` (byte ids -> next-byte logits laid out
#: (batch, vocab, time); mean cross-entropy). Both train with cross-entropy (evaluate/training.py).
TASKS: dict[str, str] = {"classification": "accuracy", "language_model": "val_loss"}


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"
    description: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("accuracy", "maximize", "validation accuracy of the pruned, fine-tuned model"),
        Objective("val_loss", "minimize", "validation loss (mean cross-entropy, nats) of the pruned, fine-tuned "
                  "language model; perplexity is its exp"),
        Objective("sparsity", "maximize", "fraction of prunable weights that are zero"),
        Objective("size_bytes", "minimize", "model size in bytes, pruned layers stored as CSR"),
        Objective("latency_ms", "minimize",
                  "median validation-pass latency after sparsify() (each layer in its fastest format)"),
    )
}


def tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass
class Problem:
    """A compression problem.

    Args:
        name: registry name, or any label for a user's own problem.
        model: builds the dense, untrained architecture (called with no arguments).
        train, val: datasets (or DataLoaders, whose datasets are used) of (input, label) pairs.
        space: the search space; its parameter names are the config keys the evaluator reads.
        objectives: names from ``OBJECTIVES``; the first is the primary one.
        fixed: constants merged under every sampled config (e.g. ``{"sparsity": 0.9}``).
        default_config: the untuned configuration a user would try first (the baseline).
        pretrain: ``{"epochs": int, "lr": float, "batch_size": int, "seed": int}`` recipe for the
            dense model, or None when ``pretrained_state`` is given.
        pretrained_state: a state_dict of the already-trained dense model.
        prunable: decides which modules' weights are pruned (default: every Linear and Conv2d).
        task: ``classification`` (the default) or ``language_model`` (``TASKS``): what the model
            is scored by after each epoch; the first objective must be that score.
        evaluator_factory: for a problem that answers configs itself (a ``table:`` problem, answered
            from the checkpoint cache): ``(device, seed) -> evaluator``; None (the default) means
            "prune, fine-tune and score" (``hpo_bench.evaluate.make_evaluator``).
        augment: None (the default), or a function applied to the inputs of every training batch,
            in pretraining and fine-tuning (never to scoring or calibration), e.g. cifar.CropFlip.
            It must draw its randomness from torch's global CPU generator, which the training loop
            seeds from (seed, epoch), so a resumed fine-tune equals a fresh one. What it is (its
            repr; for a function, its module and qualified name) is part of the fingerprint.
        epoch_samples: None (the default: an epoch is one pass over ``train``), or how many
            training samples an epoch draws, afresh from all of ``train`` in every epoch (seeded
            by (seed, epoch)): a language model's "epoch" is a fixed number of steps over a corpus
            far larger than one epoch reads, so its dense model does not memorise a fixed subset.
        train_path: how pruned linear layers are fine-tuned: ``auto`` (the default: each layer
            dense or sparse, whichever is measured faster here), ``sparse`` or ``dense``
            (``hpo_bench.compression.train_path``). Not part of the fingerprint (it does not
            change the dense model): the caching evaluator keys results by it instead. Any
            registered problem takes it as an argument: ``digits-mlp[train_path=dense]``.
    """

    name: str
    model: Callable[[], torch.nn.Module]
    train: Dataset | DataLoader
    val: Dataset | DataLoader
    space: SearchSpace
    objectives: Sequence[str] = ("accuracy",)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    default_config: Mapping[str, Any] | None = None
    pretrain: Mapping[str, Any] | None = field(
        default_factory=lambda: {"epochs": 30, "lr": 1e-3, "batch_size": 64, "seed": 0}
    )
    pretrained_state: Mapping[str, torch.Tensor] | None = None
    prunable: Callable[[torch.nn.Module], bool] = lambda m: isinstance(
        m, (torch.nn.Linear, torch.nn.Conv2d)
    )
    description: str = ""
    evaluator_factory: Callable[[str, int], Any] | None = None
    task: str = "classification"
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    epoch_samples: int | None = None
    train_path: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.train, DataLoader):
            self.train = self.train.dataset
        if isinstance(self.val, DataLoader):
            self.val = self.val.dataset
        if not isinstance(self.space, SearchSpace):
            self.space = SearchSpace(self.space)
        self.objectives = tuple(self.objectives)
        if not self.objectives:
            raise ValueError(f"problem {self.name!r}: at least one objective is needed")
        if self.train_path not in TRAIN_PATHS:
            raise ValueError(f"problem {self.name!r}: unknown train_path {self.train_path!r}; "
                             f"choose one of {', '.join(TRAIN_PATHS)}")
        if self.task not in TASKS:
            raise ValueError(f"problem {self.name!r}: unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.objectives[0] != TASKS[self.task]:
            raise ValueError(f"problem {self.name!r}: a {self.task} problem's first objective is "
                             f"{TASKS[self.task]!r} (the score after each epoch), not {self.objectives[0]!r}")
        for o in self.objectives:
            if o not in OBJECTIVES:
                raise ValueError(
                    f"problem {self.name!r}: unknown objective {o!r}; known: {', '.join(OBJECTIVES)}"
                )
        overlap = set(self.fixed) & set(self.space)
        if overlap:
            raise ValueError(f"problem {self.name!r}: {sorted(overlap)} both fixed and searched")
        if self.pretrain is None and self.pretrained_state is None:
            raise ValueError(f"problem {self.name!r}: give a pretrain recipe or a pretrained_state")
        for key, v in (self.pretrained_state or {}).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and bool(torch.isnan(v).any()):
                raise ValueError(f"problem {self.name!r}: pretrained_state[{key!r}] contains NaN")
        self._check_ranges()
        self._fingerprint: str | None = None

    def _check_ranges(self) -> None:
        """The config keys the evaluator reads must be in range wherever they come from (fixed or
        searched), so a bad range fails here, not at the first trial."""
        ranges = {"sparsity": (0.0, 1.0, "in [0, 1]"), "lr": (0.0, None, "> 0"),
                  "epochs": (0, None, ">= 0 (0: one-shot)"), "batch_size": (1, None, ">= 1"),
                  "weight_decay": (0.0, None, ">= 0")}
        for key, (lo, hi, rule) in ranges.items():
            if key in self.fixed:
                values = [self.fixed[key]]
            elif key in self.space:
                p = self.space[key]
                values = list(p.choices) if hasattr(p, "choices") else [p.low, p.high]
            else:
                continue
            for v in values:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (
                    (v > lo if key == "lr" else v >= lo) and (hi is None or v <= hi))
                if not ok:
                    where = "fixed" if key in self.fixed else "searched"
                    raise ValueError(f"problem {self.name!r}: {key} must be {rule}, but the {where} {key} "
                                     f"includes {v!r}")

    # ------------------------------------------------------------------ objectives
    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o].direction for o in self.objectives]

    @property
    def metric(self) -> str:
        """The score measured after each fine-tuning epoch (the primary objective)."""
        return TASKS[self.task]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    # ------------------------------------------------------------------ configs
    def config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A full evaluation config: the fixed constants, overridden by the sampled parameters."""
        return {**self.fixed, **params}

    def baseline_config(self) -> dict[str, Any]:
        if self.default_config is not None:
            return self.config(self.default_config)
        return self.config({n: p.levels(1)[0] for n, p in self.space.items()})

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A short hash of everything that decides an evaluation's result except the config."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            arch = self.model()
            h.update(repr(arch).encode())
            for ds in (self.train, self.val):
                h.update(_dataset_digest(ds).encode())
            identity = {"space": self.space.describe(), "objectives": self.objectives,
                        "fixed": dict(self.fixed), "pretrain": dict(self.pretrain or {})}
            if self.task != "classification":  # (so every classification problem keeps its fingerprint)
                identity["task"] = self.task
            if self.augment is not None:  # (likewise: only a problem that augments names it)
                identity["augment"] = _describe(self.augment)
            if self.epoch_samples is not None:
                identity["epoch_samples"] = int(self.epoch_samples)
            h.update(json.dumps(identity, sort_keys=True, default=repr).encode())
            if self.pretrained_state is not None:
                h.update(tensor_digest(*self.pretrained_state.values()).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def __hash__(self) -> int:
        return hash((self.name, id(self)))


def _describe(fn: Callable) -> str:
    """A name for a callable that is the same in every process (a function's repr holds its address)."""
    if hasattr(fn, "__qualname__") and hasattr(fn, "__module__"):
        return f"{fn.__module__}.{fn.__qualname__}"
    return repr(fn)


def _dataset_digest(ds: Dataset) -> str:
    if isinstance(ds, TensorDataset):
        return tensor_digest(*ds.tensors)
    n = len(ds)  # type: ignore[arg-type]
    items = [ds[i] for i in range(n)]
    xs = torch.stack([torch.as_tensor(x) for x, _ in items])
    ys = torch.as_tensor([int(y) for _, y in items])
    return tensor_digest(xs, ys)
