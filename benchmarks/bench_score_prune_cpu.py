"""pytest-benchmark suite of row-wise pruning by score (native backend) and its torch baseline.

    pytest benchmarks/bench_score_prune_cpu.py --benchmark-enable [--benchmark-json out.json]

(pyproject adds --benchmark-disable by default, so plain `pytest` only runs each body once.) One
1024 x 4096 layer (Wanda-like scores |W| * c_j) at sparsity 0.5, smaller than
benchmarks/score_prune_cpu.py (4096 x 4096 and 4096 x 14336), which is the script whose side-by-side
figures go to benchmarks/RESULTS.md.
"""
import pytest
import torch

from hpo_bench import ops

ROWS, COLS, SPARSITY = 1024, 4096, 0.5
K = ops.prune_count(COLS, SPARSITY)

pytestmark = pytest.mark.skipif(
    "native" not in ops.available_backends(),
    reason=f"native backend: {ops.dispatch.load_error('native')}",
)


def _layer(dtype):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(ROWS, COLS, generator=gen)
    return w.to(dtype), (w.abs() * (torch.rand(COLS, generator=gen) + 0.05)).to(dtype)


@pytest.mark.benchmark(group="score-row")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_native_score_prune_rows(benchmark, dtype):
    w0, s = _layer(dtype)
    w = w0.clone()

    def restore():
        w.copy_(w0)
        return (w, s, SPARSITY, "row"), {"backend": "native"}

    benchmark.pedantic(ops.score_prune_, setup=restore, rounds=20, iterations=1)


@pytest.mark.benchmark(group="score-row")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_native_score_threshold_rows(benchmark, dtype):
    _, s = _layer(dtype)
    benchmark(ops.score_threshold, s, SPARSITY, "row", backend="native")


@pytest.mark.benchmark(group="score-row")
def test_torch_topk_rows(benchmark):
    # The fastest torch op for the same selection (benchmarks/score_prune_cpu.py compares them all).
    _, s = _layer(torch.float32)
    benchmark.pedantic(lambda: s.topk(K, dim=1, largest=False, sorted=False), rounds=3, iterations=1)
