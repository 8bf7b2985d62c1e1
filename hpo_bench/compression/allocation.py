"""Allocations: how a target sparsity S is spread over the prunable layers.

The ``allocation`` config value names one; it applies to the ``unstructured`` pattern (pruning.py
says what the other patterns do with it). Every allocation prunes exactly ``K = round(S * N)``
weights in all (``N`` = all prunable weights; Python's ``round``, as the ``ops``): the per-layer
quotas ``s_l * n_l`` (real numbers summing to ``S * N``) become integer counts by the largest
remainder rule (``largest_remainder``).

* ``global``   one threshold over all layers (today's default): the K smallest scores overall.
* ``uniform``  every layer at S.
* ``erk``      Erdos-Renyi-Kernel (Evci et al. 2020, "Rigging the Lottery: Making All Tickets
  Winners", Sec. 3 and the RigL code's ``get_sparsities``): the density of layer l is
  ``eps * (sum of its weight's dims) / (product of its dims)`` (Linear: (n_in + n_out) / (n_in n_out);
  convolution: (n_in + n_out + k_h + k_w) / (n_in n_out k_h k_w)), ``eps`` chosen so the kept total
  is ``(1 - S) * N``; while a layer's density would exceed 1, the layer(s) with the largest raw ratio
  are made dense and ``eps`` is solved again over the rest.
* ``owl``      Outlier Weighed Layerwise sparsity (Yin et al. 2024, "Outlier Weighed Layerwise
  Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity", Sec. 3 and its code's
  ``prune_wanda_outlier``). Per layer the outlier ratio ``D_l`` = the fraction of its Wanda scores
  ``A_ij > M * mean(A_l)`` (M = ``owl_m``, default 5). The paper sets ``S_l = 1 - D_l`` constrained
  to ``[S - lambda, S + lambda]`` with mean S; its code does it as
  ``r_l = (D_l - min D) / (max D - min D) * 2 lambda``, density ``1 - S + r_l - mean(r)``, i.e.

      S_l = S - (r_l - mean(r))          (lambda = ``owl_lambda``, default 0.08)

  so layers with more outliers are pruned less, over a range 2 lambda wide. The code's ``mean`` is
  over layers (transformer blocks of equal size); here it is weighted by the layers' sizes
  (``sum n_l r_l / N``), which equals the code's for equal sizes and otherwise is the code's
  allocation shifted by one constant so that the total is exactly S * N. If every ``D_l`` is equal,
  ``r = 0`` (uniform). A layer whose ``S_l`` falls outside [0, 1] is clamped there and the other
  layers are shifted by one constant again, until the total holds (so a layer may be pruned
  entirely when S + lambda passes 1: keep S + 2 lambda below 1 to avoid it).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["ALLOCATIONS", "OWL_LAMBDA", "OWL_M", "erk_densities", "largest_remainder", "layer_counts",
           "outlier_ratio", "owl_sparsities"]

ALLOCATIONS = ("global", "uniform", "erk", "owl")
#: OWL's defaults (Yin et al. 2024: lambda = 0.08, M = 5 for most of their LLaMA results).
OWL_LAMBDA = 0.08
OWL_M = 5.0


def largest_remainder(quotas: Sequence[float], total: int, caps: Sequence[int]) -> list[int]:
    """Integers ``c_l`` with ``0 <= c_l <= caps[l]`` and ``sum c_l == total``, as close to the real
    ``quotas`` as the largest remainder rule gives: each gets the floor of its quota, then the
    ``total - sum(floors)`` largest fractional parts get one more (ties: lowest layer first); if the
    floors already exceed ``total`` (float error), the smallest fractional parts give one back."""
    if not 0 <= total <= sum(caps):
        raise ValueError(f"cannot prune {total} weights out of {sum(caps)}")
    counts = [min(max(int(math.floor(q)), 0), int(c)) for q, c in zip(quotas, caps)]
    frac = [q - math.floor(q) for q in quotas]
    while sum(counts) < total:
        room = [i for i in range(len(counts)) if counts[i] < caps[i]]
        for i in sorted(room, key=lambda i: (-frac[i], i))[: total - sum(counts)]:
            counts[i] += 1
            frac[i] = -1.0  # once topped up, last in line for another round
    while sum(counts) > total:
        have = [i for i in range(len(counts)) if counts[i] > 0]
        for i in sorted(have, key=lambda i: (frac[i], i))[: sum(counts) - total]:
            counts[i] -= 1
            frac[i] = 2.0
    return counts


def erk_densities(shapes: Sequence[Sequence[int]], sparsity: float) -> list[float]:
    """ERK density per layer for weight ``shapes`` at overall ``sparsity`` (see the module docstring)."""
    sizes = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    keep = (1.0 - float(sparsity)) * sum(sizes)
    dense: set[int] = set()
    while True:
        rest = [i for i in range(len(shapes)) if i not in dense]
        budget = keep - sum(sizes[i] for i in dense)
        if not rest or budget <= 0:
            break
        eps = budget / sum(raw[i] * sizes[i] for i in rest)
        top = max(raw[i] for i in rest)
        if eps * top <= 1.0:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense.update(i for i in rest if raw[i] == top)
    # Everything dense (sparsity 0), or the dense layers alone hold the whole budget.
    return [1.0 if i in dense else 0.0 for i in range(len(shapes))]


def outlier_ratio(score: torch.Tensor, m: float) -> float:
    """OWL's ``D_l``: the fraction of ``score`` above ``m`` times its mean."""
    s = score.detach().float()
    return float((s > float(m) * s.mean()).sum()) / max(s.numel(), 1)


