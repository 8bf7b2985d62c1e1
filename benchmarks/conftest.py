"""Shared by the pytest-benchmark suites in this folder: every figure is taken with 2 threads."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)
