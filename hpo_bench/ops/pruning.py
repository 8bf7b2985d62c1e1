"""The public pruning ops: validate at the door, choose a backend (``dispatch``), hand off.

Each op turns its arguments into what ``protocol.Backend`` promises a backend (a checked list of
tensors, ``k`` in range) and calls one backend function; block pruning is global pruning of tile
scores, so it needs no backend function of its own. The semantics are in the package docstring
(``hpo_bench.ops``) and, executable, in ``reference``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .checks import check_no_nan, check_sparsity, check_tensors
from .dispatch import module_for

__all__ = ["SCORE_GROUPS", "block_prune_", "magnitude_prune_", "magnitude_threshold", "nm_prune_",
           "prune_count", "score_prune_", "score_threshold"]

#: The comparison groups of ``score_prune_``: over all tensors, per tensor, per row.
SCORE_GROUPS = ("global", "tensor", "row")


def prune_count(total: int, sparsity: float) -> int:
    """``k = round(sparsity * total)``: how many weights a sparsity prunes."""
    return int(round(float(sparsity) * total))


def magnitude_threshold(
    tensors: Sequence[torch.Tensor] | torch.Tensor, sparsity: float, *, backend: str | None = None
) -> float:
    """The magnitude at which global pruning to ``sparsity`` cuts: the k-th smallest ``|w|`` over
    all tensors (k = round(sparsity * N)), i.e. the largest magnitude that is pruned.

    Returns ``-inf`` when k == 0 (nothing is pruned). Never concatenates the tensors.
    """
    tensors = check_tensors(tensors)
    s = check_sparsity(sparsity)
    module = module_for(tensors[0].device, backend)
    k = prune_count(sum(t.numel() for t in tensors), s)
    if k == 0:  # nothing to select; the NaN check is still owed
        check_no_nan(tensors)
        return -math.inf
    return float(module.kth_magnitude(tensors, k))


def magnitude_prune_(
    tensors: Sequence[torch.Tensor] | torch.Tensor, sparsity: float, *, backend: str | None = None
) -> list[torch.Tensor]:
    """Globally prune the ``k = round(sparsity * N)`` smallest-magnitude weights of ``tensors``, in
    place. Returns one bool mask per tensor (True = kept), same shape and device."""
    tensors = check_tensors(tensors)
    s = check_sparsity(sparsity)
    module = module_for(tensors[0].device, backend)
    k = prune_count(sum(t.numel() for t in tensors), s)
    return list(module.prune_(tensors, k))


def nm_prune_(tensor: torch.Tensor, n: int = 2, m: int = 4, *, backend: str | None = None) -> torch.Tensor:
    """N:M pruning in place: in every group of ``m`` consecutive weights along the last dimension,
    keep the ``n`` of largest magnitude (ties: the lowest positions are pruned first). Returns the
    bool mask (True = kept). The last dimension must be a multiple of ``m``."""
    (tensor,) = check_tensors([tensor])
    n, m = int(n), int(m)
    if not (m >= 1 and 0 <= n <= m):
        raise ValueError(f"N:M pruning needs 0 <= n <= m and m >= 1, got {n}:{m}")
    if tensor.dim() == 0 or tensor.shape[-1] % m:
        raise ValueError(
            f"N:M pruning groups the last dimension by m={m}, but the tensor has shape "
            f"{tuple(tensor.shape)} (last dimension not a multiple of {m})"
        )
    module = module_for(tensor.device, backend)
    return module.nm_mask_prune_(tensor, n, m)


def block_prune_(
    tensors: Sequence[torch.Tensor] | torch.Tensor,
    sparsity: float,
    block: tuple[int, int] = (4, 4),
    *,
    backend: str | None = None,
) -> list[torch.Tensor]:
    """Block pruning in place: every 2-D weight (higher dims are flattened after the first) is cut
    into ``block`` tiles (edge tiles may be smaller); the ``round(sparsity * number_of_tiles)`` tiles
    of smallest L1 norm over *all* tensors are zeroed. Ties follow the same position rule, over the
    tiles in row-major order. Returns the bool masks (True = kept)."""
    tensors = check_tensors(tensors)
    s = check_sparsity(sparsity)
    bh, bw = (int(b) for b in block)
    if bh < 1 or bw < 1:
        raise ValueError(f"block sizes must be >= 1, got {block}")
    for i, t in enumerate(tensors):
        if t.dim() < 2:
            raise ValueError(f"block pruning needs weights of >= 2 dims; tensor {i} has shape {tuple(t.shape)}")
    check_no_nan(tensors)
    # Tile scores are small (N / (bh*bw) values): computed with torch, selected with the backend.
    scores = [_block_scores(t, bh, bw) for t in tensors]
    score_masks = magnitude_prune_(scores, s, backend=backend)
    masks = []
    for t, sm in zip(tensors, score_masks):
        mask = _expand_block_mask(sm, t, bh, bw)
        t.mul_(mask.to(t.dtype))
        masks.append(mask)
    return masks


def _score_args(
    scores: Sequence[torch.Tensor] | torch.Tensor,
    weights: Sequence[torch.Tensor] | torch.Tensor | None,
    sparsity: float,
    group: str,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, list[int]]:
    """The checks of the score ops; returns (scores, weights, ks): ``ks = [k]`` for "global", else
    one k per tensor (pruned per tensor, or in every row of that tensor)."""
    scores = check_tensors(scores, name="score tensor")
    s = check_sparsity(sparsity)
    if group not in SCORE_GROUPS:
        raise ValueError(f"group must be one of {', '.join(map(repr, SCORE_GROUPS))}, got {group!r}")
    if weights is not None:
        weights = check_tensors(weights, name="weight")
        if len(weights) != len(scores):
            raise ValueError(f"{len(weights)} weights but {len(scores)} score tensors: one score per weight")
        for i, (w, sc) in enumerate(zip(weights, scores)):
            if w.shape != sc.shape:
                raise ValueError(f"score tensor {i} has shape {tuple(sc.shape)} but weight {i} has "
                                 f"shape {tuple(w.shape)}: they must be equal")
        if scores[0].device != weights[0].device:
            raise ValueError(f"the scores are on {scores[0].device} but the weights on {weights[0].device}")
    if group == "global":
        return scores, weights, [prune_count(sum(sc.numel() for sc in scores), s)]
    if group == "tensor":
        return scores, weights, [prune_count(sc.numel(), s) for sc in scores]
    for i, sc in enumerate(scores):
        if sc.dim() < 2:
            raise ValueError(f"row groups need tensors of >= 2 dims (rows = dim 0); score tensor {i} has "
                             f"shape {tuple(sc.shape)}")
    return scores, weights, [prune_count(math.prod(sc.shape[1:]), s) for sc in scores]


def score_prune_(
    weights: Sequence[torch.Tensor] | torch.Tensor,
    scores: Sequence[torch.Tensor] | torch.Tensor,
    sparsity: float,
    group: str = "global",
    *,
    backend: str | None = None,
) -> list[torch.Tensor]:
    """Prune by score, in place: in each comparison group, zero the weights of the
    ``k = round(sparsity * group size)`` smallest scores. Returns one bool mask per weight (True =
    kept), same shape and device.

    * ``scores``: one tensor per weight, of the same shape (any supported dtype, independent of the
      weight's), on the same device; e.g. Wanda's ``|W| * ||X_j||_2``, Taylor's ``|W * dL/dW|``.
      Scores are compared by value and must be >= 0 (-0.0 == 0.0; +inf is the largest score): a NaN
      or negative score raises ``ValueError`` and leaves every weight unchanged. The weights
      themselves are not read to choose (a NaN weight is no error; pruned, it becomes +0.0).
    * ``group``: ``"global"``, one k over all tensors (N = all elements); ``"tensor"``, one k per
      tensor; ``"row"``, one k per row: dim 0 is the row (the output unit), all other dims are
      flattened into it (a [out, in] linear weight: each row is its ``in`` entries; a conv weight
      [out, in, kh, kw]: each row is its ``in * kh * kw`` entries), so every row of a tensor prunes
      ``round(sparsity * numel / shape[0])``; tensors need >= 2 dims.
    * Ties (equal scores) are broken by position as in every pruning op: the lowest position is
      pruned first (tensors in list order, each row-major), so exactly k are pruned per group.
    """
    scores, weights, ks = _score_args(scores, weights, sparsity, group)
    assert weights is not None
    module = module_for(weights[0].device, backend)
    return list(module.score_prune_(weights, scores, group, ks))


def score_threshold(
    scores: Sequence[torch.Tensor] | torch.Tensor,
    sparsity: float,
    group: str = "global",
    *,
    backend: str | None = None,
) -> list[torch.Tensor]:
    """The score at which ``score_prune_(..., scores, sparsity, group)`` cuts, per group: the k-th
    smallest score (the largest one pruned), ``-inf`` where k == 0. One float32 tensor per score
    tensor (on its device): shape ``(rows,)`` for ``group="row"`` (Wanda's per-output threshold),
    else ``()`` (the same value for every tensor under ``"global"``). Scores are checked as by
    ``score_prune_`` and only read."""
    scores, _, ks = _score_args(scores, None, sparsity, group)
    module = module_for(scores[0].device, backend)
    return [t.to(s.device) for t, s in zip(module.score_kth(scores, group, ks), scores)]


def _block_scores(t: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """L1 norm of each (bh x bw) tile of ``t`` viewed as 2-D, in float32 (an exact sum of up to 4096
    fp16/bf16 magnitudes needs more range than the input dtype has)."""
    w = t.reshape(t.shape[0], -1).abs().float()
    rows, cols = w.shape
    pr, pc = -rows % bh, -cols % bw
    if pr or pc:
        w = torch.nn.functional.pad(w, (0, pc, 0, pr))
    tr, tc = w.shape[0] // bh, w.shape[1] // bw
    return w.reshape(tr, bh, tc, bw).sum(dim=(1, 3)).contiguous()


def _expand_block_mask(score_mask: torch.Tensor, t: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    rows = t.shape[0]
    cols = t.numel() // rows if rows else 0
    full = score_mask.repeat_interleave(bh, 0).repeat_interleave(bw, 1)
    return full[:rows, :cols].reshape(t.shape).contiguous()
