"""profile-kernels: a progress line per point, results saved after every point (an interrupted run
continues where it stopped, a different grid or device starts afresh), timing repeated until the
spread is small (the spread recorded, a warning when it stays large or a point disagrees with the
others), a warning on a busy machine, a plot. The timer is replaced wherever the numbers matter:
no wall-clock timing is asserted."""
import json
import re

import pytest

from hpo_bench.cli import main
from hpo_bench.profile import GRIDS, format_table, measure, plot, profile_kernels, relative_iqr
from hpo_bench.profile import run as run_mod

TINY = {"shapes": [(32, 64)], "sparsities": [0.5, 0.9, 0.99], "batches": [1, 4], "patterns": ["unstructured"],
        "repeats": 1, "min_rounds": 3, "max_rounds": 6, "target": 0.1, "max_seconds": 60.0}
N_TINY = 6
BASE = {"dense": 1e-3, "csr": 2e-4, "bsr": 3e-4, "bitmask": 4e-4}


class FakeTimer:
    """Stands in for sparsify.time_interleaved: fixed seconds per path (``dense(call)`` for dense),
    and counts its calls (one call is one round of one point)."""

    def __init__(self, dense=lambda call: BASE["dense"], torch_path=5e-4):
        self.calls, self.dense, self.torch_path, self.paths = 0, dense, torch_path, []

    def __call__(self, fns, repeats, device):
        self.calls += 1
        self.paths.append(sorted(fns))
        return {k: self.dense(self.calls) if k == "dense" else BASE.get(k, self.torch_path) for k in fns}


@pytest.fixture()
def timer(monkeypatch):
    t = FakeTimer()
    monkeypatch.setattr(measure, "time_interleaved", t)
    return t


