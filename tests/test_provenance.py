"""Provenance: the git commit, versions, device and workers recorded with every result; never fails."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hpo_bench.harness import provenance as prov
from hpo_bench.harness.compare import compare_json
from hpo_bench.harness.results import CompareResult, RunResult

KEYS = {"git_commit", "git_dirty", "versions", "device", "n_workers", "workers"}
VERSIONS = {"torch", "optuna", "scikit-optimize", "numpy", "scipy", "python", "hpo_bench"}


def _result():
    res = CompareResult(problem="p", objectives=["accuracy"], directions=["maximize"],
                        budget={"trials": 1, "epochs": None}, seeds=[0, 1], workers=3, device="cuda:0")
    for m in ("grid", "tpe"):
        for s in (0, 1):
            res.runs.append(RunResult(problem="p", method=m, seed=s, budget=res.budget, objectives=["accuracy"],
                                      directions=["maximize"], study_name=f"{m}-{s}", n_workers=2 if m == "tpe" else 1))
    return res


def test_provenance_has_every_key():
    import numpy
    import optuna

    got = prov.provenance(_result())
    assert set(got) == KEYS
    assert set(got["versions"]) == VERSIONS
    assert got["versions"]["optuna"] == optuna.__version__ and got["versions"]["numpy"] == numpy.__version__
    assert got["device"] == "cuda:0" and got["workers"] == 3
    assert got["n_workers"] == {"grid": {"0": 1, "1": 1}, "tpe": {"0": 2, "1": 2}}
    json.dumps(got)  # JSON-able


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_git_commit_of_a_checkout_and_none_elsewhere(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert prov.git_commit(plain) is None and prov.git_dirty(plain) is None
    assert prov.git_commit(tmp_path / "missing") is None
    repo = tmp_path / "repo"
    (repo / "hpo_bench").mkdir(parents=True)
    (repo / "hpo_bench" / "x.py").write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert prov.git_commit(repo) == head and prov.git_dirty(repo) is False
    (repo / "hpo_bench" / "x.py").write_text("x = 2\n")
    assert prov.git_dirty(repo) is True
    # a folder inside some other checkout (an installed package under a repository) is not ours
    assert prov.git_commit(repo / "hpo_bench") is None
    assert prov.provenance(_result(), root=plain)["git_commit"] is None


def test_the_source_tree_commit_when_this_is_a_checkout():
    root = Path(prov.__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert prov.provenance()["git_commit"] == head


def test_provenance_never_raises(monkeypatch, tmp_path):
    def broken(*a, **k):
        raise OSError("no git here")

    def missing(name):
        raise RuntimeError("broken metadata")

    monkeypatch.setattr(prov.subprocess, "run", broken)
    assert prov.git_commit() is None and prov.git_dirty() is None
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", missing)
    got = prov.provenance(None, root=tmp_path)
    assert set(got) == KEYS and got["git_commit"] is None
    assert {k: v for k, v in got["versions"].items() if k not in ("python", "hpo_bench")} == {
        "torch": None, "optuna": None, "scikit-optimize": None, "numpy": None, "scipy": None}
    assert got["versions"]["hpo_bench"]  # falls back on hpo_bench.__version__
    assert got["n_workers"] == {} and got["device"] is None


def test_compare_json_carries_it_before_the_runs():
    res = _result()
    for r in res.runs:
        r.trials = []
    d = compare_json(res)
    assert list(d)[-2:] == ["provenance", "runs"]
    assert d["provenance"]["device"] == "cuda:0" and d["device"] == "cuda:0"
    assert CompareResult.from_dict(json.loads(json.dumps(d))).device == "cuda:0"
