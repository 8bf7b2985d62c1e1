"""Search methods: every one an Optuna sampler (+ pruner) over one ``SearchSpace``."""
from .methods import METHODS, Method, MethodContext, get_method, n_initial

__all__ = ["METHODS", "Method", "MethodContext", "get_method", "n_initial"]
