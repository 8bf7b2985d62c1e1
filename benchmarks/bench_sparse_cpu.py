"""pytest-benchmark suite of CPU sparse inference (native backend) and its baselines.

    pytest benchmarks/bench_sparse_cpu.py --benchmark-enable [--benchmark-json out.json]

(pyproject adds --benchmark-disable by default, so plain `pytest` runs each body once.) One layer,
W 4096x4096 float32 at 90% unstructured sparsity, batch 1 / 8 / 64, 2 threads: dense F.linear,
torch's best CPU sparse path (torch.sparse.mm on CSR times x.T) and our csr / bitmask formats.
benchmarks/sparse_cpu.py is the script whose side-by-side figures go to benchmarks/RESULTS.md.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F

from hpo_bench import ops
from hpo_bench.profile import pruned_weight

pytestmark = pytest.mark.skipif(
    "native" not in ops.available_backends(),
    reason=f"native backend: {ops.dispatch.load_error('native')}",
)

W = pruned_weight((4096, 4096), 0.9, "unstructured", torch.device("cpu"))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    W_CSR = W.to_sparse_csr()


def _paths(x):
    return {
        "dense": lambda: F.linear(x, W),
        "torch-sparse.mm": lambda: torch.sparse.mm(W_CSR, x.t()).t(),
        "csr": (lambda sw: lambda: ops.sparse_linear(x, sw))(ops.to_sparse(W, "csr")),
        "bitmask": (lambda sw: lambda: ops.sparse_linear(x, sw))(ops.to_sparse(W, "bitmask")),
    }


@pytest.mark.parametrize("path", ["dense", "torch-sparse.mm", "csr", "bitmask"])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_linear_4096_s90(benchmark, batch, path):
    x = torch.randn(batch, 4096, generator=torch.Generator().manual_seed(batch))
    fn = _paths(x)[path]
    out = benchmark(fn)
    assert out.shape == (batch, 4096)
