"""Type stub of the C++ extension hpo_bench._native (csrc/bindings.cpp), used through the native
backend hpo_bench.ops.native.

Buffers are passed as raw addresses (``tensor.data_ptr()``), element counts and dtype codes
(0 float32, 1 float16, 2 bfloat16); masks are bool/uint8 buffers of the same element counts.
NaN in the input raises ValueError (with "NaN" in the message) and leaves the buffers untouched.

The sparse products compute float32 ``y[batch, rows] = x[batch, cols] @ W.T (+ bias)`` with W in
one of the packed formats of hpo_bench.ops.formats (its buffers passed by address); ``x`` and
``y`` are row-major, ``bias`` is 0 for none.
"""

def kth_magnitude(
    ptrs: list[int], sizes: list[int], dtypes: list[int], k: int, threads: int
) -> float: ...
def prune(
    ptrs: list[int], sizes: list[int], dtypes: list[int], masks: list[int], k: int, threads: int
) -> None: ...
def _set_magnitude_path(path: int) -> None:
    """Test hook: how later magnitude selections run (0 auto: the bracketed pass, AVX-512 where the
    CPU has it; 1 the bracketed pass with portable kernels; 2 radix select only)."""
def _magnitude_fallbacks() -> int:
    """Test hook: selections so far that fell back from the bracketed pass to radix select."""
def nm_prune(
    ptr: int, size: int, dtype: int, mask: int, n: int, m: int, threads: int
) -> None: ...
def spmm_csr(
    crow: int, col: int, col_bytes: int, values: int, rows: int, cols: int,
    x: int, batch: int, bias: int, y: int, threads: int, perm: int = 0,
) -> None: ...
def spmm_bsr(
    crow: int, col: int, values: int, bh: int, bw: int, rows: int, cols: int,
    x: int, batch: int, bias: int, y: int, threads: int,
) -> None: ...
def spmm_bitmask(
    bits: int, crow: int, values: int, rows: int, cols: int,
    x: int, batch: int, bias: int, y: int, threads: int,
) -> None: ...
def sddmm_csr(
    crow: int, col: int, col_bytes: int, rows: int, cols: int,
    g: int, x: int, batch: int, out: int, threads: int,
) -> None: ...
def score_prune(
    weights: list[int], scores: list[int], sizes: list[int], wdtypes: list[int], sdtypes: list[int],
    masks: list[int], rows: list[int], group: int, ks: list[int], threads: int, simd: bool = True,
) -> None: ...
def score_kth(
    scores: list[int], sizes: list[int], sdtypes: list[int], outs: list[int], rows: list[int], group: int,
    ks: list[int], threads: int, simd: bool = True,
) -> None: ...
