"""Triton backend of hpo_bench.ops (GPU; runs on CPU under ``TRITON_INTERPRET=1``).

This package implements ``hpo_bench.ops.protocol.Backend`` (its docstring says what ops has checked
before each call, the tie rule, what comes back and what is raised): ``kth_magnitude``, ``prune_``,
``nm_mask_prune_``, ``score_prune_``, ``score_kth`` for pruning, and ``SPARSE_FORMATS``, ``supports``, ``sparse_linear`` for sparse
products (BSR and CSR; ``ops`` runs its reference for every product ``supports`` declines), and
``supports_sddmm``, ``sddmm`` for sparse training's weight gradient (``ops.sddmm``). It adds
``available`` and ``unavailable_reason``: importing this package never fails, and Triton is
imported lazily and once; ``available()`` says whether the kernels can run here.

One module per op, each with its kernel(s) and launcher: select.py (the k-th |w|: a sampled bracket
and one pass over the data, radix select over the candidates or, when the bracket misses, all),
apply.py (global prune with the tie rule), nm.py (N:M), score.py (pruning by score: a radix select
per row, or the global kernels on the scores), and _common.py (keys and chunk tables);
bsr.py (BSR x dense, tl.dot per nonzero block) and skinny.py (batch <= 16, GEMV-like) for
``sparse_linear`` of BSR weights, csr.py (CSR x dense, with the optional ``perm`` of a transpose
sharing its values) for CSR ones, and sddmm_csr.py for ``sddmm`` (not sddmm.py: importing a
submodule sets the package attribute of its name, which would replace the function ``sddmm``),
each imported on first use only. Like every backend, this package imports only the
bottom of ``hpo_bench.ops`` (``formats``), never the ops that dispatch here.

Tensors that are not where the kernels run (CPU tensors on a CUDA machine, CUDA tensors under the
interpreter) are copied there and the results copied back in place.
"""
from __future__ import annotations

import os

__all__ = ["SPARSE_FORMATS", "available", "kth_magnitude", "nm_mask_prune_", "prune_", "score_kth",
           "score_prune_", "sddmm", "sparse_linear", "supports", "supports_sddmm", "unavailable_reason"]

# Any dtype ops accepts; BSR: any block size 4..64; CSR: col int16/int32, with or without perm.
SPARSE_FORMATS: tuple[str, ...] = ("bsr", "csr")

_reason: str | None = None
_checked = False


def _check() -> None:
    global _reason, _checked
    if _checked:
        return
    _checked = True
    try:
        import torch
        import triton  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        _reason = f"triton is not importable ({type(e).__name__}: {e})"
        return
    if os.environ.get("TRITON_INTERPRET", "") != "1" and not torch.cuda.is_available():
        _reason = "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on CPU, slowly)"
        return
    try:
        from . import apply, nm, score, select  # noqa: F401  (compiles nothing; catches API breaks)
    except Exception as e:  # noqa: BLE001
        _reason = f"the Triton kernels do not import ({type(e).__name__}: {e})"


def available() -> bool:
    _check()
    return _reason is None


def unavailable_reason() -> str:
    _check()
    return _reason or ""


def _on_device(tensors):
    """Context: the kernels' device made current (CUDA) and the tensors placed there."""
    import contextlib

    import torch

    from ._common import interpreting, to_kernel_device

    if not interpreting() and tensors[0].device.type == "cuda":
        ctx = torch.cuda.device(tensors[0].device)
    elif not interpreting():
        ctx = torch.cuda.device(torch.cuda.current_device())
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        work, copied = to_kernel_device(tensors)
    return ctx, work, copied


def kth_magnitude(tensors, k: int) -> float:
    from .select import kth_magnitude as run

    tensors = list(tensors)
    ctx, work, _ = _on_device(tensors)
    with ctx:
        return run(work, k)


def prune_(tensors, k: int):
    import torch

    from .apply import prune_ as run

    tensors = list(tensors)
    ctx, work, copied = _on_device(tensors)
    with ctx:
        masks = run(work, k)
    if not copied:
        return masks
    with torch.no_grad():
        for t, w in zip(tensors, work):
            t.copy_(w)
    return [m.to(t.device) for m, t in zip(masks, tensors)]


def nm_mask_prune_(tensor, n: int, m: int):
    import torch

    from .nm import nm_mask_prune_ as run

    ctx, (work,), copied = _on_device([tensor])
    with ctx:
        mask = run(work, n, m)
    if not copied:
        return mask
    with torch.no_grad():
        tensor.copy_(work)
    return mask.to(tensor.device)


