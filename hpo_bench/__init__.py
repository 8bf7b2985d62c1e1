"""hpo_bench: find the best way to prune a neural network with the fewest fine-tuning runs, and prove
which search method gets there first.

Heavy imports (optuna, scikit-optimize, Triton) stay lazy: ``import hpo_bench`` and ``hpo_bench.ops``
cost only torch, so the kernels run on machines that have nothing else installed.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SearchSpace": "hpo_bench.space",
    "Float": "hpo_bench.space",
    "Int": "hpo_bench.space",
    "Categorical": "hpo_bench.space",
    "Problem": "hpo_bench.problems.base",
    "PROBLEMS": "hpo_bench.problems",
    "get_problem": "hpo_bench.problems",
    "Budget": "hpo_bench.harness.budget",
    "search": "hpo_bench.harness.runner",
    "compare": "hpo_bench.harness.compare",
    "METHODS": "hpo_bench.methods",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpo_bench' has no attribute {name!r}")
