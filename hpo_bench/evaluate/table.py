"""A tabular benchmark from a filled cache: ``table:PROBLEM`` (or ``table:PROBLEM@CACHE_DIR``).

Once a grid over a problem's space has been evaluated (its per-epoch values sit in the checkpoint
cache), methods can be compared over many seeds at almost no cost, as with HPOBench's tabular
benchmarks: the table problem answers every config from the cache alone and trains nothing. Its
space is what the cache holds: each searched parameter becomes a Categorical of the values found,
and ``epochs`` runs from 1 to the shortest stored curve. Asking for a config the table does not
hold (the stored configs need not form a full product) is a clear error, never a silent training.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..problems import Problem, get_problem
from ..space import Categorical, Int, SearchSpace
from .base import DEFAULTS, EvalResult, Reporter, make_result, replay
from .store import CheckpointStore, prefix_key

__all__ = ["TableEvaluator", "load_problem", "table_problem"]

TABLE_PREFIX = "table:"


def load_problem(name: str) -> Problem:
    """A registered problem (``problems.get_problem``), or ``table:PROBLEM[@CACHE_DIR]``: every
    entry point that takes a problem by name resolves it here."""
    if name.startswith(TABLE_PREFIX):
        return table_problem(name[len(TABLE_PREFIX):])
    return get_problem(name)


class TableEvaluator:
    """Answers configs of ``source`` from a ``CheckpointStore``; trains nothing."""

    def __init__(self, source: Problem, store: CheckpointStore, device: str = "cpu", seed: int = 0):
        self.source, self.store, self.device, self.seed = source, store, str(device), int(seed)

    def evaluate(self, config: Mapping[str, Any], reporter: Reporter | None = None) -> EvalResult:
        t0 = time.perf_counter()
        cfg = {**DEFAULTS, **config}
        epochs = int(cfg["epochs"])
        prefix = prefix_key(self.source.fingerprint(), cfg, self.seed, self.device.split(":")[0],
                            self.source.train_path)
        static = self.store.static(prefix)
        curve = self.store.curve(prefix)
        if static is None or len(curve) < epochs:
            shown = {k: v for k, v in config.items() if k in self.source.space}
            raise ValueError(f"table:{self.source.name} holds no result for {shown} at {epochs} epochs "
                             f"(evaluate it on {self.source.name!r} first)")
        out, pruned_at = replay(curve[:epochs], epochs, reporter)
        info = {"cache": "table", "epochs_trained": 0, "device": self.device, "seconds": time.perf_counter() - t0}
        return make_result(self.source.objectives, {self.source.metric: out[-1], **static}, out, epochs, pruned_at, info)


def table_problem(spec: str) -> Problem:
    """``spec`` is ``PROBLEM`` or ``PROBLEM@CACHE_DIR`` (default cache otherwise)."""
    name, _, cache = spec.partition("@")
    source = get_problem(name)
    if cache and not Path(cache).is_dir():
        raise ValueError(f"table:{spec}: cache directory {cache!r} does not exist")
    store = CheckpointStore(cache or None)
    every = store.prefixes(source.fingerprint())
    rows = [r for r in every if r["config"].get("train_path", "dense") == source.train_path]  # trained as named
    if not rows and every:
        paths = sorted({r["config"].get("train_path", "dense") for r in every})
        raise ValueError(f"table:{name}: the cache at {store.root} holds results of {name!r} trained with "
                         f"train_path={' and '.join(paths)}, not {source.train_path}; name that one, e.g. "
                         f"table:{name.split('[')[0]}[train_path={paths[0]}]")
    if not rows:
        raise ValueError(f"table:{name}: the cache at {store.root} holds no results for {name!r}; "
                         f"run a grid on it first, e.g. hpo-bench run --problem {name} --method grid --budget 64")
    names = [n for n in source.space if n != "epochs"]
    rows, levels = _full_product(rows, names)
    params: dict[str, Any] = {}
    for pname in source.space:
        if pname == "epochs":
            longest = min(len(store.curve(r["prefix"])) for r in rows)
            params[pname] = Int(1, longest) if longest > 1 else Categorical([1])
        else:
            params[pname] = Categorical(levels[pname])
    table = Problem(
        name=f"table:{name}", model=source.model, train=source.train, val=source.val,
        space=SearchSpace(params), objectives=source.objectives, fixed=source.fixed, task=source.task,
        # the source's untuned default (answered from the cache like any config), not a table level
        default_config={k: v for k, v in source.baseline_config().items() if k in source.space},
        pretrain=source.pretrain, pretrained_state=source.pretrained_state,
        prunable=source.prunable, description=f"{source.name} answered from the cache at {store.root}",
        evaluator_factory=lambda device="cpu", seed=0: TableEvaluator(source, store, device, seed),
    )
    return table


def _key(v: Any) -> str:
    return repr(v)


def _full_product(rows: list[dict[str, Any]], names: list[str]) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """The stored configs that form a full Cartesian product of per-parameter levels: starting from
    every value seen, drop the value held by the fewest configs until every combination is stored
    (a grid plus a few stray configs keeps the grid). Returns those rows and the levels."""
    rows = [r for r in rows if all(n in r["config"] for n in names)]
    if not rows:
        raise ValueError("the cache holds no config with every searched parameter")
    while True:
        levels = {n: sorted({_key(r["config"][n]): r["config"][n] for r in rows}.values(), key=_key) for n in names}
        combos = {tuple(_key(r["config"][n]) for n in names) for r in rows}
        size = 1
        for v in levels.values():
            size *= len(v)
        if len(combos) == size:
            return rows, levels
        counts = {(n, _key(r["config"][n])): 0 for r in rows for n in names}
        for r in rows:
            for n in names:
                counts[(n, _key(r["config"][n]))] += 1
        (drop_name, drop_value), _ = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
        rows = [r for r in rows if _key(r["config"][drop_name]) != drop_value]
