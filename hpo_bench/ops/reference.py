"""The torch reference backend: the specification every kernel backend is tested against.

It implements ``protocol.Backend`` in the plainest torch there is (a stable sort by magnitude, a
densified weight), so each function can be read as the definition of its op: the fast backends
must equal it bit for bit on pruning (tests/test_ops_contract.py, which also checks it against an
independent brute force), and up to summation rounding on sparse products
(tests/test_sparse_ops.py). It is also the fallback wherever no faster backend runs: ``"torch"``
in ``ops.available_backends()``, and every sparse product the chosen backend does not support.

Unlike the fast backends it may concatenate all the weights, and it scans for NaN first.
"""
from __future__ import annotations

import math

import torch

from .checks import check_no_nan, check_scores
from .formats import SPARSE_FORMATS as _ALL_FORMATS
from .formats import SparseWeight, densify

__all__ = ["SPARSE_FORMATS", "kth_magnitude", "nm_mask_prune_", "prune_", "score_kth",
           "score_prune_", "sparse_linear", "supports"]

SPARSE_FORMATS: tuple[str, ...] = _ALL_FORMATS  # every format: densify is defined for each


def _magnitudes(tensors: list[torch.Tensor]) -> torch.Tensor:
    """All |w| in one flat float32 vector, tensors in order, each row-major (float32 holds every
    float16 and bfloat16 value exactly, so mixed dtypes compare by value)."""
    return torch.cat([t.detach().reshape(-1).abs().float() for t in tensors])


def kth_magnitude(tensors: list[torch.Tensor], k: int) -> float:
    check_no_nan(tensors)
    return float(torch.sort(_magnitudes(tensors), stable=True).values[k - 1])


def prune_(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    check_no_nan(tensors)
    total = sum(t.numel() for t in tensors)
    keep = torch.ones(total, dtype=torch.bool, device=tensors[0].device)
    if k:
        # A stable sort orders by (|w|, position): its first k indices are the weights to prune.
        keep[torch.sort(_magnitudes(tensors), stable=True).indices[:k]] = False
    masks, start = [], 0
    for t in tensors:
        mask = keep[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
        with torch.no_grad():
            t.masked_fill_(~mask, 0)
        masks.append(mask)
    return masks


def nm_mask_prune_(tensor: torch.Tensor, n: int, m: int) -> torch.Tensor:
    check_no_nan([tensor])
    groups = tensor.detach().reshape(-1, m).abs().float()
    order = torch.sort(groups, dim=1, stable=True).indices  # ascending |w|, ties by position
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, : m - n], False)
    mask = keep.reshape(tensor.shape)
    with torch.no_grad():
        tensor.masked_fill_(~mask, 0)
    return mask


def _score_rows(s: torch.Tensor, group: str) -> torch.Tensor:
    """The scores of one tensor as float32 [groups, size] (float32 holds every float16/bfloat16
    value exactly), one row per comparison group: [rows, rest] for "row", [1, all] otherwise.
    ``+ 0.0`` turns -0.0 into +0.0, so a stable sort ranks the two zeros by position alone."""
    flat = s.detach().float() + 0.0
    if group == "row":
        return flat.reshape(s.shape[0], math.prod(s.shape[1:]))
    return flat.reshape(1, s.numel())


def _score_groups(scores: list[torch.Tensor], group: str) -> list[torch.Tensor]:
    """Each comparison group as a row of a 2-D float32 tensor: one [1, N] for "global" (the tensors
    in order, each row-major), one per tensor otherwise."""
    if group == "global":
        return [torch.cat([_score_rows(s, group) for s in scores], dim=1)]
    return [_score_rows(s, group) for s in scores]


def score_prune_(weights: list[torch.Tensor], scores: list[torch.Tensor], group: str,
                 ks: list[int]) -> list[torch.Tensor]:
    check_scores(scores)
    keeps = []
    for values, k in zip(_score_groups(scores, group), ks):
        keep = torch.ones(values.shape, dtype=torch.bool, device=values.device)
        # A stable sort of each row orders by (score, position): its first k indices are pruned.
        keep.scatter_(1, torch.sort(values, dim=1, stable=True).indices[:, :k], False)
        keeps.append(keep)
    if group == "global":
        flat = keeps[0].reshape(-1)
        keeps, start = [], 0
        for s in scores:
            keeps.append(flat[start : start + s.numel()])
            start += s.numel()
    masks = [keep.reshape(w.shape) for keep, w in zip(keeps, weights)]
    with torch.no_grad():
        for w, mask in zip(weights, masks):
            w.masked_fill_(~mask, 0)
    return masks


def score_kth(scores: list[torch.Tensor], group: str, ks: list[int]) -> list[torch.Tensor]:
    check_scores(scores)
    kths = []
    for values, k in zip(_score_groups(scores, group), ks):
        if k == 0:
            kths.append(torch.full((values.shape[0],), -torch.inf, device=values.device))
        else:
            kths.append(torch.sort(values, dim=1).values[:, k - 1])
    if group == "global":
        return [kths[0].reshape(()).clone() for _ in scores]
    return [kth if group == "row" else kth.reshape(()) for kth in kths]


def supports(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> bool:
    return True  # the reference runs every product


def sparse_linear(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """The specification of every sparse product: a dense product with the densified weight.
    ``dense`` and ``2:4`` weights are torch's own operands and go to ``F.linear`` as they are (on
    CUDA, 2:4 thus runs torch's semi-structured kernels)."""
    weight = sw.data["weight"] if sw.format in ("dense", "2:4") else densify(sw)
    return torch.nn.functional.linear(x2, weight, bias)


def sddmm(g2: torch.Tensor, x2: torch.Tensor, pattern: SparseWeight) -> torch.Tensor:
    """The specification of ``ops.sddmm``: the dense ``g2.T @ x2``, read at the kept positions
    (accumulated in float32 at least)."""
    crow = pattern.data["crow"].long()
    rows = torch.repeat_interleave(torch.arange(pattern.shape[0], device=crow.device), crow[1:] - crow[:-1])
    acc = torch.promote_types(g2.dtype, torch.float32)
    full = g2.to(acc).t() @ x2.to(acc)
    return full[rows, pattern.data["col"].long()].to(g2.dtype)
