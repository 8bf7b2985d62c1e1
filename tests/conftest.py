"""Shared fixtures: a tiny but real pruning problem (digits, a 64-16-10 MLP) that fine-tunes in
milliseconds, so the method contract suite can run every method end to end on real evaluations."""
from __future__ import annotations

import hashlib
import os
import re

import pytest
import torch
from torch import nn

# Tests never touch the user's cache, even where $HPO_BENCH_CACHE points at it.
os.environ["HPO_BENCH_CACHE"] = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "hpo-bench")


def tiny_problem(multi_objective: bool = False):
    from hpo_bench import Categorical, Float, Int, Problem, SearchSpace
    from hpo_bench.problems.digits import digits_data

    train, val = digits_data()
    space = {
        "lr": Float(1e-4, 1e-1, log=True),
        "epochs": Int(1, 3),
        "pattern": Categorical(["unstructured", "unstructured-layer", "block4"]),
        "batch_size": Categorical([256, 512]),
        "weight_decay": Float(0.0, 0.01, step=0.0025),
    }
    fixed = {"sparsity": 0.8}
    objectives = ("accuracy",)
    if multi_objective:
        space = {"sparsity": Float(0.5, 0.95, step=0.05), **space}
        fixed = {}
        objectives = ("accuracy", "sparsity")
    return Problem(
        name="tiny-mo" if multi_objective else "tiny",
        model=lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 10)),
        train=train, val=val, space=SearchSpace(space), objectives=objectives, fixed=fixed,
        pretrain={"epochs": 5, "lr": 1e-2, "batch_size": 128, "seed": 0},
    )


@pytest.fixture(scope="session")
def tiny():
    torch.set_num_threads(1)
    return tiny_problem()


@pytest.fixture(scope="session")
def tiny_mo():
    return tiny_problem(multi_objective=True)


@pytest.fixture
def tiny_registry(monkeypatch):
    """The real CLI and suites over the tiny problems (milliseconds per fine-tune), registered as
    ``tiny`` and ``tiny-mo`` beside the real ones for the test's duration."""
    from hpo_bench import problems

    monkeypatch.setitem(problems.PROBLEMS, "tiny", tiny_problem)
    monkeypatch.setitem(problems.PROBLEMS, "tiny-mo", lambda: tiny_problem(multi_objective=True))


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (tests/pg_server.py) for the session. Without the binaries the
    tests that need it are skipped with the reason, except in CI (``$CI`` set), where they must run."""
    from pg_server import PostgresServer, available

    reason = available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server, request):
    """The URL of a fresh, empty database on the session's server, named after the test."""
    name = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    return postgres_server.create_database(f"t_{name[:48]}_{digest}")
