"""Compression problems: ``PROBLEMS`` maps a name to a factory that builds a ``Problem``."""
from __future__ import annotations

import inspect
from collections.abc import Callable

from .base import OBJECTIVES, TASKS, TRAIN_PATHS, Objective, Problem
from .cifar import cifar10_resnet20, cifar10_resnet20_mo
from .digits import (digits_cnn, digits_mlp, digits_mlp_criteria, digits_mlp_latency, digits_mlp_mo,
                     digits_mlp_nuisance)
from .lm import lm_bytes, lm_bytes_mo
from .synthetic import synthetic_mlp

__all__ = ["OBJECTIVES", "Objective", "PROBLEMS", "Problem", "TASKS", "TRAIN_PATHS", "get_problem"]

PROBLEMS: dict[str, Callable[[], Problem]] = {
    "digits-mlp": digits_mlp,
    "digits-mlp-mo": digits_mlp_mo,
    "digits-mlp-latency": digits_mlp_latency,
    "digits-cnn": digits_cnn,
    "digits-mlp-nuisance": digits_mlp_nuisance,
    "digits-mlp-criteria": digits_mlp_criteria,
    "synthetic-mlp": synthetic_mlp,
    "lm-bytes": lm_bytes,
    "lm-bytes-mo": lm_bytes_mo,
    "cifar10-resnet20": cifar10_resnet20,
    "cifar10-resnet20-mo": cifar10_resnet20_mo,
}


def get_problem(name: str, **args: object) -> Problem:
    """A registered problem, built with its factory's keyword ``args``; with any, the problem's
    name says them (``digits-mlp[width=2048]``), so its studies never share a name with the
    problem built otherwise. (``table:PROBLEM`` names, answered from the checkpoint cache, are
    resolved a layer up, by ``hpo_bench.evaluate.load_problem``.)"""
    if "[" in name or name.endswith("]"):  # the name a problem with arguments carries, read back
        if not (name.endswith("]") and name.count("[") == 1 and name.count("]") == 1):
            raise ValueError(f"problem {name!r}: arguments are written NAME[key=value,...] (one pair of brackets)")
        name, parsed = _parse_args(name)
        args = {**parsed, **args}
    try:
        factory = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}") from None
    train_path = args.pop("train_path", None)  # every problem's argument (Problem.train_path)
    if train_path is not None and train_path not in TRAIN_PATHS:
        raise ValueError(f"problem {name!r}: unknown train_path {train_path!r}; choose one of {', '.join(TRAIN_PATHS)}")
    try:
        inspect.signature(factory).bind(**args)
    except TypeError as e:  # an argument the factory does not take
        takes = ", ".join([*inspect.signature(factory).parameters, "train_path"])
        raise ValueError(f"problem {name!r} with arguments {args}: {e}; it takes: {takes}") from None
    problem = factory(**args)
    if train_path is not None:
        problem.train_path = str(train_path)
        if train_path != "auto":  # (the default: the name stays the problem's own)
            args["train_path"] = train_path
    if args:
        problem.name = f"{problem.name}[{','.join(f'{k}={v}' for k, v in sorted(args.items()))}]"
    return problem


def _parse_args(name: str) -> tuple[str, dict[str, object]]:
    """``digits-mlp[train_path=dense,width=2048]`` -> ("digits-mlp", {...}); values that read as a
    number or true/false become one."""
    base, _, rest = name[:-1].partition("[")
    args: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"problem {name!r}: arguments are written NAME[key=value,...], got {item!r}")
        if key.strip() in args:
            raise ValueError(f"problem {name!r}: argument {key.strip()!r} is given twice")
        value: object = text.strip()
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                pass
        if text.strip().lower() in ("true", "false"):
            value = text.strip().lower() == "true"
        args[key.strip()] = value
    return base, args
