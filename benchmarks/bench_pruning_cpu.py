"""pytest-benchmark suite of the CPU magnitude-pruning ops (native backend) and their baselines.

    pytest benchmarks/bench_pruning_cpu.py --benchmark-enable [--benchmark-json out.json]

(pyproject adds --benchmark-disable by default, so plain `pytest` only runs each body once.) Sizes
are smaller than benchmarks/pruning_cpu.py (2^24 float32, ~64 MB) to keep the suite to a minute;
that script is the one whose side-by-side figures go to benchmarks/RESULTS.md.
"""
import numpy as np
import pytest
import torch
import torch.nn.utils.prune as tprune

from hpo_bench import ops

N = 1 << 24
SPARSITY = 0.9
K = ops.prune_count(N, SPARSITY)

pytestmark = pytest.mark.skipif(
    "native" not in ops.available_backends(),
    reason=f"native backend: {ops.dispatch.load_error('native')}",
)


def _fifty(gen, dtype=torch.float32):
    sizes = [N // 50 + (i % 7) * 31 for i in range(49)]
    sizes.append(N - sum(sizes))
    return [torch.randn(s, generator=gen).to(dtype) for s in sizes]


@pytest.fixture(scope="module")
def one_tensor():
    return [torch.randn(N, generator=torch.Generator().manual_seed(0))]


@pytest.fixture(scope="module")
def fifty_tensors():
    return _fifty(torch.Generator().manual_seed(1))


@pytest.mark.benchmark(group="threshold")
@pytest.mark.parametrize("layout", ["one_tensor", "fifty_tensors"])
def test_native_threshold(benchmark, request, layout):
    tensors = request.getfixturevalue(layout)
    benchmark(ops.magnitude_threshold, tensors, SPARSITY, backend="native")


@pytest.mark.benchmark(group="threshold")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_native_threshold_half(benchmark, dtype):
    tensors = _fifty(torch.Generator().manual_seed(2), dtype)
    benchmark(ops.magnitude_threshold, tensors, SPARSITY, backend="native")


@pytest.mark.benchmark(group="threshold")
def test_torch_sum_floor(benchmark, one_tensor):
    benchmark(torch.sum, one_tensor[0])


@pytest.mark.benchmark(group="threshold")
def test_torch_kthvalue(benchmark, one_tensor):
    benchmark.pedantic(lambda: one_tensor[0].abs().kthvalue(K), rounds=3, iterations=1)


@pytest.mark.benchmark(group="threshold")
def test_numpy_partition(benchmark, one_tensor):
    a = one_tensor[0].numpy()
    benchmark.pedantic(lambda: np.partition(np.abs(a), K - 1)[K - 1], rounds=3, iterations=1)


@pytest.mark.benchmark(group="prune")
def test_native_prune(benchmark, fifty_tensors):
    work = [t.clone() for t in fifty_tensors]

    def restore():
        for w, t in zip(work, fifty_tensors):
            w.copy_(t)
        return (work, SPARSITY), {"backend": "native"}

    benchmark.pedantic(ops.magnitude_prune_, setup=restore, rounds=10, iterations=1)


@pytest.mark.benchmark(group="prune")
def test_torch_global_unstructured(benchmark):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(4)])  # 2^24 weights
    original = [m.weight.detach().clone() for m in model]

    def reset():
        for m, o in zip(model, original):
            if tprune.is_pruned(m):
                tprune.remove(m, "weight")
            with torch.no_grad():
                m.weight.copy_(o)

    def run():
        tprune.global_unstructured(
            [(m, "weight") for m in model], pruning_method=tprune.L1Unstructured, amount=SPARSITY
        )

    benchmark.pedantic(run, setup=reset, rounds=3, iterations=1)


@pytest.mark.benchmark(group="nm")
def test_native_nm_2_4(benchmark, one_tensor):
    w = one_tensor[0].reshape(-1, 4096).clone()

    def restore():
        w.copy_(one_tensor[0].reshape(-1, 4096))
        return (w, 2, 4), {"backend": "native"}

    benchmark.pedantic(ops.nm_prune_, setup=restore, rounds=10, iterations=1)