def quiet_machine(monkeypatch, load=0.0):
    monkeypatch.setattr(run_mod.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(run_mod.os, "cpu_count", lambda: 2)


def test_cli_progress_line_per_point_json_and_png(tmp_path, capsys, monkeypatch, timer):
    quiet_machine(monkeypatch)
    out = tmp_path / "prof"
    assert main(["profile-kernels", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    n = len(GRIDS["quick"]["shapes"]) * len(GRIDS["quick"]["patterns"]) * len(GRIDS["quick"]["sparsities"]) \
        * len(GRIDS["quick"]["batches"])
    progress = [ln for ln in captured.err.splitlines() if re.match(r"\[\s*[\d.]+ s\] point \d+/\d+ ", ln)]
    assert len(progress) == n, captured.err  # one per point, though stderr is no terminal here
    assert progress[0].startswith("[") and f"point 1/{n}  512x1024 unstructured sparsity 0.5 batch 1: choice " \
        in progress[0] and "x dense (spread 0%, 3 rounds)" in progress[0]
    assert "load average 0.00 (1 min) on 2 cores" in captured.err
    assert "x dense" in captured.out and "spread" in captured.out and "point " not in captured.out
    result = json.loads((out / "profile.json").read_text())
    assert result["complete"] and len(result["points"]) == n and result["warnings"] == []
    p = result["points"][0]
    assert {"dense", "csr", "bsr", "bitmask"} <= set(p["seconds"]) and p["choice"] in p["seconds"]
    assert set(p["spread"]) == set(p["seconds"]) and p["rounds"] == 3
    assert (out / "profile.png").stat().st_size > 0
    # the same command again: nothing measured, stdout is pure JSON with --json
    calls = timer.calls
    assert main(["profile-kernels", "--quick", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert timer.calls == calls
    assert f"{n} of {n} points already measured, continuing" in captured.err
    assert json.loads(captured.out)["points"] == result["points"]


def test_quick_and_full_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        main(["profile-kernels", "--quick", "--full"])
    assert e.value.code == 2


def test_interrupted_run_keeps_its_points_and_a_rerun_measures_only_the_rest(tmp_path, monkeypatch, timer):
    quiet_machine(monkeypatch)
    path = tmp_path / "profile.json"
    seen = []

    def stop_after_two(point):
        seen.append(point)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile_kernels("cpu", TINY, out=path, on_point=stop_after_two)
    saved = json.loads(path.read_text())
    assert not saved["complete"] and len(saved["points"]) == 2
    assert [(p["sparsity"], p["batch"]) for p in saved["points"]] == [(0.5, 1), (0.5, 4)]
    assert timer.calls == 2 * TINY["min_rounds"]

    timer.calls, lines, fresh_points = 0, [], []
    result = profile_kernels("cpu", TINY, out=path, on_point=fresh_points.append, log=lines.append)
    assert timer.calls == (N_TINY - 2) * TINY["min_rounds"]  # only the 4 missing points were timed
    assert len(fresh_points) == N_TINY - 2
    assert f"2 of {N_TINY} points already measured, continuing" in lines
    assert len([ln for ln in lines if " point " in ln]) == N_TINY - 2
    assert result["complete"] and len(result["points"]) == N_TINY
    assert result["points"][:2] == saved["points"]
    assert json.loads(path.read_text())["complete"]


def test_a_changed_grid_or_device_measures_everything_again(tmp_path, monkeypatch, timer):
    quiet_machine(monkeypatch)
    path = tmp_path / "profile.json"
    profile_kernels("cpu", TINY, out=path)
    assert timer.calls == N_TINY * TINY["min_rounds"]
    # one sparsity more: the 6 points in common are not reused, the old file is kept aside
    timer.calls, lines = 0, []
    result = profile_kernels("cpu", {**TINY, "sparsities": [0.5, 0.9, 0.95, 0.99]}, out=path, log=lines.append)
    assert timer.calls == 8 * TINY["min_rounds"] and len(result["points"]) == 8
    assert not any("already measured" in ln for ln in lines)
    assert len(json.loads((tmp_path / "profile.previous.json").read_text())["points"]) == N_TINY
    # the same grid on "another machine"
    monkeypatch.setattr(run_mod, "device_name", lambda dev: "another CPU x64 threads")
    timer.calls = 0
    profile_kernels("cpu", {**TINY, "sparsities": [0.5, 0.9, 0.95, 0.99]}, out=path)
    assert timer.calls == 8 * TINY["min_rounds"]
    # the same again: nothing to do; --fresh: everything again
    timer.calls = 0
    profile_kernels("cpu", {**TINY, "sparsities": [0.5, 0.9, 0.95, 0.99]}, out=path)
    assert timer.calls == 0
    profile_kernels("cpu", {**TINY, "sparsities": [0.5, 0.9, 0.95, 0.99]}, out=path, fresh=True)
    assert timer.calls == 8 * TINY["min_rounds"]


def test_a_corrupt_file_is_measured_again(tmp_path, monkeypatch, timer):
    quiet_machine(monkeypatch)
    path = tmp_path / "profile.json"
    path.write_text("{ not json")
    assert len(profile_kernels("cpu", TINY, out=path)["points"]) == N_TINY
    assert timer.calls == N_TINY * TINY["min_rounds"]


def test_noisy_timings_run_to_the_cap_record_the_spread_and_warn(tmp_path, monkeypatch):
    quiet_machine(monkeypatch)
    noisy = FakeTimer(dense=lambda call: BASE["dense"] * (1, 3, 0.4, 5, 1.7)[call % 5])
    monkeypatch.setattr(measure, "time_interleaved", noisy)
    lines = []
    result = profile_kernels("cpu", TINY, out=tmp_path / "profile.json", log=lines.append)
    for p in result["points"]:
        assert p["rounds"] == TINY["max_rounds"] and not p["stable"]
        assert p["spread"]["dense"] > TINY["target"] and p["spread"]["csr"] == 0
        assert p["warnings"] and "machine busy? timings of this point vary by" in p["warnings"][0]
    spread_warnings = [w for w in result["warnings"] if "vary by" in w]
    assert len(spread_warnings) == N_TINY
    assert json.loads((tmp_path / "profile.json").read_text())["warnings"] == result["warnings"]
    assert len([ln for ln in lines if ln.startswith("warning: ") and "vary by" in ln]) == N_TINY  # said once each
    assert " !" in format_table(result) and "warning: " in format_table(result)


def test_steady_timings_stop_at_the_minimum_rounds(monkeypatch, timer):
    quiet_machine(monkeypatch)
    result = profile_kernels("cpu", TINY)
    assert all(p["rounds"] == TINY["min_rounds"] and p["stable"] and p["spread"]["dense"] == 0
               for p in result["points"])
    assert result["warnings"] == []


def test_a_point_that_disagrees_with_the_others_is_flagged(monkeypatch):
    """A load that slows every round alike leaves no spread: dense 10x slower at one sparsity is."""
    quiet_machine(monkeypatch)
    state = {"n": 0}

    def dense(call):
        return BASE["dense"] * (10 if state["slow"] else 1)

    t = FakeTimer(dense=dense)

    def timed(fns, repeats, device):
        state["slow"] = state["n"] // TINY["min_rounds"] == 2  # the third point: sparsity 0.9, batch 1
        state["n"] += 1
        return t(fns, repeats, device)

    monkeypatch.setattr(measure, "time_interleaved", timed)
    result = profile_kernels("cpu", TINY)
    flagged = [(p["sparsity"], p["batch"]) for p in result["points"] if p["warnings"]]
    assert flagged == [(0.9, 1)]
    assert "dense took 10 ms here, 1 ms (median)" in result["warnings"][0]


def test_a_busy_machine_is_reported_at_the_start(monkeypatch, timer):
    quiet_machine(monkeypatch, load=3.5)
    lines = []
    result = profile_kernels("cpu", {**TINY, "sparsities": [0.9]}, log=lines.append)
    assert lines[0].startswith("warning: load average 3.50 (1 min) on 2 cores: machine busy?")
    assert result["warnings"] == [lines[0].removeprefix("warning: ")]
    quiet_machine(monkeypatch, load=0.2)
    assert profile_kernels("cpu", {**TINY, "sparsities": [0.9]})["warnings"] == []


def test_a_slow_torch_path_is_timed_in_the_first_round_only(monkeypatch):
    quiet_machine(monkeypatch)
    t = FakeTimer(torch_path=100 * BASE["dense"])
    monkeypatch.setattr(measure, "time_interleaved", t)
    p = profile_kernels("cpu", {**TINY, "sparsities": [0.9], "batches": [4]})["points"][0]
    assert any(k.startswith("torch-") for k in t.paths[0])
    assert all(not k.startswith("torch-") for paths in t.paths[1:] for k in paths)
    assert p["speedup_torch"] == pytest.approx(0.01) and p["spread"][p["torch_best"]] is None


def test_a_torch_path_far_slower_than_dense_is_timed_by_one_call(monkeypatch, timer):
    quiet_machine(monkeypatch)
    monkeypatch.setattr(measure, "SLOW", 0.0)
    monkeypatch.setattr(measure, "SLOW_ONCE", 0.0)  # every torch path counts as far slower here
    p = profile_kernels("cpu", {**TINY, "sparsities": [0.9], "batches": [4]})["points"][0]
    assert p["timed_once"] == ["torch-bsr", "torch-csr", "torch-sparse.mm"]
    assert all(not k.startswith("torch-") for paths in timer.paths for k in paths)
    assert all(p["seconds"][k] > 0 and p["spread"][k] is None for k in p["timed_once"])
    assert p["spread"]["dense"] == 0 and p["torch_best"] in p["timed_once"]


def test_relative_iqr():
    assert relative_iqr([1.0]) is None
    assert relative_iqr([2.0, 2.0, 2.0]) == 0
    assert relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4 - 2) / 3)


def test_plot_is_written_with_flagged_points_and_without_torch_paths(tmp_path, monkeypatch, timer):
    quiet_machine(monkeypatch)
    result = profile_kernels("cpu", {**TINY, "patterns": ["unstructured", "block16"], "shapes": [(32, 64), (48, 64)]})
    result["points"][0]["warnings"] = ["suspect"]
    for p in result["points"][-3:]:
        p["speedup_torch"] = None
    assert plot(result, tmp_path / "p.png").stat().st_size > 0


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="sparsities"):
        profile_kernels("cpu", TINY, sparsities=[1.0])
    with pytest.raises(ValueError, match="unknown grid"):
        profile_kernels("cpu", "huge")
