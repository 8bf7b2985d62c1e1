"""The one kernel API of hpo_bench: magnitude pruning and sparse inference.

Every op here does three things in order: validate its input at the door, pick a backend, and hand
off. The torch reference of each op lives in this file too (``_ref_*``): it is the specification every
backend is tested against (tests/test_ops_contract.py), and the fallback where no faster backend runs.

Backends (``available_backends()``):

* ``"triton"``  -- hpo_bench.kernels, for CUDA tensors (tested on CPU with ``TRITON_INTERPRET=1``)
* ``"native"``  -- hpo_bench._native (C++17 + OpenMP), for CPU tensors
* ``"torch"``   -- the reference in this file, for anything

CUDA tensors go to Triton, CPU tensors to the native extension, anything else to the reference.
``HPO_BENCH_BACKEND=torch|native|triton`` forces one backend, and fails loudly if it is missing.

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
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from types import ModuleType

import torch

__all__ = [
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
    "sparse_linear",
    "to_sparse",
]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BACKENDS = ("triton", "native", "torch")


# --------------------------------------------------------------------------- backend discovery
_loaded: dict[str, ModuleType | None] = {}
_load_errors: dict[str, str] = {}


def _load(name: str) -> ModuleType | None:
    """Import a backend once, lazily; remember why it failed so a forced choice can say so."""
    if name not in _loaded:
        try:
            if name == "torch":
                import sys

                module: ModuleType | None = sys.modules[__name__]
            elif name == "native":
                from .backends import native as module
            elif name == "triton":
                from . import kernels as module

                if not module.available():
                    raise ImportError(module.unavailable_reason())
            else:
                raise KeyError(name)
        except Exception as e:  # noqa: BLE001 - any import failure means "not available"
            module = None
            _load_errors[name] = f"{type(e).__name__}: {e}"
        _loaded[name] = module
    return _loaded[name]


def available_backends() -> tuple[str, ...]:
    """The backends that import and run here, fastest first."""
    return tuple(b for b in BACKENDS if _load(b) is not None)


def _forced() -> str | None:
    forced = os.environ.get("HPO_BENCH_BACKEND", "").strip().lower() or None
    if forced is not None and forced not in BACKENDS:
        raise RuntimeError(
            f"HPO_BENCH_BACKEND={forced!r} is not a backend; choose one of {', '.join(BACKENDS)}"
        )
    return forced


def backend_for(device: torch.device, backend: str | None = None) -> str:
    """Name of the backend an op on ``device`` uses: ``backend`` if given, else
    ``$HPO_BENCH_BACKEND``, else triton for CUDA, native for CPU, torch otherwise."""
    name = backend or _forced()
    if name is not None:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
        if _load(name) is None:
            raise RuntimeError(
                f"backend {name!r} was asked for but is not available: {_load_errors.get(name)}"
            )
        if name == "native" and device.type != "cpu":
            raise RuntimeError(f"backend 'native' runs on CPU tensors only, got {device}")
        return name
    if device.type == "cuda" and _load("triton") is not None:
        return "triton"
    if device.type == "cpu" and _load("native") is not None:
        return "native"
    return "torch"


def _backend(device: torch.device, backend: str | None) -> ModuleType:
    module = _load(backend_for(device, backend))
    assert module is not None
    return module


# --------------------------------------------------------------------------- validation
def prune_count(total: int, sparsity: float) -> int:
    """``k = round(sparsity * total)``: how many weights a sparsity prunes."""
    return int(round(float(sparsity) * total))


def _check_sparsity(sparsity: float) -> float:
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1], got {sparsity!r}") from None
    if not (0.0 <= s <= 1.0):  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    return s


def _check_tensors(tensors: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    if not tensors:
        raise ValueError("expected at least one tensor, got an empty list")
    device = tensors[0].device
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor {i} is a {type(t).__name__}, not a torch.Tensor")
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"tensor {i} has dtype {t.dtype}; supported: float32, float16, bfloat16"
            )
        if t.device != device:
            raise ValueError(f"tensor {i} is on {t.device} but tensor 0 is on {device}")
        if not t.is_contiguous():
            raise ValueError(
                f"tensor {i} (shape {tuple(t.shape)}) is not contiguous; pruning works in place, "
                "so pass .contiguous() weights (and copy them back) explicitly"
            )
    return tensors


def _check_no_nan(tensors: Sequence[torch.Tensor]) -> None:
    for i, t in enumerate(tensors):
        if t.numel() and bool(torch.isnan(t).any()):
            raise ValueError(f"tensor {i} (shape {tuple(t.shape)}) contains NaN")


# --------------------------------------------------------------------------- public ops
def magnitude_threshold(
    tensors: Sequence[torch.Tensor] | torch.Tensor, sparsity: float, *, backend: str | None = None
) -> float:
    """The magnitude at which global pruning to ``sparsity`` cuts: the k-th smallest ``|w|`` over
    all tensors (k = round(sparsity * N)), i.e. the largest magnitude that is pruned.

    Returns ``-inf`` when k == 0 (nothing is pruned). Never concatenates the tensors.
    """
    tensors = _check_tensors(tensors)
    s = _check_sparsity(sparsity)
    module = _backend(tensors[0].device, backend)
    k = prune_count(sum(t.numel() for t in tensors), s)
    if k == 0:  # nothing to select; the NaN check is still owed
        _check_no_nan(tensors)
        return -math.inf
    return float(module.kth_magnitude(tensors, k))


def magnitude_prune_(
    tensors: Sequence[torch.Tensor] | torch.Tensor, sparsity: float, *, backend: str | None = None
) -> list[torch.Tensor]:
    """Globally prune the ``k = round(sparsity * N)`` smallest-magnitude weights of ``tensors``, in
    place. Returns one bool mask per tensor (True = kept), same shape and device."""
    tensors = _check_tensors(tensors)
    s = _check_sparsity(sparsity)
    module = _backend(tensors[0].device, backend)
    k = prune_count(sum(t.numel() for t in tensors), s)
    return list(module.prune_(tensors, k))


def nm_prune_(tensor: torch.Tensor, n: int = 2, m: int = 4, *, backend: str | None = None) -> torch.Tensor:
    """N:M pruning in place: in every group of ``m`` consecutive weights along the last dimension,
    keep the ``n`` of largest magnitude (ties: the lowest positions are pruned first). Returns the
    bool mask (True = kept). The last dimension must be a multiple of ``m``."""
    (tensor,) = _check_tensors([tensor])
    n, m = int(n), int(m)
    if not (m >= 1 and 0 <= n <= m):
        raise ValueError(f"N:M pruning needs 0 <= n <= m and m >= 1, got {n}:{m}")
    if tensor.dim() == 0 or tensor.shape[-1] % m:
        raise ValueError(
            f"N:M pruning groups the last dimension by m={m}, but the tensor has shape "
            f"{tuple(tensor.shape)} (last dimension not a multiple of {m})"
        )
    module = _backend(tensor.device, backend)
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
    tensors = _check_tensors(tensors)
    s = _check_sparsity(sparsity)
    bh, bw = (int(b) for b in block)
    if bh < 1 or bw < 1:
        raise ValueError(f"block sizes must be >= 1, got {block}")
    for i, t in enumerate(tensors):
        if t.dim() < 2:
            raise ValueError(f"block pruning needs weights of >= 2 dims; tensor {i} has shape {tuple(t.shape)}")
    _check_no_nan(tensors)
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


# --------------------------------------------------------------------------- torch reference
# The reference backend: a module-level protocol shared by every backend module.
#   kth_magnitude(tensors, k) -> float      1 <= k <= N; raises ValueError on NaN
#   prune_(tensors, k) -> list[bool masks]  0 <= k <= N; in place; raises ValueError on NaN
#   nm_mask_prune_(tensor, n, m) -> mask    last dim % m == 0 already checked
def _magnitude_order(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Flat positions of all weights sorted by (|w|, position): the pruning order."""
    mags = torch.cat([t.detach().reshape(-1).abs().float() for t in tensors])
    return torch.sort(mags, stable=True).indices


