"""Hypervolume for any number of objectives (stats.hypervolume: Optuna's own compute_hypervolume),
checked against brute force, and a 3-objective comparison summarised and reported end to end."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from hpo_bench.harness.report import summarize, write_report
from hpo_bench.harness.results import CompareResult, RunResult, TrialRecord
from hpo_bench.harness.stats import hypervolume, hypervolume_2d


def _grid_count(points, reference):
    """Minimisation, integer points: how many unit cells [c, c + 1) below the reference some point
    weakly dominates (p <= c on every coordinate): the hypervolume, by counting."""
    pts = np.asarray(points, dtype=int).reshape(-1, len(reference))
    count = 0
    for cell in itertools.product(*(range(int(min(pts[:, i].min(), r)), r) for i, r in enumerate(reference))):
        if np.any(np.all(pts <= np.asarray(cell), axis=1)):
            count += 1
    return count


def _inclusion_exclusion(points, reference, directions):
    """Exact hypervolume of a few points: the sum over non-empty subsets S of
    (-1)^(|S|+1) * volume of the box every point of S dominates."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    ref = sign * np.asarray(reference, dtype=float)
    pts = [sign * np.asarray(p, dtype=float) for p in points]
    total = 0.0
    for k in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * float(np.prod(np.clip(ref - corner, 0.0, None)))
    return total


@pytest.mark.parametrize("dims", [3, 4])
def test_hypervolume_counts_the_dominated_cells_of_integer_points(dims):
    rng = np.random.default_rng(7)
    reference = [6] * dims
    for _ in range(25 if dims == 3 else 10):
        pts = rng.integers(0, 6, size=(int(rng.integers(1, 9)), dims))
        assert hypervolume(pts.tolist(), reference) == pytest.approx(_grid_count(pts, reference), abs=1e-9)


def test_hypervolume_3d_maximised_and_mixed_directions_by_counting():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pts = rng.integers(0, 6, size=(int(rng.integers(1, 8)), 3))
        # (accuracy-like max, sparsity-like max, latency-like min) against (0, 0, 6): mirror the
        # maximised axes onto minimisation (v -> 6 - v) and count
        mirrored = np.column_stack([6 - pts[:, 0], 6 - pts[:, 1], pts[:, 2]])
        got = hypervolume(pts.tolist(), [0, 0, 6], ["maximize", "maximize", "minimize"])
        assert got == pytest.approx(_grid_count(mirrored, [6, 6, 6]), abs=1e-9)


