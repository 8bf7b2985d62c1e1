"""Adapters that expose a compiled kernel library through the backend protocol of ``hpo_bench.ops``
(``kth_magnitude``, ``prune_``, ``nm_mask_prune_``). The Triton adapter is ``hpo_bench.kernels``."""
