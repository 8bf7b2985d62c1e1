"""One search-space definition for every method.

A ``SearchSpace`` is an ordered mapping of parameter name -> ``Float`` | ``Int`` | ``Categorical``. It is
stated once and converted to what each engine needs: Optuna distributions (every method runs as an
Optuna study), scikit-optimize dimensions (the GP method) and budget-matched grids (the grid method).

Parameters are validated when they are built, so a bad space fails before any trial is spent, with a
ValueError that names the parameter.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Categorical", "Float", "Int", "Param", "SearchSpace"]


def _fmt(name: str | None) -> str:
    return f"parameter {name!r}" if name else "parameter"


@dataclass(frozen=True)
class Float:
    """A real parameter in [low, high]; ``log`` samples log-uniformly; ``step`` quantizes."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def validate(self, name: str | None = None) -> None:
        p = _fmt(name)
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"{p}: bounds must be finite, got [{self.low}, {self.high}]")
        if self.low >= self.high:
            raise ValueError(f"{p}: low must be < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{p}: a log scale needs low > 0, got low={self.low}")
        if self.step is not None:
            if self.log:
                raise ValueError(f"{p}: step and log cannot be combined")
            if not self.step > 0:
                raise ValueError(f"{p}: step must be > 0, got {self.step}")
            n = (self.high - self.low) / self.step
            if abs(n - round(n)) > 1e-8 * max(1.0, n):
                raise ValueError(
                    f"{p}: step {self.step} does not divide the range [{self.low}, {self.high}]"
                )

    @property
    def cardinality(self) -> float:
        if self.step is None:
            return math.inf
        return round((self.high - self.low) / self.step) + 1

    def levels(self, count: int) -> list[float]:
        """``count`` values spread evenly: the centres of ``count`` equal cells of the range (in log
        space when ``log``), snapped to ``step``. One level is the centre of the range."""
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            raw = [math.exp(lo + (i + 0.5) * (hi - lo) / count) for i in range(count)]
        else:
            raw = [self.low + (i + 0.5) * (self.high - self.low) / count for i in range(count)]
        return _dedupe(self.snap(v) for v in raw)

    def snap(self, value: float) -> float:
        value = min(max(float(value), self.low), self.high)
        if self.step is None:
            return value
        q = round((value - self.low) / self.step)
        return _clean_float(min(self.low + q * self.step, self.high))


@dataclass(frozen=True)
class Int:
    """An integer parameter in [low, high] (both included); ``log`` samples log-uniformly."""

    low: int
    high: int
    log: bool = False

    def validate(self, name: str | None = None) -> None:
        p = _fmt(name)
        if int(self.low) != self.low or int(self.high) != self.high:
            raise ValueError(f"{p}: bounds must be integers, got [{self.low}, {self.high}]")
        if self.low >= self.high:
            raise ValueError(f"{p}: low must be < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{p}: a log scale needs low > 0, got low={self.low}")

    @property
    def cardinality(self) -> int:
        return int(self.high - self.low + 1)

    def levels(self, count: int) -> list[int]:
        if count >= self.cardinality:
            return list(range(int(self.low), int(self.high) + 1))
        as_float = Float(float(self.low), float(self.high), log=self.log)
        return _dedupe(self.snap(v) for v in as_float.levels(count))

    def snap(self, value: float) -> int:
        return int(min(max(round(float(value)), self.low), self.high))


