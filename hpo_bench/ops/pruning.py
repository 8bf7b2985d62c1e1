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

__all__ = ["block_prune_", "magnitude_prune_", "magnitude_threshold", "nm_prune_", "prune_count"]


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
