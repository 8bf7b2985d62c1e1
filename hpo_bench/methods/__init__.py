"""Search methods (the package is `methods`, not `search`, so that `hpo_bench.search` stays the
function): every one an Optuna sampler (+ pruner) over one ``SearchSpace``."""
from .registry import METHODS, Method, MethodContext, check_method, get_method, n_initial

__all__ = ["METHODS", "Method", "MethodContext", "check_method", "get_method", "n_initial"]
