"""Compression of a model: pruning patterns (pruning.py); inference formats come with sparsify.py."""
from .pruning import PATTERNS, PruneResult, effective_config, model_size_bytes, parse_pattern, prunable_weights, prune_model

__all__ = ["PATTERNS", "PruneResult", "effective_config", "model_size_bytes", "parse_pattern", "prunable_weights", "prune_model"]
