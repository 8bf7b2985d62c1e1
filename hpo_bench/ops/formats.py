"""Sparse weight formats: how a pruned 2-D weight is packed for inference, and unpacked again.

A pruned weight is only faster if its zeros are skipped. ``to_sparse`` packs a 2-D weight
[out_features, in_features] into a ``SparseWeight``, once per layer, in torch (packing is not on the
hot path); ``ops.sparse_linear`` then computes ``x @ W.T + bias`` from it. ``densify`` is the
inverse, and with it the meaning of every format: the torch reference multiplies by the densified
weight (``reference.sparse_linear``).

This module is the bottom of the sparse side: the backends read these buffers and may import this
module, never the dispatching ops above it.

Formats and their buffers (``SparseWeight.data``):

* ``"dense"``    weight [out, in]
* ``"csr"``      crow int32 [out+1], col int16 (in < 32768) or int32 [nnz], values [nnz]; optionally
  perm int32 [nnz]: the k-th kept value is then values[perm[k]] (a transpose that shares its values
  with the weight it transposes, as sparse training's input gradient does: ``nn.SparseTrainingLinear``)
* ``"bsr"``      block (bh, bw), each in 4..64; the weight is zero-padded to multiples of the block:
  crow int32 [out_p/bh + 1], col int32 [nnzb] (block-column index), values [nnzb, bh, bw]
* ``"bitmask"``  bits uint8 [out, ceil(in/8)] (bit j%8 of byte j//8 set = nonzero, little-endian bit
  order), crow int32 [out+1], values [nnz] in row-major order: a layout for batch <= 16
* ``"2:4"``      CUDA only: torch's semi-structured sparse tensor
  (``torch.sparse.to_sparse_semi_structured``) under ``weight``
"""
from __future__ import annotations

import torch

from .checks import SUPPORTED_DTYPES, check_no_nan

__all__ = ["SPARSE_FORMATS", "SparseWeight", "csr_pattern", "densify", "to_sparse"]

SPARSE_FORMATS = ("dense", "csr", "bsr", "bitmask", "2:4")


class SparseWeight:
    """A 2-D weight packed for inference. ``shape`` is the logical [out, in]; ``data`` holds the
    format's buffers (see the module docstring); ``block`` is (bh, bw) for BSR."""

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
        return densify(self)


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
    check_no_nan([w])
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


def densify(sw: SparseWeight) -> torch.Tensor:
    """The dense [out, in] weight that ``sw`` stands for: the meaning of its format."""
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
    dense[r_idx, c_idx] = d["values"][d["perm"].long()] if "perm" in d else d["values"]
    return dense


def csr_pattern(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The CSR structure of a 2-D bool ``mask``: crow int32 [rows+1] and col int64 [nnz], the
    True positions in row-major order."""
    crow = torch.zeros(mask.shape[0] + 1, dtype=torch.int32, device=mask.device)
    crow[1:] = mask.sum(1).cumsum(0)
    return crow, mask.nonzero(as_tuple=True)[1]


def _csr_parts(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mask = w != 0
    crow, col = csr_pattern(mask)
    return crow, col, w[mask].contiguous()


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    rows, cols = mask.shape
    padded = torch.nn.functional.pad(mask.to(torch.uint8), (0, -cols % 8))
    weights = (2 ** torch.arange(8, device=mask.device, dtype=torch.int32))
    return (padded.reshape(rows, -1, 8).to(torch.int32) * weights).sum(-1).to(torch.uint8)
