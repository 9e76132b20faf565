"""An experiment's methods summarised over seeds: aggregate curves on a common grid with
bootstrap bands and average ranks (:func:`summarise`), and final results (:func:`compare`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import numpy as np

from jhpo.analysis.curves import Curve, common_grid, first_reach, run_curve, values_on_grid
from jhpo.analysis.experiments import ExperimentRecord
from jhpo.analysis.quantities import QUANTITIES, from_loss, normalised_regret, regret, to_loss
from jhpo.analysis.statistics import average_rank, bootstrap_band, statistic_function
from jhpo.goal import check_mode


@dataclasses.dataclass(frozen=True)
class MethodSummary:
    """One method's aggregate curve: ``center`` with its band ``[lower, upper]`` on the
    grid, NaN where undefined (before half the seeds have a result, or past the end of
    the method's longest run)."""

    name: str
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    rank: np.ndarray
    num_runs: int
    end: float


@dataclasses.dataclass(frozen=True)
class Summary:
    """Aggregated anytime curves of all methods of an experiment on one grid."""

    grid: np.ndarray
    methods: dict[str, MethodSummary]
    x: str
    quantity: str
    statistic: str
    confidence: float
    mode: str  # the orientation of the summarised quantity (regret is always "min")
    metric: str | None


def quantity_curves(record: ExperimentRecord, x: str = "time", quantity: str = "value"
                    ) -> tuple[dict[str, dict[int, Curve]], str]:
    """Every run's curve of ``quantity`` (the raw value, its regret, or its normalised
    regret) against ``x``, and the orientation of that quantity."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity={quantity!r} must be one of {list(QUANTITIES)}")
    curves = {m: {s: run_curve(r, x) for s, r in seeds.items()} for m, seeds in record.runs.items()}
    if quantity == "value":
        return curves, record.mode
    if record.optimum is None:
        raise ValueError(
            f"quantity={quantity!r} needs the optimum; this experiment does not record one "
            "(pass optimum= to run_experiment)"
        )
    if quantity == "regret":
        convert = functools.partial(regret, optimum=record.optimum, mode=record.mode)
    else:
        convert = functools.partial(normalised_regret, optimum=record.optimum,
                                    worst=record.worst_value(), mode=record.mode)
    converted = {m: {s: Curve(c.x, convert(c.y)) for s, c in seeds.items()}
                 for m, seeds in curves.items()}
    return converted, "min"


def shared_seeds(curves: Mapping[str, Mapping[int, Curve]]) -> list[int]:
    """Seeds every method has run: the contests that ranks are computed on."""
    sets = [set(seeds) for seeds in curves.values()]
    return sorted(set.intersection(*sets)) if sets else []


def summarise(record: ExperimentRecord, *, x: str = "time", quantity: str = "value",
              statistic: str = "median", num_points: int = 200, log_grid: bool = False,
              confidence: float = 0.95, num_resamples: int = 1000, seed: int = 0) -> Summary:
    """Aggregate every method's anytime curves over its seeds on a common grid.

    ``statistic`` (median or interquartile mean) is the centre line; the band is its
    bootstrap confidence band over seeds. Ranks are averaged over the seeds all methods
    share (:func:`average_rank`), on values held after a run's end.
    """
    curves, mode = quantity_curves(record, x, quantity)
    if not curves:
        raise ValueError(f"{str(record.path)!r} has no run with recorded trials yet")
    return summarise_curves(curves, mode, x=x, quantity=quantity, metric=record.metric,
                            statistic=statistic, num_points=num_points, log_grid=log_grid,
                            confidence=confidence, num_resamples=num_resamples, seed=seed)


def summarise_curves(curves: Mapping[str, Mapping[int, Curve]], mode: str, *, x: str,
                     quantity: str = "value", metric: str | None = None,
                     statistic: str = "median", num_points: int = 200, log_grid: bool = False,
                     confidence: float = 0.95, num_resamples: int = 1000, seed: int = 0
                     ) -> Summary:
    """:func:`summarise` for curves gathered elsewhere (a benchmark's runs): ``curves``
    maps each method to its seeds' curves, of a quantity optimised in ``mode``; ``x``
    names their x axis."""
    check_mode(mode)
    if not curves or not all(curves.values()):
        raise ValueError("curves must map each method to at least one seed's curve")
    function = statistic_function(statistic)
    all_curves = [c for seeds in curves.values() for c in seeds.values()]
    grid = common_grid(all_curves, num_points=num_points, log=log_grid, integer=(x == "evals"))
    seeds = shared_seeds(curves)
    ranks = _ranks_on_grid(curves, seeds, grid, mode)
    methods = {}
    for name, runs in curves.items():
        loss = np.stack([to_loss(values_on_grid(c, grid), mode) for c in runs.values()])
        low_loss, high_loss = bootstrap_band(loss, statistic, confidence=confidence,
                                             num_resamples=num_resamples, seed=seed)
        end = max((c.end for c in runs.values() if c.x.size), default=math.nan)
        # Past the method's longest run there is nothing to report: holding the last value
        # there would draw a line as if the method had been run longer.
        past_end = ~(grid <= end)
        center, low, high = (np.where(past_end, np.nan, from_loss(v, mode))
                             for v in (function(loss, axis=0), low_loss, high_loss))
        lower, upper = (low, high) if mode == "min" else (high, low)
        methods[name] = MethodSummary(name, center, lower, upper,
                                      ranks.get(name, np.full(grid.shape, np.nan)), len(runs),
                                      float(end))
    return Summary(grid, methods, x, quantity, statistic, confidence, mode, metric)


def _ranks_on_grid(curves, seeds, grid, mode) -> dict[str, np.ndarray]:
    if not seeds:
        return {}
    loss = np.stack([
        np.stack([to_loss(values_on_grid(curves[m][s], grid), mode) for s in seeds])
        for m in curves
    ])
    return dict(zip(curves, average_rank(loss)))


@dataclasses.dataclass(frozen=True)
class MethodComparison:
    """One line of ``jhpo compare``: a method's final results over its seeds."""

    name: str
    num_runs: int
    final: float
    final_lower: float
    final_upper: float
    final_rank: float
    mean_rank: float
    time_to_target: float
    reached: int


def compare(record: ExperimentRecord, *, x: str = "time", quantity: str = "value",
            statistic: str = "median", target: float | None = None, confidence: float = 0.95,
            num_resamples: int = 1000, seed: int = 0, num_points: int = 200
            ) -> list[MethodComparison]:
    """Final incumbent values of each method (statistic over seeds, bootstrap band), the
    final rank, the rank averaged over the common grid, and the x at which runs reach
    ``target`` (the statistic over seeds, inf counting as never; NaN without a target)."""
    summary = summarise(record, x=x, quantity=quantity, statistic=statistic,
                        num_points=num_points, confidence=confidence,
                        num_resamples=num_resamples, seed=seed)
    curves, mode = quantity_curves(record, x, quantity)
    function = statistic_function(statistic)
    seeds = shared_seeds(curves)
    final_ranks = {}
    if seeds:
        finals = np.array([[[to_loss(curves[m][s].final, mode)] for s in seeds] for m in curves])
        final_ranks = dict(zip(curves, average_rank(finals)[:, 0]))
    rows = []
    for name, runs in curves.items():
        final_loss = np.array([to_loss(c.final, mode) for c in runs.values()])
        low_loss, high_loss = bootstrap_band(final_loss[:, None], statistic,
                                             confidence=confidence,
                                             num_resamples=num_resamples, seed=seed)
        low, high = (float(from_loss(b, mode)[0]) for b in (low_loss, high_loss))
        lower, upper = (low, high) if mode == "min" else (high, low)
        if target is None:
            time_to_target, reached = math.nan, 0
        else:
            reach = np.array([first_reach(c, target, mode) for c in runs.values()])
            time_to_target, reached = float(function(reach)), int(np.isfinite(reach).sum())
        rank_curve = summary.methods[name].rank
        rows.append(MethodComparison(
            name=name,
            num_runs=len(runs),
            final=float(from_loss(function(final_loss), mode)),
            final_lower=lower,
            final_upper=upper,
            final_rank=float(final_ranks.get(name, math.nan)),
            mean_rank=float(np.mean(rank_curve)),
            time_to_target=time_to_target,
            reached=reached,
        ))
    return rows
