"""A suite's method ranking across problems: every comparison's runs on one scale (normalized
regret), then ranks, tests and interval estimates over (problem, seed) blocks.

Normalized regret of a value ``v`` on a problem (any objective scale, either direction)::

    regret(v) = (v - best_known) / (default - best_known)

``default``: the untuned default's value (the comparison's baseline); ``best_known``: the best value
any method and seed reached within its budget on that problem in the suite, or the suite file's
``best_known`` for the comparison. The ratio needs no sign flip: for a maximised objective both
differences are negative, for a minimised one both positive. 0 = the best known, 1 = no better than
the untuned default. Nothing is clipped: > 1 means worse than the untuned default; < 0 is only
possible with a given ``best_known`` that a run beat (every such run is listed under
``beats_best_known``). A problem whose default is at least as good as its best known has no scale
(the denominator would be <= 0): it is left out, and ``problems`` says so and why.

A multi-objective comparison enters by its hypervolume (maximised): a run's value is the
hypervolume of its credited trials (every objective, the comparison's fixed reference point
``summary.hv_reference``), the default's is the hypervolume of the untuned default's point, and the
best known is the largest any run reached; so hypervolume regret is averaged like any other.

Per (problem, method, seed): the *final* regret (the best value among the credited trials,
``summary.final``) and the best-so-far regret as a step function of the spent budget fraction
(nominal epochs / the epoch budget, or trials / the trial budget). Before a run's first completed
trial its regret is ``NO_RESULT_REGRET`` = 1: without a result one keeps the untuned default.

Over blocks = (problem, seed) pairs in which every method ran (all problems together):

* ``ranks``: each block ranks the methods by final regret (1 = lowest, ties share the mean rank);
  ``friedman``: ``scipy.stats.friedmanchisquare`` over the blocks (rows = blocks, one column per
  method; needs >= 3 methods); ``pairwise``: ``scipy.stats.wilcoxon`` on each pair's per-block
  regret differences (two-sided, zero differences dropped), Holm-adjusted over all pairs, with the
  matched-pairs rank-biserial correlation (> 0: ``a`` has the lower regret); ``groups``: the
  critical-difference bars, the maximal runs of methods adjacent in mean rank that no adjusted test
  separates; ``power``: the smallest p a pair could reach with this many blocks.
* ``iqm``: interquartile mean of each method's final regrets over all blocks, with a stratified
  bootstrap interval (seeds resampled with replacement within each problem, as rliable does).
* ``anytime``: mean rank over blocks at each point of a grid of budget fractions, and each
  method's normalized AUC: the area under its best-so-far regret over the budget fraction in [0, 1]
  (0 = the best known from the first moment, 1 = never better than the untuned default).

The math is on plain lists (``holm``, ``iqm``, ``stratified_bootstrap``, ``block_ranks``,
``friedman``, ``pairwise_wilcoxon``, ``cd_groups``, ``min_wilcoxon_p``, ``wilcoxon_needs``);
``aggregate(comparisons)`` applies it to a suite's ``CompareResult``s.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from ..results import CompareResult, RunResult
from ..stats import _ranks, hypervolume, wilcoxon_min_p
from .summary import final, hv_reference, within_budget

__all__ = ["ALPHA", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "GRID_POINTS", "NO_RESULT_REGRET", "aggregate",
           "block_ranks", "cd_groups", "friedman", "holm", "iqm", "min_wilcoxon_p", "normalized_regret",
           "pairwise_wilcoxon", "stratified_bootstrap", "wilcoxon_needs"]

ALPHA = 0.05
NO_RESULT_REGRET = 1.0
GRID_POINTS = 20
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
ZERO_METHOD = "wilcox"


# ---------------------------------------------------------------------- plain math
def normalized_regret(value: float | None, default: float, best_known: float) -> float:
    """``(value - best_known) / (default - best_known)``: 0 = best known, 1 = the untuned default;
    ``value`` None (no result) -> ``NO_RESULT_REGRET``. The caller checks the scale is not degenerate."""
    if value is None:
        return NO_RESULT_REGRET
    return (value - best_known) / (default - best_known)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (same order as given; None stays None and does not count
    towards the number of tests): sorted ascending, p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))."""
    idx = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])  # type: ignore[arg-type, return-value]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for j, i in enumerate(idx):
        running = max(running, min(1.0, (m - j) * pvalues[i]))  # type: ignore[operator]
        out[i] = running
    return out


