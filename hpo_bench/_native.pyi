"""Type stub of the C++ extension hpo_bench._native (csrc/bindings.cpp).

Buffers are passed as raw addresses (``tensor.data_ptr()``), element counts and dtype codes
(0 float32, 1 float16, 2 bfloat16); masks are bool/uint8 buffers of the same element counts.
NaN in the input raises ValueError (with "NaN" in the message) and leaves the buffers untouched.
"""

def kth_magnitude(
    ptrs: list[int], sizes: list[int], dtypes: list[int], k: int, threads: int
) -> float: ...
def prune(
    ptrs: list[int], sizes: list[int], dtypes: list[int], masks: list[int], k: int, threads: int
) -> None: ...
def nm_prune(
    ptr: int, size: int, dtype: int, mask: int, n: int, m: int, threads: int
) -> None: ...
