"""benchmarks/gpu/size_suite.py: the arithmetic that sizes a GPU comparison to its lease (issue
18), checked against brute force over every (seeds, epochs), and the script end to end on a CPU."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("size_suite", ROOT / "benchmarks" / "gpu" / "size_suite.py")
size_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(size_suite)


def _brute(per_epoch, per_trial, methods, seconds, max_epochs, max_seeds, min_seeds=2, min_epochs=2, choose=0.5):
    """Every (seeds, epochs) that fits, by the same cost model written out independently: the one
    ``sized`` must pick is the most seeds at full epochs, else min_seeds at the most epochs."""
    def cost(s, e):
        return 1.5 * methods * s * (e * per_epoch + e / 3.0 * (per_trial + choose))

    full = [s for s in range(min_seeds, max(max_seeds, min_seeds) + 1) if cost(s, max_epochs) <= seconds]
    if full:
        return max(full), max_epochs
    fit = [e for e in range(min_epochs, max_epochs + 1) if cost(min_seeds, e) <= seconds]
    return (min_seeds, max(fit)) if fit else (0, 0)


@pytest.mark.parametrize("per_epoch,per_trial,methods,seconds", [
    (0.1, 0.05, 5, 30), (0.02, 0.0, 5, 30), (1.0, 2.0, 3, 200), (5.0, 1.0, 3, 200), (0.5, 0.5, 5, 10),
    (30.0, 5.0, 5, 100),
])
def test_sized_picks_what_brute_force_picks(per_epoch, per_trial, methods, seconds):
    seeds, epochs, estimate = size_suite.sized(per_epoch, per_trial, methods, seconds, 30, 8)
    assert (seeds, epochs) == _brute(per_epoch, per_trial, methods, seconds, 30, 8)
    if seeds:
        assert estimate <= seconds


def test_more_time_never_sizes_smaller():
    last = (0, 0)
    for seconds in range(5, 1500, 5):  # 8 seeds x 30 epochs need 1,200 s here
        seeds, epochs, _ = size_suite.sized(0.4, 0.3, 5, seconds, 30, 8)
        assert seeds * epochs >= last[0] * last[1]
        last = (seeds, epochs)
    assert last == (8, 30)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="per_epoch_s"):
        size_suite.sized(0.0, 0.1, 5, 100, 30, 8)


def test_the_script_writes_a_suite_that_loads(tmp_path):
    from hpo_bench.harness.suite import load_suite

    out, cal = tmp_path / "sized.toml", tmp_path / "cal.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "size_suite.py"),
                    str(ROOT / "benchmarks" / "suites" / "default.toml"), "--comparison", "digits-mlp",
                    "--device", "cpu", "--seconds", "20", "--out", str(out), "--json", str(cal), "--no-pretrain"],
                   check=True, capture_output=True, text=True, cwd=ROOT)
    numbers = json.loads(cal.read_text())
    (cmp,) = load_suite(out).comparisons
    assert len(cmp.seeds) == numbers["seeds"] >= 2 and cmp.budget.epochs == numbers["epochs"]
    assert cmp.methods == ["grid", "random", "gp", "tpe", "tpe-hyperband"]
    assert numbers["per_epoch_s"] > 0 and numbers["estimate_s"] <= 20
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "size_suite.py"),
                          str(ROOT / "benchmarks" / "suites" / "default.toml"), "--comparison", "nope",
                          "--seconds", "20", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "no comparison 'nope'" in bad.stderr
