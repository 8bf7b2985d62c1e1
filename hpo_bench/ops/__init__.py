"""The one kernel API of hpo_bench: magnitude pruning and sparse inference.

Every op validates its input at the door, picks a backend, and hands off. The package is laid
out along those ideas, each module importing only the ones below it:

* ``pruning``, ``inference``, ``training`` -- the public ops: checks, then hand-off
* ``dispatch``  -- which backend runs an op (lazy loading, ``HPO_BENCH_BACKEND``, ``load_error``)
* ``reference`` -- the torch reference backend: the specification, and the fallback
* ``native``    -- the C++ backend (``hpo_bench._native``); the Triton one is ``hpo_bench.kernels``
* ``protocol``  -- ``Backend``: what a backend provides and what it may take for granted
* ``formats``   -- ``SparseWeight``, ``to_sparse``, ``densify``: the sparse formats and buffers
* ``checks``    -- the door's rules (dtypes, sparsity, tensor lists, NaN)

Backends import only ``formats`` and ``checks``, never the ops that dispatch to them.

Semantics, identical on every backend (invariant 5 of ARCHITECTURE.md):

* Over a list of tensors ``N`` = total number of elements, ``k = round(sparsity * N)`` (Python's
  ``round``, half to even); exactly ``k`` weights are pruned (set to zero, mask ``False``).
* Every kept ``|w|`` is ``>=`` every pruned ``|w|``. Ties at the threshold are broken by position:
  the tensors are taken in the given order, each in row-major (C) order, and the lowest positions are
  pruned first. Already-zero weights are the smallest magnitudes; ``-0.0 == 0.0``.
* ``+-inf`` is a valid (largest) magnitude; a NaN anywhere raises ``ValueError``.
* float32, float16 and bfloat16; non-contiguous tensors raise ``ValueError`` (no hidden copies: a
  pruning op works in place, and a copy would silently prune the copy).
* No concatenated copy of all the weights is made by a fast backend (the reference may).

Pruning by score (``score_prune_``, ``score_threshold``): the same rules with a score tensor per
weight in place of ``|w|`` (compared by value; scores must be >= 0, a NaN or negative score raises
``ValueError``), in comparison groups ``"global"`` (as above), ``"tensor"`` (k per tensor) or
``"row"`` (k = round(sparsity * row size) in every row; dim 0 is the row, the other dims are
flattened into it). The weights are zeroed only after every score has been checked.
"""
from .checks import SUPPORTED_DTYPES
from .dispatch import available_backends, backend_for
from .formats import SPARSE_FORMATS, SparseWeight, to_sparse
from .inference import sparse_linear
from .training import sddmm
from .pruning import (SCORE_GROUPS, block_prune_, magnitude_prune_, magnitude_threshold, nm_prune_,
                      prune_count, score_prune_, score_threshold)

__all__ = [
    "SCORE_GROUPS",
    "SPARSE_FORMATS",
    "SUPPORTED_DTYPES",
    "SparseWeight",
    "available_backends",
    "backend_for",
    "block_prune_",
    "magnitude_prune_",
    "magnitude_threshold",
    "nm_prune_",
    "prune_count",
    "score_prune_",
    "score_threshold",
    "sddmm",
    "sparse_linear",
    "to_sparse",
]