def test_hypervolume_3d_matches_monte_carlo_on_real_points():
    rng = np.random.default_rng(11)
    pts = rng.random((12, 3))
    ref = np.array([1.0, 1.0, 1.0])
    samples = rng.random((200_000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for p in pts:
        dominated |= np.all(samples >= p, axis=1)
    est, se = dominated.mean(), dominated.std() / np.sqrt(len(samples))
    assert abs(hypervolume(pts.tolist(), ref.tolist()) - est) < 5 * se + 1e-12


def test_hypervolume_equals_inclusion_exclusion_with_points_beyond_the_reference():
    rng = np.random.default_rng(5)
    dirs = ["maximize", "maximize", "minimize"]
    for _ in range(30):
        pts = np.column_stack([rng.random(6), rng.random(6), rng.random(6) * 12]).tolist()
        pts.append([-0.1, 0.5, 1.0])   # worse than the reference's accuracy: adds nothing, refused by Optuna
        pts.append([0.5, 0.5, 11.0])   # latency beyond the reference: adds nothing
        ref = [0.0, 0.0, 10.0]
        assert hypervolume(pts, ref, dirs) == pytest.approx(_inclusion_exclusion(pts, ref, dirs), rel=1e-12, abs=1e-12)


def test_hypervolume_agrees_with_the_2d_staircase():
    rng = np.random.default_rng(1)
    for dirs in (("minimize", "minimize"), ("maximize", "maximize"), ("maximize", "minimize")):
        for _ in range(30):
            pts = (rng.random((int(rng.integers(0, 15)), 2)) * 1.2 - 0.1).tolist()
            ref = [0.0, 1.0] if dirs == ("maximize", "minimize") else ([1.0, 1.0] if dirs[0] == "minimize" else [0.0, 0.0])
            assert hypervolume(pts, ref, dirs) == pytest.approx(hypervolume_2d(pts, ref, dirs), abs=1e-12)


def test_hypervolume_edges():
    assert hypervolume([], [1.0, 1.0, 1.0]) == 0.0
    assert hypervolume([[2.0, 0.0, 0.0]], [1.0, 1.0, 1.0]) == 0.0        # beyond the reference on one axis
    assert hypervolume([[float("nan"), 0.0, 0.0]], [1.0, 1.0, 1.0]) == 0.0
    assert hypervolume([[0.5, 0.5, 0.5]] * 3, [1.0, 1.0, 1.0]) == pytest.approx(0.125)  # duplicates count once
    with pytest.raises(ValueError):
        hypervolume([[0.5, 0.5]], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        hypervolume([[0.5, 0.5, 0.5]], [1.0, 1.0, 1.0], ["maximize", "minimize"])


# ---------------------------------------------------------------------- a 3-objective comparison
OBJ = ["accuracy", "sparsity", "latency_ms"]
DIRS = ["maximize", "maximize", "minimize"]
VALUES = {  # method -> seed -> trials' (accuracy, sparsity, latency_ms)
    "a": {0: [(0.9, 0.5, 3.0), (0.8, 0.9, 5.0), (0.95, 0.2, 2.0)], 1: [(0.7, 0.7, 4.0), (0.9, 0.6, 6.0)],
          2: [(0.85, 0.8, 3.5), (0.6, 0.95, 2.5)]},
    "b": {0: [(0.5, 0.5, 8.0), (0.6, 0.6, 7.0)], 1: [(0.95, 0.9, 1.5)], 2: [(0.8, 0.8, 8.0), (0.7, 0.5, 9.0)]},
}


def _three_objective():
    res = CompareResult(problem="hand-3", objectives=OBJ, directions=DIRS, budget={"trials": 3, "epochs": None},
                        seeds=[0, 1, 2], baseline={"config": {}, "values": {"accuracy": 0.5, "sparsity": 0.3,
                                                                            "latency_ms": 6.0}})
    for m, per in VALUES.items():
        for s, pts in per.items():
            trials = [TrialRecord(number=i, state="COMPLETE", params={"i": i}, values=list(v), curve=[v[0]],
                                  nominal_epochs=1, actual_epochs=1, seconds=0.0) for i, v in enumerate(pts)]
            res.runs.append(RunResult(problem="hand-3", method=m, seed=s, budget=res.budget, objectives=OBJ,
                                      directions=DIRS, study_name=f"{m}-{s}", trials=trials))
    return res


def test_a_three_objective_comparison_is_summarised_and_reported(tmp_path):
    res = _three_objective()
    summary = write_report(tmp_path, res)
    worst_latency = max(v[2] for per in VALUES.values() for pts in per.values() for v in pts)
    ref = [0.0, 0.0, worst_latency]
    assert summary["hv_reference"] == ref
    assert summary["metric"] == "hypervolume(accuracy, sparsity, latency_ms)"
    for m, per in VALUES.items():
        want = [_inclusion_exclusion(per[s], ref, DIRS) for s in sorted(per)]
        assert summary["summary"][m]["finals"] == pytest.approx(want, rel=1e-12)
        assert [summary["front_hypervolumes"][m][str(s)] for s in sorted(per)] == pytest.approx(want, rel=1e-12)
        assert summary["summary"][m]["median"] == pytest.approx(float(np.median(want)))
        # the latency matters: the same points in 2-D would give another number
        assert want != pytest.approx([hypervolume_2d([p[:2] for p in per[s]], ref[:2], DIRS[:2]) for s in sorted(per)])
    assert summary["baseline_hypervolume"] == pytest.approx(0.5 * 0.3 * (worst_latency - 6.0))
    (pair,) = summary["pairwise"]
    fa, fb = summary["summary"]["a"]["finals"], summary["summary"]["b"]["finals"]
    assert (pair["wins"], pair["ties"], pair["losses"]) == (sum(x > y for x, y in zip(fa, fb)), 0,
                                                            sum(x < y for x, y in zip(fa, fb)))
    assert pair["n"] == 3 and pair["min_p"] == 0.25
    assert summary["time_to_target"]["best"] == pytest.approx(max(fa + fb))
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    md = (tmp_path / "report.md").read_text()
    assert "hypervolume(accuracy, sparsity, latency_ms)" in md and "HV median" in md
    assert "volume its Pareto front of (accuracy, sparsity, latency_ms)" in md
    assert not (tmp_path / "pareto.png").exists()      # a plane cannot show three objectives
    section = md.split("## Pareto fronts", 1)[1]
    assert section.count("seed  trial  accuracy  sparsity  latency_ms") == 2
    assert (tmp_path / "trajectories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