def score_prune_(weights, scores, group: str, ks):
    import torch

    from .score import score_prune_ as run

    weights, scores = list(weights), list(scores)
    ctx, work, copied = _on_device(weights + scores)
    with ctx:
        masks = run(work[: len(weights)], work[len(weights):], group, list(ks))
    if not copied:
        return masks
    with torch.no_grad():
        for t, w in zip(weights, work):
            t.copy_(w)
    return [m.to(t.device) for m, t in zip(masks, weights)]


def score_kth(scores, group: str, ks):
    from .score import score_kth as run

    scores = list(scores)
    ctx, work, _ = _on_device(scores)
    with ctx:
        return run(work, group, list(ks))


def supports(x2, sw, bias) -> bool:
    """Every product of a weight in ``SPARSE_FORMATS``."""
    return sw.format in SPARSE_FORMATS


_sparse_runners: tuple | None = None  # (SKINNY_MAX_BATCH, skinny_linear, bsr_linear, csr_linear, interpreting)


def sparse_linear(x2, sw, bias=None):
    """``x2 @ W.T + bias`` for x2 [M, in] and a ``SparseWeight`` in ``SPARSE_FORMATS``: BSR (any
    block 4..64) by the skinny kernel for M <= 16 and the tl.dot kernel above that; CSR (``perm``
    or not) by csr.py at any M. The launch path is kept lean: at batch 1 the GPU work takes a few
    µs, so every µs of Python shows."""
    global _sparse_runners
    import torch

    if _sparse_runners is None:
        from ._common import interpreting
        from .bsr import bsr_linear
        from .csr import csr_linear
        from .skinny import SKINNY_MAX_BATCH, skinny_linear

        _sparse_runners = (SKINNY_MAX_BATCH, skinny_linear, bsr_linear, csr_linear, interpreting)
    skinny_max, skinny_linear, bsr_linear, csr_linear, interpreting = _sparse_runners
    if sw.format == "bsr":
        run = skinny_linear if x2.shape[0] <= skinny_max else bsr_linear
    elif sw.format == "csr":
        run = csr_linear
    else:
        raise ValueError(f"the Triton backend runs {SPARSE_FORMATS}, not {sw.format!r}")
    if x2.is_cuda and not interpreting():
        dev = x2.device
        if sw.device == dev and (bias is None or bias.device == dev):
            if dev.index != torch.cuda.current_device():
                with torch.cuda.device(dev):
                    return run(x2, sw, bias)
            return run(x2, sw, bias)
    else:
        from ._common import kernel_device

        dev = kernel_device()
        if x2.device == dev and sw.device == dev and (bias is None or bias.device == dev):
            return run(x2, sw, bias)
    # Not where the kernels run (CPU tensors on a CUDA machine, CUDA ones under the interpreter).
    out = run(x2.to(dev), _moved(sw, dev), None if bias is None else bias.to(dev))
    return out.to(x2.device)


def _moved(sw, dev):
    """``sw`` with its buffers on ``dev``."""
    from hpo_bench.ops.formats import SparseWeight

    return SparseWeight(sw.format, sw.shape, {k: v.to(dev) for k, v in sw.data.items()}, sw.block,
                        sw.dtype, dev, sw.nnz)


def supports_sddmm(g2, x2, pattern) -> bool:
    """Every ``sddmm`` of a CSR pattern (int16/int32 columns) with g and x of one float dtype."""
    import torch

    return (pattern.format == "csr" and g2.dtype == x2.dtype
            and g2.dtype in (torch.float32, torch.float16, torch.bfloat16)
            and pattern.data["col"].dtype in (torch.int16, torch.int32))


def sddmm(g2, x2, pattern):
    """``out[k] = sum_b g2[b, row_k] * x2[b, col_k]`` at the kept positions of the CSR ``pattern``
    (sddmm_csr.py), for g2 [B, rows] and x2 [B, cols]; [nnz] in their dtype, on x2's device."""
    import torch

    from ._common import interpreting, kernel_device
    from .sddmm_csr import sddmm as run

    if g2.is_cuda and not interpreting():
        dev = g2.device
        if x2.device == dev and pattern.device == dev:
            if dev.index != torch.cuda.current_device():
                with torch.cuda.device(dev):
                    return run(g2, x2, pattern)
            return run(g2, x2, pattern)
    else:
        dev = kernel_device()
        if g2.device == dev and x2.device == dev and pattern.device == dev:
            return run(g2, x2, pattern)
    # Not where the kernels run (CPU tensors on a CUDA machine, CUDA ones under the interpreter).
    out = run(g2.to(dev), x2.to(dev), _moved(pattern, dev))
    return out.to(x2.device)
