"""A suite: comparisons described as data in a TOML file, run one after another.

```toml
name = "default"                 # optional: the suite's name (default: the file's stem)
description = "..."              # optional
seeds = 10                       # default seed count (or a list) for every comparison
threads = 1                      # optional: torch CPU threads while evaluating (default: torch's)

[[comparison]]
problem = "digits-mlp"           # a registered problem (`hpo-bench problems`)
methods = ["grid", "random", "tpe"]
budget = { epochs = 30 }         # trials and/or epochs, per method and seed
seeds = 8                        # optional: overrides the suite's
name = "digits"                  # optional: the comparison's folder (default: the problem)
problem_args = { width = 2048 }  # optional: keyword arguments of the problem's factory, and
                                 # train_path (every problem's: "auto", "sparse" or "dense")
study_workers = 1                # optional: trials run at once inside each study (default 1: every
                                 # method as it behaves alone; more changes how methods behave)
best_known = 0.975               # optional: the best value known for the problem's objective (the
                                 # 0 of normalized regret; default: the best any run reached)
```

Each comparison runs into ``OUT/NAME/`` (studies.log, compare.json, its report), so rerunning the
suite continues where it stopped; ``OUT/report.md`` and ``OUT/suite.json`` gather the headlines.
With ``storage`` (a PostgreSQL URL) every comparison's studies live in that database instead; with
``workers`` the runs of every comparison are queued (queue.py: in the database, or in
``OUT/queue.sqlite3``) and that many worker processes run them before the reports are written;
``submit`` only queues them, as comparisons ``SUITE/NAME``, for workers elsewhere.
"""
from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import write_json_atomic, write_text_atomic
from ..methods import METHODS, check_method
from ..problems import PROBLEMS, TRAIN_PATHS, get_problem
from .budget import Budget
from .compare import compare
from .compare import submit as submit_runs
from .queue import RunQueue
from .storage import default_storage
from .report import describe, headline, pairwise_table, write_report
from .report.text import pairwise_note
from .report.aggregate import aggregate
from .report.markdown import aggregate_markdown
from .report.plots import plot_anytime, plot_cd, plot_iqm
from .results import CompareResult, load_compare
from .timing import timing_line, timing_of

__all__ = ["Comparison", "Suite", "load_suite", "report_suite", "run_suite", "write_suite_report"]

_SUITE_KEYS = {"name", "description", "seeds", "threads", "comparison"}
_CMP_KEYS = {"problem", "methods", "budget", "seeds", "name", "problem_args", "study_workers", "best_known"}


@dataclass(frozen=True)
class Comparison:
    name: str
    problem: str
    methods: list[str]
    budget: Budget
    seeds: list[int]
    problem_args: dict[str, Any] = field(default_factory=dict)
    study_workers: int = 1
    best_known: float | None = None

    def make_problem(self) -> Any:
        return get_problem(self.problem, **self.problem_args)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    comparisons: list[Comparison]
    path: str = ""
    threads: int | None = None


def _seeds(v: Any, where: str) -> list[int]:
    if isinstance(v, bool):
        raise ValueError(f"{where}: seeds must be a count or a list of integers, got {v!r}")
    if isinstance(v, int):
        if v < 1:
            raise ValueError(f"{where}: seeds must be >= 1, got {v}")
        return list(range(v))
    if isinstance(v, list) and v and all(isinstance(s, int) and not isinstance(s, bool) for s in v):
        if len(set(v)) != len(v):
            raise ValueError(f"{where}: seeds repeat: {v}")
        return list(v)
    raise ValueError(f"{where}: seeds must be a count or a non-empty list of integers, got {v!r}")