def kth_magnitude(tensors: Sequence[torch.Tensor], k: int) -> float:
    _check_no_nan(tensors)
    mags = torch.cat([t.detach().reshape(-1).abs().float() for t in tensors])
    return float(torch.sort(mags, stable=True).values[k - 1])


def prune_(tensors: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    _check_no_nan(tensors)
    total = sum(t.numel() for t in tensors)
    keep = torch.ones(total, dtype=torch.bool, device=tensors[0].device)
    if k:
        keep[_magnitude_order(tensors)[:k]] = False
    masks, start = [], 0
    for t in tensors:
        mask = keep[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
        with torch.no_grad():
            t.masked_fill_(~mask, 0)
        masks.append(mask)
    return masks


def nm_mask_prune_(tensor: torch.Tensor, n: int, m: int) -> torch.Tensor:
    _check_no_nan([tensor])
    groups = tensor.detach().reshape(-1, m).abs().float()
    order = torch.sort(groups, dim=1, stable=True).indices  # ascending |w|, ties by position
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, : m - n], False)
    mask = keep.reshape(tensor.shape)
    with torch.no_grad():
        tensor.masked_fill_(~mask, 0)
    return mask


# =========================================================================== sparse inference
# A pruned weight is only faster if its zeros are skipped. ``to_sparse`` packs a 2-D weight
# [out_features, in_features] into a ``SparseWeight``; ``sparse_linear`` computes
# ``x @ W.T + bias`` from it. Conversion is done here, in torch, once per layer (it is not on the
# hot path); the product dispatches to a backend that lists the format in its ``SPARSE_FORMATS``
# and otherwise runs the reference below (densify, then F.linear): the specification.
#
# Formats and their buffers (``SparseWeight.data``):
#   "dense"    weight [out, in]
#   "csr"      crow int32 [out+1], col int16 (in < 32768) or int32 [nnz], values [nnz]
#   "bsr"      block (bh, bw), each in 4..64; the weight is zero-padded to multiples of the block:
#              crow int32 [out_p/bh + 1], col int32 [nnzb] (block-column index), values [nnzb, bh, bw]
#   "bitmask"  bits uint8 [out, ceil(in/8)] (bit j%8 of byte j//8 set = nonzero, little-endian bit
#              order), crow int32 [out+1], values [nnz] in row-major order: a layout for batch <= 16
#   "2:4"      CUDA only: torch's semi-structured sparse tensor (``torch.sparse.to_sparse_semi_structured``)
SPARSE_FORMATS = ("dense", "csr", "bsr", "bitmask", "2:4")


