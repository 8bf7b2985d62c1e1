"""The kernel backend protocol: what a backend module provides, and what it may take for granted.

A backend is a module (``reference`` here: the torch specification; ``native``: the C++ extension;
``hpo_bench.kernels``: Triton). It imports only the bottom of ``hpo_bench.ops`` (``checks``,
``formats``), never the dispatching ops, so no backend can call back into the public API.
``Backend`` below states the protocol once; every backend implements it as module-level names.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from .formats import SparseWeight

__all__ = ["Backend"]


class Backend(Protocol):
    """The functions a kernel backend module provides, in the order ``hpo_bench.ops`` uses them.

    **Loading.** ``dispatch.load(name)`` imports the module on first use, once. An import that
    raises (or, for Triton, ``available()`` being False) makes the backend unavailable; the reason
    is kept for ``dispatch.load_error(name)``. Nothing below is called on an unavailable backend.

    **What ops has already checked** before any pruning call (``checks.check_tensors`` and the
    op's own argument checks), so a backend does not check it again:

    * ``tensors`` is a non-empty ``list`` of ``torch.Tensor``, each contiguous, each of a dtype in
      ``SUPPORTED_DTYPES`` (float32, float16, bfloat16; one list may mix them), all on one device:
      a device this backend was chosen for (native: CPU; Triton: CUDA, or any device under the
      interpreter, copying what is not where its kernels run; the reference: any). Tensors may be
      empty, of any shape, and may be ``nn.Parameter``s: write in place without autograd history.
    * ``k`` is an int with ``0 <= k <= N`` (N = total number of elements); ``1 <= k <= N`` for
      ``kth_magnitude`` (ops answers ``k == 0`` itself, with ``-inf``).
    * ``n, m`` are ints with ``m >= 1`` and ``0 <= n <= m``; the tensor has at least one dimension
      and its last dimension is a multiple of ``m``.
    * Score ops: ``scores`` is checked like ``tensors`` (its dtypes may differ from the weights');
      ``weights`` likewise, one per score tensor, of the same shape and on the same device;
      ``group`` is one of ``"global"``, ``"tensor"``, ``"row"``; ``ks`` is ``[k]`` with
      ``0 <= k <= N`` for "global", else one k per tensor with ``0 <= k <=`` the tensor's group
      size (its numel, or for "row" its row size ``numel // shape[0]``; "row" tensors have >= 2
      dims).

    **Not checked: NaN.** A full scan would double the reads of a fast backend, which finds NaN
    during its own pass instead. Every pruning function raises ``ValueError`` with "NaN" in the
    message when any input holds a NaN, and then leaves every tensor unchanged. The score ops
    likewise raise ``ValueError`` for a NaN ("NaN") or a negative ("negative") score, -0.0 aside,
    and then change no weight; NaN *weights* are no error there (they are not compared).

    **The order of magnitudes** (the tie rule) is one total order, the same on every backend:
    weights are ordered by ``|w|`` compared as exact values (float16/bfloat16 widen exactly to
    float32, so mixed-dtype lists compare by value; ``-0.0 == 0.0``; ``+-inf`` is the largest), and
    equal magnitudes by *position*: the tensors in list order, each in row-major (C) order. Pruning
    removes the first ``k`` weights of that order. A fast backend makes no concatenated copy of
    all the weights (the reference may).

    **Sparse products.** ``ops.sparse_linear`` asks ``supports(x2, sw, bias)`` and calls this
    backend's ``sparse_linear`` only if it says yes; everything else (other formats, dtypes, an
    old build) is run by ``reference.sparse_linear``. By then ops has checked that ``sw`` is a
    ``SparseWeight`` [out, in]; that ``x2`` is a contiguous 2-D [M, in] tensor (M may be 0) of
    ``sw``'s dtype and on its device; that ``bias`` is None or of shape (out,) (its dtype and device
    are not checked: ``supports`` may decline what it cannot run, or ``sparse_linear`` raise
    ValueError as ``F.linear`` would).
    """

    #: The sparse formats (names from ``formats.SPARSE_FORMATS``) that this backend's own
    #: ``sparse_linear`` runs; a declaration, for callers and tests. The reference lists them all.
    SPARSE_FORMATS: tuple[str, ...]

    def kth_magnitude(self, tensors: list[torch.Tensor], k: int) -> float:
        """The k-th smallest ``|w|`` over all tensors (1-based, in the order above) as a Python
        float: the largest magnitude that pruning ``k`` weights removes. Reads the tensors only.
        Raises ValueError on NaN."""
        ...

    def prune_(self, tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        """Set the first ``k`` weights of the order above to +0.0, in place, and return one bool
        mask per tensor (True = kept; same shape and device as the tensor; exactly ``k`` False in
        all). ``k == 0`` changes nothing and returns all-True masks. Raises ValueError on NaN
        (before writing anything)."""
        ...

    def nm_mask_prune_(self, tensor: torch.Tensor, n: int, m: int) -> torch.Tensor:
        """N:M pruning in place: in every group of ``m`` consecutive weights along the last
        dimension keep the ``n`` largest, i.e. set the first ``m - n`` of the group in the order
        above (ties: lowest position first) to +0.0. Returns the bool mask (True = kept), same
        shape and device. Raises ValueError on NaN (before writing anything)."""
        ...

    def score_prune_(self, weights: list[torch.Tensor], scores: list[torch.Tensor], group: str,
                     ks: list[int]) -> list[torch.Tensor]:
        """In each group, set the weights of the first ``k`` scores of the order above (scores in
        place of ``|w|``, compared by value, within the group: all tensors for "global", one tensor
        for "tensor", one row for "row", where a row is ``tensor.reshape(shape[0], -1)[i]``) to
        +0.0, in place; return one bool mask per weight (True = kept; same shape and device).
        Raises ValueError on a NaN or negative score before writing any weight."""
        ...

    def score_kth(self, scores: list[torch.Tensor], group: str, ks: list[int]
                  ) -> list[torch.Tensor]:
        """The k-th smallest score of each group (the largest that ``score_prune_`` removes),
        ``-inf`` where k == 0: one float32 tensor per score tensor, of shape ``(rows,)`` for "row",
        else ``()`` (the one global value repeated for "global"); on the backend's device (ops
        moves it to the scores'). Reads the scores only; ValueError on a NaN or negative score."""
        ...

    def supports(self, x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None) -> bool:
        """Whether this backend's ``sparse_linear`` runs this product here (format, dtype, build).
        Cheap (it sits on every product's launch path) and never raises."""
        ...

    def sparse_linear(self, x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None
                      ) -> torch.Tensor:
        """``x2 @ W.T + bias`` with W the weight ``sw`` stands for (``formats.densify``), called
        only when ``supports(x2, sw, bias)``. Returns a new [M, out] tensor of ``x2``'s dtype on
        ``x2``'s device, equal to ``reference.sparse_linear`` up to the rounding of a different
        summation order (products accumulate in float32)."""
        ...