def _budget(v: Any, where: str) -> Budget:
    if isinstance(v, int) and not isinstance(v, bool):
        v = {"trials": v}
    if not isinstance(v, dict):
        raise ValueError(f"{where}: budget must be a table like {{ trials = 16 }} or {{ epochs = 40 }}, got {v!r}")
    extra = set(v) - {"trials", "epochs"}
    if extra:
        raise ValueError(f"{where}: unknown budget key {sorted(extra)[0]!r} (trials, epochs)")
    try:
        return Budget(trials=v.get("trials"), epochs=v.get("epochs"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite file; every error is one line that names the file and the place."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"suite file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"suite {str(path)!r}: not valid TOML ({e})") from None
    where = f"suite {path.name}"
    extra = set(data) - _SUITE_KEYS
    if extra:
        raise ValueError(f"{where}: unknown key {sorted(extra)[0]!r}; known: {', '.join(sorted(_SUITE_KEYS))}")
    cmps = data.get("comparison")
    if not cmps or not isinstance(cmps, list):
        raise ValueError(f"{where}: no [[comparison]] table")
    default_seeds = data.get("seeds")
    threads = data.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"{where}: threads must be an integer >= 1, got {threads!r}")
    out, names = [], set()
    for i, c in enumerate(cmps, start=1):
        w = f"{where}, comparison {i}"
        extra = set(c) - _CMP_KEYS
        if extra:
            raise ValueError(f"{w}: unknown key {sorted(extra)[0]!r}; known: {', '.join(sorted(_CMP_KEYS))}")
        for key in ("problem", "methods", "budget"):
            if key not in c:
                raise ValueError(f"{w}: missing key {key!r}")
        problem = c["problem"]
        if isinstance(problem, str) and "[" in problem:
            raise ValueError(f"{w}: problem {problem!r}: in a suite, write a problem's arguments as "
                             f"problem_args = {{ key = value, ... }} beside problem = \"{problem.split('[')[0]}\"")
        if not isinstance(problem, str) or problem not in PROBLEMS:
            raise ValueError(f"{w}: unknown problem {problem!r}; known: {', '.join(PROBLEMS)}")
        methods = c["methods"]
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise ValueError(f"{w}: methods must be a non-empty list of names")
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"{w}: unknown method {m!r}; known: {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"{w}: methods repeat: {methods}")
        if "seeds" not in c and default_seeds is None:
            raise ValueError(f"{w}: missing key 'seeds' (here or at the top of the suite)")
        seeds = _seeds(c.get("seeds", default_seeds), w)
        args = c.get("problem_args", {})
        if not isinstance(args, dict):
            raise ValueError(f"{w}: problem_args must be a table")
        params = inspect.signature(PROBLEMS[problem]).parameters
        for k, v in args.items():
            if k == "train_path":  # every problem's (Problem.train_path)
                if v not in TRAIN_PATHS:
                    raise ValueError(f"{w}: problem_args: train_path must be one of {', '.join(TRAIN_PATHS)}, got {v!r}")
                continue
            if k not in params:
                raise ValueError(f"{w}: problem {problem!r} takes no argument {k!r}"
                                 + (f"; it takes: {', '.join(params)}" if params else ""))
            default = params[k].default
            kinds = (int, float) if isinstance(default, float) else (type(default),)
            if default is not inspect.Parameter.empty and default is not None and (
                    isinstance(v, bool) != isinstance(default, bool) or not isinstance(v, kinds)):
                kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
                    type(default), type(default).__name__)
                raise ValueError(f"{w}: problem_args {args}: {k} must be {kind} (like its default {default!r}), "
                                 f"got {v!r}")
        name = str(c.get("name", problem))
        if name in names or not name or "/" in name:
            raise ValueError(f"{w}: name {name!r} is empty, has a '/' or repeats another comparison's")
        names.add(name)
        sw = c.get("study_workers", 1)
        if isinstance(sw, bool) or not isinstance(sw, int) or sw < 1:
            raise ValueError(f"{w}: study_workers must be an integer >= 1, got {sw!r}")
        best_known = c.get("best_known")
        if best_known is not None and (isinstance(best_known, bool) or not isinstance(best_known, (int, float))
                                       or not math.isfinite(best_known)):
            raise ValueError(f"{w}: best_known must be a number, got {best_known!r}")
        out.append(Comparison(name, problem, list(methods), _budget(c["budget"], w), seeds, dict(args), sw,
                              None if best_known is None else float(best_known)))
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), out, str(path), threads)