def iqm(xs: Sequence[float]) -> float:
    """Interquartile mean: the mean after cutting ``floor(n / 4)`` values from each end of the
    sorted values (``scipy.stats.trim_mean(xs, 0.25)``, as rliable computes it)."""
    s = sorted(xs)
    if not s:
        raise ValueError("iqm of no values")
    k = int(0.25 * len(s))
    mid = s[k: len(s) - k]
    return sum(mid) / len(mid)


def stratified_bootstrap(strata: Sequence[Sequence[float]], *, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the IQM of all values pooled, resampling each stratum's values (a
    problem's seeds) with replacement within that stratum; seeded, so the same data give the same
    interval."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = []
    for s in strata:
        a = np.asarray(s, dtype=float)
        if a.size:
            parts.append(a[rng.integers(0, a.size, size=(resamples, a.size))])
    if not parts:
        raise ValueError("bootstrap of no values")
    pooled = np.sort(np.concatenate(parts, axis=1), axis=1)
    n = pooled.shape[1]
    k = int(0.25 * n)
    stats = pooled[:, k: n - k].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _rank_row(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n ascending (1 = lowest), ties sharing their mean rank (``stats._ranks``)."""
    return _ranks(xs)


def block_ranks(table: Sequence[Sequence[float]]) -> list[list[float]]:
    """``table[b][m]``: regret of method m in block b (rows = blocks). Each row's ranks (1 = lowest
    regret = best; ties share their mean rank)."""
    return [_rank_row(row) for row in table]


def friedman(table: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Friedman's test over blocks: ``table[b][m]``, rows = blocks, columns = methods; one sample
    per method is its column (``scipy.stats.friedmanchisquare(*columns)``)."""
    n_blocks = len(table)
    k = len(table[0]) if table else 0
    out: dict[str, Any] = {"test": "Friedman chi-square (scipy.stats.friedmanchisquare)",
                           "null": "every method's ranks are exchangeable within each block",
                           "blocks": n_blocks, "methods": k, "statistic": None, "p": None, "df": max(k - 1, 0),
                           "note": None}
    if k < 3:
        out["note"] = "needs at least 3 methods"
        return out
    if n_blocks < 2:
        out["note"] = "needs at least 2 blocks"
        return out
    if all(len(set(row)) == 1 for row in table):
        out.update(statistic=0.0, p=1.0, note="every block ties every method")
        return out
    from scipy.stats import friedmanchisquare

    res = friedmanchisquare(*[[row[j] for row in table] for j in range(k)])
    out.update(statistic=float(res.statistic), p=float(res.pvalue))
    return out


def _signed_rank_counts(n: int) -> list[int]:
    """counts[w] = number of sign patterns of ranks 1..n whose positive ranks sum to w."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for r in range(1, n + 1):
        for w in range(len(counts) - 1, r - 1, -1):
            counts[w] += counts[w - r]
    return counts


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided exact Wilcoxon signed-rank p with ``n`` nonzero differences
    (``stats.wilcoxon_min_p``: every difference in one direction, 2 / 2**n; 1 for n = 0)."""
    return wilcoxon_min_p(max(int(n), 0))


def wilcoxon_needs(n: int, alpha: float = ALPHA) -> int | None:
    """The fewest of ``n`` nonzero paired differences that must favour one side for the exact
    two-sided test to reach p < ``alpha`` (None: not possible at all with n). The bound is reached
    only when the other side's differences are the smallest in size."""
    if n <= 0 or min_wilcoxon_p(n) >= alpha:
        return None
    counts = _signed_rank_counts(n)
    total = 2 ** n
    cdf, crit = 0, -1          # crit: the largest rank sum t with 2 * P(W <= t) < alpha
    for w, c in enumerate(counts):
        cdf += c
        if 2 * cdf / total < alpha:
            crit = w
        else:
            break
    k = 0                      # the most differences on the other side: ranks 1..k summing to <= crit
    while (k + 1) * (k + 2) // 2 <= crit:
        k += 1
    return n - k


def pairwise_wilcoxon(methods: Sequence[str], table: Sequence[Sequence[float]],
                      alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every pair (a, b) of methods: the Wilcoxon signed-rank test of the per-block regret
    differences d = regret(b) - regret(a) (> 0: a better), two-sided, zero differences dropped
    (zero_method 'wilcox'); scipy's method 'auto': the exact null distribution when at most 50
    differences remain and no two share a size, with ties in size all sign flips when at most 13
    remain, else the normal approximation (no continuity correction), as ``p_method`` says; Holm-adjusted
    over all pairs. ``rank_biserial`` = (W+ - W-) / (W+ + W-) over the nonzero differences."""
    from scipy.stats import wilcoxon

    pairs = []
    for i, a in enumerate(methods):
        for j in range(i + 1, len(methods)):
            b = methods[j]
            d = [row[j] - row[i] for row in table]
            nz = [x for x in d if x != 0]
            rec: dict[str, Any] = {
                "a": a, "b": b, "blocks": len(d), "nonzero": len(nz),
                "a_better": sum(x > 0 for x in d), "b_better": sum(x < 0 for x in d), "ties": len(d) - len(nz),
                "statistic": None, "p": None, "p_method": None, "rank_biserial": None,
                "mean_regret_difference": sum(d) / len(d) if d else None,
            }
            if nz:
                ranks = _rank_row([abs(x) for x in nz])
                wp = sum(r for r, x in zip(ranks, nz) if x > 0)
                wm = sum(r for r, x in zip(ranks, nz) if x < 0)
                tied = len({abs(x) for x in nz}) < len(nz)
                method = ("exact permutation distribution (ties in |d|)" if tied and len(nz) <= 13 else
                          "exact" if not tied and len(nz) <= 50 else "normal approximation")
                res = wilcoxon(nz, zero_method=ZERO_METHOD, alternative="two-sided", method="auto")
                p = float(res.pvalue)
                rec.update(statistic=min(wp, wm), p=1.0 if math.isnan(p) else min(1.0, p), p_method=method,
                           rank_biserial=(wp - wm) / (wp + wm))
            elif d:
                rec.update(statistic=0.0, p=1.0, p_method="all differences zero: p = 1", rank_biserial=0.0)
            pairs.append(rec)
    for rec, adj in zip(pairs, holm([r["p"] for r in pairs])):
        rec["p_holm"] = adj
        rec["separated"] = adj is not None and adj < alpha
    return pairs


def cd_groups(order: Sequence[str], pairs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The bars of a critical-difference diagram: ``order`` = methods by mean rank (best first);
    every maximal run of methods adjacent in that order in which no pair is ``separated`` (adjusted
    p < alpha), of two or more methods."""
    sep = {frozenset((r["a"], r["b"])) for r in pairs if r.get("separated")}
    groups: list[list[str]] = []
    n = len(order)
    for i in range(n):
        j = i
        while j + 1 < n and all(frozenset((order[k], order[j + 1])) not in sep for k in range(i, j + 1)):
            j += 1
        g = list(order[i: j + 1])
        if len(g) >= 2 and not any(set(g) <= set(h) for h in groups):
            groups.append(g)
    return groups


# ---------------------------------------------------------------------- a suite's comparisons
def _spend(result: CompareResult) -> tuple[str, float]:
    b = result.budget
    if b.get("epochs"):
        return "nominal epochs / epoch budget", float(b["epochs"])
    return "trials / trial budget", float(b.get("trials") or 1)


def _steps(run: RunResult, unit: str) -> list[tuple[float, float | None]]:
    """(spent so far after the trial, best primary value so far) for each credited trial."""
    out, spent, best = [], 0.0, None
    for t in within_budget(run):
        spent += t.nominal_epochs if unit.startswith("nominal") else 1
        if t.state == "COMPLETE" and t.values:
            v = t.values[0]
            if best is None or (v > best if run.directions[0] == "maximize" else v < best):
                best = v
        out.append((spent, best))
    return out


class _Scale:
    """How a comparison's runs become one number: the primary objective (``final``), or, with
    several objectives, the hypervolume of the credited trials against a fixed reference point."""

    def __init__(self, res: CompareResult) -> None:
        self.multi = len(res.objectives) > 1
        self.ref = hv_reference(res) if self.multi else None
        self.directions = list(res.directions)
        self.objective = f"hypervolume({', '.join(res.objectives)})" if self.multi else res.objectives[0]
        self.direction = "maximize" if self.multi else res.directions[0]

    def _hv(self, trials: Sequence[Any]) -> float | None:
        pts = [t.values for t in trials if t.state == "COMPLETE" and t.values]
        return hypervolume(pts, self.ref, self.directions) if pts else None  # type: ignore[arg-type]

    def final(self, run: RunResult) -> float | None:
        return self._hv(within_budget(run)) if self.multi else final(run)

    def default(self, res: CompareResult, objectives: Sequence[str]) -> float | None:
        values = (res.baseline or {}).get("values") or {}
        if not self.multi:
            v = values.get(objectives[0])
            return float(v) if isinstance(v, (int, float)) else None
        if not all(isinstance(values.get(o), (int, float)) for o in objectives):
            return None
        return hypervolume([[float(values[o]) for o in objectives]], self.ref, self.directions)  # type: ignore[arg-type]

    def steps(self, run: RunResult, unit: str) -> list[tuple[float, float | None]]:
        if not self.multi:
            return _steps(run, unit)
        out, spent, done = [], 0.0, []
        for t in within_budget(run):
            spent += t.nominal_epochs if unit.startswith("nominal") else 1
            done.append(t)
            out.append((spent, self._hv(done)))
        return out


def _regret_curve(steps: list[tuple[float, float | None]], total: float, default: float, best_known: float,
                  grid: Sequence[float]) -> tuple[list[float], float]:
    """Best-so-far regret at each grid fraction, and the exact area under the step function over
    the budget fraction in [0, 1]."""
    pts = [(min(s / total, 1.0), normalized_regret(v, default, best_known)) for s, v in steps]
    at, j, cur = [], 0, NO_RESULT_REGRET
    for g in grid:
        while j < len(pts) and pts[j][0] <= g + 1e-12:
            cur = pts[j][1]
            j += 1
        at.append(cur)
    area, x, cur = 0.0, 0.0, NO_RESULT_REGRET
    for f, r in pts:
        area += (f - x) * cur
        x, cur = f, r
    area += (1.0 - x) * cur
    return at, area


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def aggregate(comparisons: Sequence[dict[str, Any]], *, alpha: float = ALPHA, grid_points: int = GRID_POINTS,
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """The suite's ranking as JSON-able data. ``comparisons``: ``{"name", "result": CompareResult,
    "best_known": float | None}`` each (``best_known``: the suite file's, else the best final)."""
    problems: list[dict[str, Any]] = []
    used: list[tuple[str, CompareResult, float, float, dict[str, RunResult]]] = []
    method_sets = []
    for c in comparisons:
        res: CompareResult = c["result"]
        scale = _Scale(res)
        info: dict[str, Any] = {"name": c["name"], "problem": res.problem, "objective": scale.objective,
                                "direction": scale.direction, "seeds": list(res.seeds), "default": None,
                                "best_known": None, "best_known_source": None, "included": False, "reason": None}
        if scale.multi:
            info["hv_reference"] = scale.ref
        problems.append(info)
        base = scale.default(res, res.objectives)
        if base is None:
            info["reason"] = "no untuned-default value (the comparison ran without a baseline)"
            continue
        sign = 1.0 if scale.direction == "maximize" else -1.0
        finals = [v for r in res.runs if (v := scale.final(r)) is not None]
        if c.get("best_known") is not None:
            best, info["best_known_source"] = float(c["best_known"]), "suite file"
        elif finals:
            best, info["best_known_source"] = max(finals, key=lambda v: sign * v), "best final of any method and seed"
        else:
            info["reason"] = "no run completed a trial"
            continue
        info.update(default=float(base), best_known=best)
        if sign * (best - base) <= 0:
            info["reason"] = (f"the untuned default ({base:g}) is at least as good as the best known ({best:g}): "
                              "no scale to normalize by")
            continue
        info["beats_best_known"] = [{"method": r.method, "seed": r.seed, "value": v} for r in res.runs
                                    if (v := scale.final(r)) is not None and sign * (v - best) > 0]
        runs = {f"{r.method}\0{r.seed}": r for r in res.runs}
        used.append((c["name"], res, float(base), best, runs, scale))
        method_sets.append(list(dict.fromkeys(r.method for r in res.runs)))
    methods = [m for m in (method_sets[0] if method_sets else []) if all(m in s for s in method_sets)]
    dropped = sorted({m for s in method_sets for m in s} - set(methods))
    grid = [(i + 1) / grid_points for i in range(grid_points)]
    blocks: list[dict[str, Any]] = []
    regret: dict[str, dict[str, list[float | None]]] = {m: {} for m in methods}
    auc: dict[str, dict[str, list[float | None]]] = {m: {} for m in methods}
    curves: list[dict[str, list[float]]] = []
    for name, res, base, best, runs, scale in used:
        unit, total = _spend(res)
        info = next(p for p in problems if p["name"] == name)
        info.update(included=True, budget_unit=unit, budget=total)
        for m in methods:
            regret[m][name], auc[m][name] = [], []
        for s in res.seeds:
            have = all(f"{m}\0{s}" in runs for m in methods)
            row, cur = {}, {}
            for m in methods:
                r = runs.get(f"{m}\0{s}")
                if r is None:
                    regret[m][name].append(None)
                    auc[m][name].append(None)
                    continue
                row[m] = normalized_regret(scale.final(r), base, best)
                cur[m], a = _regret_curve(scale.steps(r, unit), total, base, best, grid)
                regret[m][name].append(row[m])
                auc[m][name].append(a)
            if have and methods:
                blocks.append({"problem": name, "seed": s, "regret": [row[m] for m in methods]})
                curves.append(cur)
    table = [b["regret"] for b in blocks]
    n = len(table)
    ranks = block_ranks(table)
    mean_rank = {m: (sum(r[j] for r in ranks) / n if n else None) for j, m in enumerate(methods)}
    pairs = pairwise_wilcoxon(methods, table, alpha) if n else []
    order = sorted(methods, key=lambda m: (mean_rank[m] if mean_rank[m] is not None else math.inf))
    n_pairs = len(pairs)
    iqms: dict[str, Any] = {}
    for m in methods:
        strata = [[v for v in regret[m][p] if v is not None] for p in regret[m]]
        vals = [v for s in strata for v in s]
        ci = stratified_bootstrap(strata, resamples=resamples, seed=seed) if vals else (None, None)
        aucs = [v for p in auc[m].values() for v in p if v is not None]
        iqms[m] = {"iqm": iqm(vals) if vals else None, "ci95": list(ci), "mean": _mean(vals),
                   "median": statistics.median(vals) if vals else None,
                   "n": len(vals), "worse_than_default": sum(v > 1 for v in vals),
                   "auc_mean": _mean(aucs), "auc_iqm": iqm(aucs) if aucs else None}
    anytime_rank = {m: [] for m in methods}
    anytime_regret = {m: [] for m in methods}
    for g in range(len(grid)):
        rows = [[c[m][g] for m in methods] for c in curves]
        rk = block_ranks(rows)
        for j, m in enumerate(methods):
            anytime_rank[m].append(sum(r[j] for r in rk) / len(rk) if rk else None)
            vals = [row[j] for row in rows]
            anytime_regret[m].append(iqm(vals) if vals else None)
    needs = wilcoxon_needs(n, alpha)
    needs_holm = wilcoxon_needs(n, alpha / n_pairs) if n_pairs else None
    return {
        "definition": ("normalized regret = (value - best_known) / (default - best_known) on each problem's primary "
                       "objective: 0 = the best known, 1 = the untuned default, > 1 worse than the untuned default, "
                       "< 0 only where a run beat a best_known given in the suite file; nothing clipped"),
        "no_result_regret": NO_RESULT_REGRET,
        "methods": methods, "methods_dropped": dropped, "problems": problems,
        "blocks": n, "block": "(problem, seed) in which every method ran", "block_list": blocks,
        "regret": regret,
        "ranking": {
            "mean_rank": mean_rank, "order": order, "rank": "1 = lowest final regret in the block, ties share",
            "friedman": {**friedman(table), "alpha": alpha} if n else None,
            "pairwise": [{**p, "test": "Wilcoxon signed-rank (scipy.stats.wilcoxon)", "alternative": "two-sided",
                          "zero_method": f"{ZERO_METHOD} (zero differences dropped)",
                          "correction": f"Holm over {n_pairs} pairs", "effect_size": "matched-pairs rank-biserial",
                          "alpha": alpha} for p in pairs],
            "groups": cd_groups(order, pairs),
            "power": {"blocks": n, "pairs": n_pairs, "alpha": alpha, "min_p": min_wilcoxon_p(n),
                      "min_p_holm": min(1.0, n_pairs * min_wilcoxon_p(n)) if n_pairs else None,
                      "needs_one_side": needs, "needs_one_side_holm": needs_holm,
                      "note": "exact two-sided signed-rank test; blocks whose difference is zero do not count"},
        },
        "iqm": {"methods": iqms,
                "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "interval": "percentile",
                              "strata": "problem (seeds resampled with replacement within each problem, "
                                        "each method separately)",
                              "statistic": "interquartile mean: mean after cutting floor(n/4) values at each end"}},
        "anytime": {"grid": grid, "x": "spent fraction of the budget (per problem: " + "; ".join(
                        f"{p['name']}: {p.get('budget_unit')}" for p in problems if p["included"]) + ")",
                    "mean_rank": anytime_rank, "iqm_regret": anytime_regret,
                    "auc": auc,
                    "auc_definition": "area under the best-so-far normalized regret over the budget fraction [0, 1] "
                           "(exact, step function; regret 1 before the first result); per method in iqm.methods"},
    }