def owl_sparsities(wanda: Sequence[torch.Tensor], sparsity: float, lam: float = OWL_LAMBDA,
                   m: float = OWL_M) -> list[float]:
    """OWL's per-layer sparsities from each layer's Wanda scores (see the module docstring)."""
    sizes = [s.numel() for s in wanda]
    total = sum(sizes)
    d = [outlier_ratio(s, m) for s in wanda]
    spread = max(d) - min(d)
    r = [(x - min(d)) / spread * 2 * float(lam) if spread > 0 else 0.0 for x in d]
    mean = sum(n * x for n, x in zip(sizes, r)) / total
    target = [float(sparsity) - (x - mean) for x in r]
    # Clamp to [0, 1]; shift the free layers by one constant until the total is S * N again.
    fixed: dict[int, float] = {}
    for _ in range(len(target) + 1):
        free = [i for i in range(len(target)) if i not in fixed]
        if not free:
            break
        want = float(sparsity) * total - sum(sizes[i] * v for i, v in fixed.items())
        shift = (want - sum(sizes[i] * target[i] for i in free)) / sum(sizes[i] for i in free)
        out = {i: target[i] + shift for i in free}
        bad = {i: min(max(v, 0.0), 1.0) for i, v in out.items() if not 0.0 <= v <= 1.0}
        if not bad:
            fixed.update(out)
            break
        fixed.update(bad)
    return [fixed[i] for i in range(len(target))]


def layer_counts(allocation: str, shapes: Sequence[Sequence[int]], sparsity: float, *,
                 wanda: Sequence[torch.Tensor] | None = None, owl_lambda: float = OWL_LAMBDA,
                 owl_m: float = OWL_M) -> list[int]:
    """Weights to prune per layer for ``uniform``, ``erk`` and ``owl`` (``owl`` needs the layers'
    ``wanda`` scores); they sum to exactly ``round(sparsity * N)``. (``global`` has no counts of its
    own: they follow from the scores, pruning.py.)"""
    sizes = [math.prod(s) for s in shapes]
    k = int(round(float(sparsity) * sum(sizes)))
    if allocation == "uniform":
        per_layer = [float(sparsity)] * len(sizes)
    elif allocation == "erk":
        per_layer = [1.0 - d for d in erk_densities(shapes, sparsity)]
    elif allocation == "owl":
        if wanda is None:
            raise ValueError("the owl allocation needs the layers' Wanda scores (calibration batches)")
        per_layer = owl_sparsities(wanda, sparsity, owl_lambda, owl_m)
    else:
        raise ValueError(f"unknown allocation {allocation!r}; known: {', '.join(ALLOCATIONS)}")
    caps = [0 if allocation == "erk" and s == 0.0 else n for s, n in zip(per_layer, sizes)]
    return largest_remainder([s * n for s, n in zip(per_layer, sizes)], k, caps)