class SparseWeight:
    """A 2-D weight packed for inference. ``shape`` is the logical [out, in]; ``data`` holds the
    format's buffers (see above); ``block`` is (bh, bw) for BSR."""

    __slots__ = ("format", "shape", "data", "block", "dtype", "device", "nnz")

    def __init__(self, format: str, shape: tuple[int, int], data: dict[str, torch.Tensor],
                 block: tuple[int, int] | None, dtype: torch.dtype, device: torch.device, nnz: int):
        self.format, self.shape, self.data, self.block = format, tuple(shape), data, block
        self.dtype, self.device, self.nnz = dtype, device, int(nnz)

    def __repr__(self) -> str:
        blk = f", block={self.block}" if self.block else ""
        return f"SparseWeight({self.format}, shape={self.shape}{blk}, nnz={self.nnz}, dtype={self.dtype})"

    @property
    def density(self) -> float:
        n = self.shape[0] * self.shape[1]
        return self.nnz / n if n else 0.0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.data.values() if isinstance(t, torch.Tensor))

    def to_dense(self) -> torch.Tensor:
        return _densify(self)


def to_sparse(weight: torch.Tensor, format: str = "csr", *, block: int | tuple[int, int] = 16) -> SparseWeight:
    """Pack a 2-D weight [out, in] in ``format`` (one of ``SPARSE_FORMATS``). ``block`` is the BSR
    block size (an int for square blocks, or (bh, bw)), each between 4 and 64."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"to_sparse needs a 2-D weight [out, in], got {getattr(weight, 'shape', type(weight))}")
    if weight.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"weight has dtype {weight.dtype}; supported: float32, float16, bfloat16")
    if format not in SPARSE_FORMATS:
        raise ValueError(f"unknown sparse format {format!r}; choose one of {', '.join(SPARSE_FORMATS)}")
    w = weight.detach().contiguous()
    _check_no_nan([w])
    rows, cols = w.shape
    nnz = int((w != 0).sum())
    if format == "dense":
        return SparseWeight("dense", (rows, cols), {"weight": w}, None, w.dtype, w.device, nnz)
    if format == "csr":
        crow, col, vals = _csr_parts(w)
        col = col.to(torch.int16 if cols < 32768 else torch.int32)
        return SparseWeight("csr", (rows, cols), {"crow": crow, "col": col, "values": vals}, None, w.dtype, w.device, nnz)
    if format == "bitmask":
        crow, _, vals = _csr_parts(w)
        return SparseWeight("bitmask", (rows, cols), {"bits": _pack_bits(w != 0), "crow": crow, "values": vals},
                            None, w.dtype, w.device, nnz)
    if format == "bsr":
        bh, bw = (block, block) if isinstance(block, int) else (int(block[0]), int(block[1]))
        if not (4 <= bh <= 64 and 4 <= bw <= 64):
            raise ValueError(f"BSR block sizes must be in 4..64, got {(bh, bw)}")
        wp = torch.nn.functional.pad(w, (0, -cols % bw, 0, -rows % bh))
        tiles = wp.reshape(wp.shape[0] // bh, bh, wp.shape[1] // bw, bw).transpose(1, 2)  # [R, C, bh, bw]
        nonzero = (tiles != 0).flatten(2).any(-1)  # [R, C]
        crow = torch.zeros(nonzero.shape[0] + 1, dtype=torch.int32, device=w.device)
        crow[1:] = nonzero.sum(1).cumsum(0)
        r_idx, c_idx = nonzero.nonzero(as_tuple=True)
        values = tiles[r_idx, c_idx].contiguous()
        return SparseWeight("bsr", (rows, cols), {"crow": crow, "col": c_idx.to(torch.int32), "values": values},
                            (bh, bw), w.dtype, w.device, nnz)
    # 2:4
    if w.device.type != "cuda":
        raise ValueError("the 2:4 format runs on CUDA only (torch's semi-structured sparsity)")
    groups = (w.reshape(rows, -1, 4) != 0).sum(-1) if cols % 4 == 0 else None
    if groups is None or int(groups.max()) > 2:
        raise ValueError("the 2:4 format needs in_features % 4 == 0 and at most 2 nonzeros in every 4")
    from torch.sparse import to_sparse_semi_structured

    return SparseWeight("2:4", (rows, cols), {"weight": to_sparse_semi_structured(w)}, None, w.dtype, w.device, nnz)


def sparse_linear(x: torch.Tensor, weight: SparseWeight, bias: torch.Tensor | None = None,
                  *, backend: str | None = None) -> torch.Tensor:
    """``x @ W.T + bias`` for x [..., in] with W packed by ``to_sparse``; returns [..., out]."""
    if not isinstance(weight, SparseWeight):
        raise TypeError(f"sparse_linear needs a SparseWeight (from ops.to_sparse), got {type(weight).__name__}")
    rows, cols = weight.shape
    if x.shape[-1] != cols:
        raise ValueError(f"x has {x.shape[-1]} features but the weight expects {cols}")
    if x.dtype != weight.dtype or x.device != weight.device:
        raise ValueError(f"x is {x.dtype} on {x.device}, the weight {weight.dtype} on {weight.device}")
    if bias is not None and tuple(bias.shape) != (rows,):
        raise ValueError(f"bias must have shape ({rows},), got {tuple(bias.shape)}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, cols).contiguous()
    if weight.format == "dense":
        out = torch.nn.functional.linear(x2, weight.data["weight"], bias)
    elif weight.format == "2:4":
        out = torch.nn.functional.linear(x2, weight.data["weight"], bias)
    else:
        module = _backend(x.device, backend)
        # The torch backend is this module, whose SPARSE_FORMATS lists every format: its product is
        # the reference, never a call back into sparse_linear.
        if module is not _load("torch") and weight.format in getattr(module, "SPARSE_FORMATS", ()):
            out = module.sparse_linear(x2, weight, bias)
        else:
            out = ref_sparse_linear(x2, weight, bias)
    return out.reshape(*lead, rows)


# --------------------------------------------------------------------------- sparse reference
def _csr_parts(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mask = w != 0
    crow = torch.zeros(w.shape[0] + 1, dtype=torch.int32, device=w.device)
    crow[1:] = mask.sum(1).cumsum(0)
    _, col = mask.nonzero(as_tuple=True)
    return crow, col, w[mask].contiguous()


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    rows, cols = mask.shape
    padded = torch.nn.functional.pad(mask.to(torch.uint8), (0, -cols % 8))
    weights = (2 ** torch.arange(8, device=mask.device, dtype=torch.int32))
    return (padded.reshape(rows, -1, 8).to(torch.int32) * weights).sum(-1).to(torch.uint8)


def _densify(sw: SparseWeight) -> torch.Tensor:
    rows, cols = sw.shape
    d = sw.data
    if sw.format == "dense":
        return d["weight"]
    if sw.format == "2:4":
        return d["weight"].to_dense()
    if sw.format == "bsr":
        bh, bw = sw.block  # type: ignore[misc]
        nr = d["crow"].numel() - 1
        nc = -(-cols // bw)
        tiles = torch.zeros(nr, nc, bh, bw, dtype=sw.dtype, device=sw.device)
        r_idx = torch.repeat_interleave(torch.arange(nr, device=sw.device), (d["crow"][1:] - d["crow"][:-1]).long())
        tiles[r_idx, d["col"].long()] = d["values"]
        return tiles.transpose(1, 2).reshape(nr * bh, nc * bw)[:rows, :cols]
    counts = (d["crow"][1:] - d["crow"][:-1]).long()
    r_idx = torch.repeat_interleave(torch.arange(rows, device=sw.device), counts)
    if sw.format == "csr":
        c_idx = d["col"].long()
    else:  # bitmask: unpack the bits, row-major order matches the packed values
        bits = d["bits"].to(torch.int32)
        unpacked = ((bits.unsqueeze(-1) >> torch.arange(8, device=sw.device)) & 1).reshape(rows, -1)[:, :cols]
        _, c_idx = unpacked.nonzero(as_tuple=True)
    dense = torch.zeros(rows, cols, dtype=sw.dtype, device=sw.device)
    dense[r_idx, c_idx] = d["values"]
    return dense


def ref_sparse_linear(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """The specification of every sparse product: densify, then a dense product."""
    return torch.nn.functional.linear(x2, _densify(sw), bias)