@dataclass(frozen=True)
class Categorical:
    """One of a fixed list of choices (str, int, float, bool or None), unordered."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any]):
        object.__setattr__(self, "choices", tuple(choices))

    def validate(self, name: str | None = None) -> None:
        p = _fmt(name)
        if not self.choices:
            raise ValueError(f"{p}: a categorical parameter needs at least one choice")
        for c in self.choices:
            if not (c is None or isinstance(c, (str, int, float, bool))):
                raise ValueError(f"{p}: choice {c!r} is not a str, int, float, bool or None")
        seen: list[Any] = []
        for c in self.choices:
            if any(c == s and type(c) is type(s) for s in seen):
                raise ValueError(f"{p}: duplicate choice {c!r}")
            seen.append(c)

    @property
    def cardinality(self) -> int:
        return len(self.choices)

    def levels(self, count: int) -> list[Any]:
        return list(self.choices[:count])


Param = Union[Float, Int, Categorical]


def _clean_float(v: float) -> float:
    """Round away binary noise from step arithmetic (0.1 * 3 -> 0.3)."""
    return float(f"{v:.12g}")


def _dedupe(values) -> list:
    out: list = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


class SearchSpace(Mapping[str, Param]):
    """An ordered, validated mapping ``name -> Float | Int | Categorical``.

    Order matters in one place: a budget-matched grid gives extra levels to earlier parameters
    first, so list the parameters you expect to matter most first.
    """

    def __init__(self, params: Mapping[str, Param]):
        if not params:
            raise ValueError("a search space needs at least one parameter")
        for name, p in params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(p, (Float, Int, Categorical)):
                raise ValueError(
                    f"parameter {name!r}: expected Float, Int or Categorical, got {type(p).__name__}"
                )
            p.validate(name)
        self._params = dict(params)

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self._params.items())
        return f"SearchSpace({{{inner}}})"

    def describe(self) -> dict[str, str]:
        return {k: repr(v) for k, v in self._params.items()}

    # ----------------------------------------------------------------- conversions
    def to_optuna(self) -> dict[str, Any]:
        """Optuna distributions, one per parameter (same names)."""
        import optuna.distributions as od

        out: dict[str, Any] = {}
        for name, p in self._params.items():
            if isinstance(p, Float):
                out[name] = od.FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, Int):
                out[name] = od.IntDistribution(int(p.low), int(p.high), log=p.log)
            else:
                out[name] = od.CategoricalDistribution(p.choices)
        return out

    def to_skopt(self) -> list[Any]:
        """scikit-optimize dimensions, in parameter order. Categoricals are encoded by choice index
        (skopt cannot hold None or mixed types); ``from_skopt`` decodes a point."""
        from skopt.space import Categorical as SkCat
        from skopt.space import Integer, Real

        dims: list[Any] = []
        for name, p in self._params.items():
            if isinstance(p, Float):
                dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=name))
            elif isinstance(p, Int):
                dims.append(
                    Integer(int(p.low), int(p.high), prior="log-uniform" if p.log else "uniform", name=name)
                )
            else:
                dims.append(SkCat(list(range(len(p.choices))), name=name))
        return dims

    def from_skopt(self, point: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (name, p), v in zip(self._params.items(), point):
            out[name] = p.choices[int(v)] if isinstance(p, Categorical) else p.snap(v)
        return out

    def to_skopt_point(self, config: Mapping[str, Any]) -> list[Any]:
        point: list[Any] = []
        for name, p in self._params.items():
            v = config[name]
            if isinstance(p, Categorical):
                point.append(next(i for i, c in enumerate(p.choices) if c == v and type(c) is type(v)))
            elif isinstance(p, Int):
                point.append(int(v))
            else:
                point.append(float(v))
        return point

    # ----------------------------------------------------------------- grids
    def grid_levels(self, budget: int) -> dict[str, list[Any]]:
        """Levels per parameter of the best-covering full grid of at most ``budget`` points.

        Balanced growth: repeatedly give one more level to the parameter that has the fewest
        (earlier parameters first on ties), as long as the product stays within ``budget`` and the
        parameter has values left. Then try every parameter once more in order, so leftover budget
        is used. The result is a Cartesian product whose size is the largest such balanced grid.
        """
        if int(budget) != budget or budget < 1:
            raise ValueError(f"a grid needs a budget >= 1, got {budget!r}")
        names = list(self._params)
        counts = {n: 1 for n in names}

        def size(c: dict[str, int]) -> int:
            return math.prod(c.values())

        def can_grow(n: str) -> bool:
            if counts[n] + 1 > self._params[n].cardinality:
                return False
            trial = dict(counts, **{n: counts[n] + 1})
            return size(trial) <= budget

        progress = True
        while progress:
            progress = False
            for n in sorted(names, key=lambda n: (counts[n], names.index(n))):
                if can_grow(n):
                    counts[n] += 1
                    progress = True
                    break
        levels = {n: self._params[n].levels(counts[n]) for n in names}
        assert math.prod(len(v) for v in levels.values()) <= budget
        return levels

    def grid(self, budget: int) -> list[dict[str, Any]]:
        """The points of ``grid_levels(budget)``, in row-major order (first parameter slowest)."""
        import itertools

        levels = self.grid_levels(budget)
        return [dict(zip(levels, combo)) for combo in itertools.product(*levels.values())]
