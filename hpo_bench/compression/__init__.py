"""Compression of a model: pruning patterns (pruning.py), criteria (criteria.py: magnitude, wanda,
taylor, and the calibration batches), allocations across layers (allocation.py: global, uniform,
erk, owl); inference formats come with sparsify.py, fine-tuning paths (dense or sparse, per layer)
with train_path.py."""
from .allocation import ALLOCATIONS
from .criteria import CALIBRATION_SAMPLES, CRITERIA, calibration_batches
from .pruning import (PATTERNS, PRUNING_DEFAULTS, PruneResult, effective_config, model_size_bytes, parse_pattern,
                      prunable_weights, prune_model, pruning_options)

__all__ = ["ALLOCATIONS", "CALIBRATION_SAMPLES", "CRITERIA", "PATTERNS", "PRUNING_DEFAULTS", "PruneResult",
           "calibration_batches", "effective_config", "model_size_bytes", "parse_pattern", "prunable_weights",
           "prune_model", "pruning_options"]