def run_suite(
    suite: Suite, out: str | Path, *,
    evaluator: Callable[[Any], Any] | None = None,
    device: str = "cpu",
    on_trial: Callable[[str, int, Any], None] | None = None,
    on_comparison: Callable[[Comparison, dict[str, Any]], None] | None = None,
    memo: Any | None = None,
    storage: str | None = None,
    workers: int | None = None,
    submit: bool = False,
    eval_seed: int = 0,
    quiet_workers: bool = False,
) -> dict[str, Any]:
    """Run every comparison into ``out/NAME`` and write its report; then ``out/report.md`` and
    ``out/suite.json``. ``evaluator(problem)`` builds each comparison's evaluator (default:
    ``make_evaluator``); ``memo`` as in ``search``. ``storage``, ``workers``, ``submit``: see the
    module docstring (``submit`` returns ``{"suite", "queue", "submitted": [names]}`` at once).
    Returns the suite's JSON."""
    out = Path(out)
    out.mkdir(exist_ok=True)
    if suite.threads is not None:
        import torch

        torch.set_num_threads(suite.threads)
    problems = {}
    for c in suite.comparisons:
        try:
            problems[c.name] = c.make_problem()
        except (TypeError, ValueError) as e:
            raise ValueError(f"suite {suite.path or suite.name}, comparison {c.name!r}: problem {c.problem!r} with "
                             f"problem_args {c.problem_args}: {e}") from None
        for m in c.methods:
            try:
                check_method(m, problems[c.name])
            except ValueError as e:
                raise ValueError(f"suite {suite.name}, comparison {c.name!r}: {e}") from None
    ledgers = {c.name: storage or default_storage(_mkdir(out / c.name)) for c in suite.comparisons}
    if workers is not None or submit:
        queue = RunQueue(storage or out)
        names = []
        for c in suite.comparisons:
            names.append(f"{suite.name}/{c.name}")
            submit_runs(problems[c.name], c.methods, c.budget, c.seeds, ledgers[c.name], name=names[-1],
                        eval_seed=eval_seed, problem_args=c.problem_args, study_workers=c.study_workers,
                        threads=suite.threads, queue=queue)
        if submit:
            return {"suite": suite.name, "queue": queue.url, "submitted": names}
        from .worker import CacheSpec, start_workers, wait_workers

        wait_workers(start_workers(queue, workers or 1, groups=names, cache=CacheSpec.of(memo), device=device,
                                   quiet=quiet_workers))
    results, compared = [], {}
    for c in suite.comparisons:
        problem = problems[c.name]
        d = out / c.name
        t0 = time.perf_counter()
        res = compare(problem, c.methods, c.budget, c.seeds, ledgers[c.name], out=d, device=device,
                      evaluator=evaluator(problem) if evaluator else None, memo=memo, on_trial=on_trial,
                      study_workers=c.study_workers, eval_seed=eval_seed)
        summary = write_report(d, res)
        timing = timing_of(res, time.perf_counter() - t0)
        results.append({"name": c.name, "problem": c.problem, "dir": str(d), "summary": summary, "timing": timing})
        if c.best_known is not None:
            results[-1]["best_known"] = c.best_known
        compared[c.name] = res
        if on_comparison:
            on_comparison(c, results[-1])
    payload = {"suite": suite.name, "description": suite.description, "file": suite.path, "comparisons": results}
    write_suite_report(out, payload, compared)
    return payload


def _mkdir(d: Path) -> Path:
    d.mkdir(exist_ok=True)
    return d


def report_suite(out: str | Path) -> dict[str, Any]:
    """Rewrite a finished suite's reports from its files: every comparison's (``write_report`` from
    its compare.json), then ``out/suite.json`` and ``out/report.md``. Returns the suite's JSON."""
    out = Path(out)
    try:
        payload = json.loads((out / "suite.json").read_text())
        comparisons = payload["comparisons"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(out)!r} holds no readable suite.json ({type(e).__name__}: {e})") from None
    for c in comparisons:
        c["summary"] = write_report(out / c["name"])
    write_suite_report(out, payload)
    return payload


def write_suite_report(out: Path, payload: dict[str, Any],
                       results: dict[str, CompareResult] | None = None) -> None:
    """``suite.json`` and ``report.md``: the methods across problems (``aggregate``: normalized
    regret, ranks, tests, IQM intervals; its plots cd.png, iqm.png, anytime.png), then each
    comparison's headline, pairs and timing. ``results``: the comparisons by name (default: read
    from each ``OUT/NAME/compare.json``)."""
    out = Path(out)
    name, description = payload["suite"], payload.get("description", "")
    md = [f"# Suite {name}", "", description, ""] if description else [f"# Suite {name}", ""]
    payload.pop("aggregate", None)
    agg = _aggregate(out, payload, results or {})
    if agg is not None:
        plots = {"cd": plot_cd(agg, out / "cd.png"), "iqm": plot_iqm(agg, out / "iqm.png"),
                 "anytime": plot_anytime(agg, out / "anytime.png")} if agg["methods"] and agg["blocks"] else {}
        md += aggregate_markdown(agg, plots)
        payload["aggregate"] = agg
    for c in payload["comparisons"]:
        summary, n = c["summary"], c["name"]
        md += [f"## {n}", "", describe(summary) + ".", "", "```", headline(summary), "```", "",
               "```", pairwise_table(summary, note=False), "```", "", pairwise_note(summary), "",
               timing_line(c["timing"]) + ".", "",
               f"Full report: [{n}/report.md]({n}/report.md)", "",
               f"![best so far]({n}/trajectories.png)", "", f"![final results]({n}/finals.png)", ""]
    write_json_atomic(out / "suite.json", payload)
    write_text_atomic(out / "report.md", "\n".join(md))


def _aggregate(out: Path, payload: dict[str, Any], results: dict[str, CompareResult]) -> dict[str, Any] | None:
    """The suite's aggregate over every comparison whose results can be read (None: none)."""
    comparisons = []
    for c in payload["comparisons"]:
        res = results.get(c["name"])
        if res is None:
            try:
                res = load_compare(out / c["name"])
            except ValueError:
                continue
        if res.runs:
            comparisons.append({"name": c["name"], "result": res, "best_known": c.get("best_known")})
    return aggregate(comparisons) if comparisons else None
