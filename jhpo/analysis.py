"""Anytime performance of HPO methods, aggregated over seeds (pure numpy).

The unit of evaluation is a run's *anytime curve*: the value of its incumbent (the best
value found so far) as a function of the wall-clock time spent, of the number of trials
evaluated, or of a resource used (the cumulative sum of a per-trial metric such as
training steps). Curves of different runs are compared on a common grid by step
interpolation: the incumbent's value holds until the next improvement, and after the
run's last trial it holds for good (a finished run's answer stays its answer).

Aggregation works in *loss space*: values are signed so that lower is better, and a run
without any result yet counts as ``+inf`` (it has no answer, which is worse than any
answer). Medians and interquartile means over seeds are then well defined even early on,
when some seeds have nothing; a statistic that is ``+inf`` is reported as NaN (undefined),
so plots simply leave a gap.

Trials that a scheduler stopped early count towards the incumbent when they reported a
finite value: the model exists and was validated, and dropping it would charge
schedulers for the budget they saved. Trials that break a constraint never count.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jhpo import jsonfile
from jhpo.goal import check_mode
from jhpo.runs.records import COMPLETED, META_FILE, STOPPED, Result, Trial, best_so_far, load_run

EXPERIMENT_FILE = "experiment.json"
STATISTICS = ("median", "iqm")
QUANTITIES = ("value", "regret", "normalised_regret")


# --------------------------------------------------------------------------- curves


@dataclasses.dataclass(frozen=True)
class Curve:
    """A run's best-so-far: from ``x[i]`` on (until ``x[i + 1]``) the incumbent is ``y[i]``.

    ``y`` is NaN before the run's first result. ``x`` never decreases.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x = np.asarray(self.x, dtype=float)
        y = np.asarray(self.y, dtype=float)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(
                f"curve x and y must be 1-D of one length, got {x.shape} and {y.shape}")
        if np.any(np.diff(x) < 0):
            raise ValueError("curve x must never decrease")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def end(self) -> float:
        """Where the run stopped (its last x), NaN for an empty run."""
        return float(self.x[-1]) if self.x.size else math.nan

    @property
    def final(self) -> float:
        """The run's final incumbent value (NaN when nothing ever completed)."""
        return float(self.y[-1]) if self.y.size else math.nan


def counts_for_incumbent(trial: Trial) -> bool:
    """A finished or early-stopped trial with a finite value that breaks no constraint
    can be the incumbent."""
    return (trial.status in (COMPLETED, STOPPED) and isinstance(trial.value, numbers.Real)
            and math.isfinite(trial.value) and trial.feasible is not False)


def run_curve(result: Result, x: str = "time") -> Curve:
    """The anytime curve of one run, one point per trial in order of finishing.

    ``x`` is ``"time"`` (seconds from the first trial's start to each trial's end, so the
    searcher's own time between trials is charged to it), ``"evals"`` (trials finished,
    failed ones included: they cost an evaluation), ``"resource"`` (the running sum of the
    resource each trial reached, e.g. epochs, so early-stopped trials cost less) or the
    name of a per-trial metric whose running sum is the cost, e.g. member-steps.
    """
    if isinstance(result.metric, list) and len(result.metric) > 1:
        raise ValueError(
            f"anytime curves follow one objective, and this run optimises {result.metric}; "
            "draw its Pareto front instead"
        )
    trials = sorted(result.trials, key=lambda t: (t.end_time, t.trial_id))
    values = np.array([t.value if counts_for_incumbent(t) else np.nan for t in trials], float)
    return Curve(_x_positions(trials, x), best_so_far(values, result.mode))


def _x_positions(trials: Sequence[Trial], x: str) -> np.ndarray:
    if not trials:
        return np.zeros(0)
    if x == "time":
        origin = min(t.start_time for t in trials)
        return np.array([t.end_time - origin for t in trials])
    if x == "evals":
        return np.arange(1, len(trials) + 1, dtype=float)
    if x == "resource":
        amounts = [t.resource for t in trials]
    else:
        amounts = [t.metrics.get(x) for t in trials]
    missing = [t.trial_id for t, a in zip(trials, amounts) if not isinstance(a, numbers.Real)]
    if missing:
        raise ValueError(
            f"x={x!r} must be 'time', 'evals', 'resource' (trials that reported a resource) or "
            f"a numeric metric of every trial; trials {missing[:5]} lack it"
        )
    return np.cumsum(np.asarray(amounts, float))


def values_on_grid(curve: Curve, grid: np.ndarray) -> np.ndarray:
    """The incumbent's value at each grid point (NaN before the curve's first point)."""
    grid = np.asarray(grid, float)
    index = np.searchsorted(curve.x, grid, side="right") - 1
    held = curve.y[np.clip(index, 0, None)] if curve.y.size else np.full(grid.shape, np.nan)
    return np.where(index >= 0, held, np.nan)


def common_grid(curves: Sequence[Curve], *, num_points: int = 200, log: bool = False,
                integer: bool = False) -> np.ndarray:
    """Grid points spanning all ``curves``: from 0 (or, on a log grid, from the earliest
    first point) to the latest end. ``integer`` gives every whole number from 1 to the end
    when there are at most ``num_points`` of them (for evaluation counts)."""
    if not isinstance(num_points, numbers.Integral) or num_points < 2:
        raise ValueError(f"num_points={num_points!r} must be an integer of at least 2")
    ends = [c.end for c in curves if c.x.size]
    if not ends:
        raise ValueError("no curve has any point: the runs have no finished trial yet")
    stop = max(ends)
    if integer and stop <= num_points:
        return np.arange(1.0, math.floor(stop) + 1.0)
    if log:
        firsts = [c.x[0] for c in curves if c.x.size and c.x[0] > 0]
        if not firsts:
            raise ValueError("a log grid needs positive x values")
        start = min(firsts)
        return np.geomspace(start, stop, num_points) if stop > start else np.array([start])
    return np.linspace(0.0, stop, num_points)


# ----------------------------------------------------------------- quantities


def to_loss(values, mode: str) -> np.ndarray:
    """Values signed so that lower is better; NaN (no result) becomes +inf."""
    sign = 1.0 if check_mode(mode) == "min" else -1.0
    values = np.asarray(values, float)
    return np.where(np.isnan(values), np.inf, sign * values)


def from_loss(loss, mode: str) -> np.ndarray:
    """The inverse of :func:`to_loss`: +inf (no result) becomes NaN."""
    sign = 1.0 if check_mode(mode) == "min" else -1.0
    loss = np.asarray(loss, float)
    return np.where(np.isposinf(loss), np.nan, sign * loss)


def regret(values, optimum: float, mode: str) -> np.ndarray:
    """How far ``values`` are from the known ``optimum`` (zero at the optimum; NaN stays NaN)."""
    sign = 1.0 if check_mode(mode) == "min" else -1.0
    return sign * (np.asarray(values, float) - float(optimum))


def normalised_regret(values, optimum: float, worst: float, mode: str) -> np.ndarray:
    """Regret divided by the regret of ``worst``: 0 at the optimum, 1 at the worst value.

    Dividing by a problem's range makes problems of different scales comparable; this
    module takes ``worst`` to be the worst value any trial of the experiment reported.
    """
    scale = float(regret(worst, optimum, mode))
    if not scale > 0:
        raise ValueError(
            f"worst={worst!r} must be worse than optimum={optimum!r} in mode {mode!r} "
            "to normalise regret"
        )
    return regret(values, optimum, mode) / scale


# -------------------------------------------------------------- statistics


def median(loss: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median along ``axis``; with an even count, the mean of the two middle values."""
    return np.median(np.asarray(loss, float), axis=axis)


def interquartile_mean(loss: np.ndarray, axis: int = 0) -> np.ndarray:
    """The mean of the middle values along ``axis``, after cutting ``floor(n / 4)`` values
    from each end (the convention of ``scipy.stats.trim_mean(x, 0.25)``). More efficient
    than the median and, unlike the mean, insensitive to a few very bad runs."""
    ordered = np.sort(np.asarray(loss, float), axis=axis)
    n = ordered.shape[axis]
    cut = n // 4
    middle = np.take(ordered, np.arange(cut, n - cut), axis=axis)
    with np.errstate(invalid="ignore"):
        return np.mean(middle, axis=axis)


_STATISTIC_FUNCTIONS = {"median": median, "iqm": interquartile_mean}


def statistic_function(statistic: str):
    if statistic not in _STATISTIC_FUNCTIONS:
        raise ValueError(f"statistic={statistic!r} must be one of {list(STATISTICS)}")
    return _STATISTIC_FUNCTIONS[statistic]


def bootstrap_band(loss: np.ndarray, statistic: str = "median", *, confidence: float = 0.95,
                   num_resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A percentile-bootstrap confidence band for ``statistic`` over runs (axis 0).

    Runs are resampled with replacement, whole (one index draw per resample is shared by
    every grid point, so the band respects each run's curve). The band's ends are the
    order statistics just outside the ``(1 - confidence) / 2`` quantiles (no interpolation,
    so the band is slightly conservative and +inf stays +inf). The draws come from
    ``numpy.random.default_rng(seed).integers(0, n, (num_resamples, n))``.
    """
    function = statistic_function(statistic)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
    if not isinstance(num_resamples, numbers.Integral) or num_resamples < 1:
        raise ValueError(f"num_resamples={num_resamples!r} must be a positive integer")
    loss = np.asarray(loss, float)
    n = loss.shape[0]
    if n == 0:
        raise ValueError("a bootstrap band needs at least one run")
    draws = np.random.default_rng(seed).integers(0, n, size=(num_resamples, n))
    resampled = function(loss[draws], axis=1)
    tail = (1.0 - confidence) / 2.0
    lower = np.quantile(resampled, tail, axis=0, method="lower")
    upper = np.quantile(resampled, 1.0 - tail, axis=0, method="higher")
    return lower, upper


def average_rank(loss: np.ndarray) -> np.ndarray:
    """Average rank of each method over seeds, at each grid point.

    ``loss`` has shape ``(methods, seeds, points)``; seed ``s`` of every method forms one
    contest. In each contest the best method gets rank 1, ties share the mean of their
    ranks (two methods tied for first both get 1.5), and +inf (no result yet) ties with
    +inf. Returns shape ``(methods, points)``.
    """
    loss = np.asarray(loss, float)
    if loss.ndim != 3:
        raise ValueError(f"loss must have shape (methods, seeds, points), got {loss.shape}")
    better = (loss[None, :] < loss[:, None]).sum(axis=1)  # how many beat each entry
    tied = (loss[None, :] == loss[:, None]).sum(axis=1) - 1  # ties, itself excluded
    ranks = 1.0 + better + 0.5 * tied
    return ranks.mean(axis=1)


def first_reach(curve: Curve, target: float, mode: str) -> float:
    """The first x at which the incumbent is at least as good as ``target`` (inf if never)."""
    reached = to_loss(curve.y, mode) <= to_loss(target, mode)
    return float(curve.x[np.argmax(reached)]) if reached.any() else math.inf


def pareto_mask(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Which rows of ``points`` (n, k) no other row dominates.

    Row a dominates row b when a is at least as good in every column and better in one.
    Rows with a NaN are never on the front.
    """
    points = np.asarray(points, float)
    if points.ndim != 2 or points.shape[1] != len(modes):
        raise ValueError(
            f"points must have shape (n, {len(modes)}) to match modes={list(modes)}, "
            f"got {points.shape}"
        )
    from jhpo.pareto import nondominated  # imports jax: only where fronts are drawn

    loss = np.stack([to_loss(points[:, i], m) for i, m in enumerate(modes)], axis=1)
    finite = np.isfinite(loss).all(axis=1)
    return np.asarray(nondominated(np.where(finite[:, None], loss, 0.0), finite))


# -------------------------------------------------------------- experiments


@dataclasses.dataclass
class ExperimentRecord:
    """The runs of an experiment directory, by method and seed, with what was optimised."""

    path: Path
    runs: dict[str, dict[int, Result]]
    metric: str | None
    mode: str
    optimum: float | None = None
    description: dict = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.runs)

    def worst_value(self) -> float:
        """The worst value any trial of the experiment reported (NaN if none did)."""
        values = [t.value for seeds in self.runs.values() for r in seeds.values()
                  for t in r.trials if counts_for_incumbent(t)]
        if not values:
            return math.nan
        return max(values) if self.mode == "min" else min(values)


def is_experiment(path: str | os.PathLike) -> bool:
    return (Path(path) / EXPERIMENT_FILE).exists()


def load_experiment(path: str | os.PathLike) -> ExperimentRecord:
    """Read an experiment directory (``experiment.json`` and one run directory per method
    and seed). A single run directory loads as an experiment of one method, one seed.

    Runs listed in ``experiment.json`` that have no run directory yet are left out.
    """
    path = Path(path)
    if is_experiment(path):
        description = jsonfile.loads((path / EXPERIMENT_FILE).read_text())
        runs: dict[str, dict[int, Result]] = {}
        for method in description["methods"]:
            seeds = {}
            for seed in description["seeds"]:
                run_dir = path / method["name"] / f"seed_{seed}"
                if (run_dir / META_FILE).exists():
                    seeds[int(seed)] = load_run(run_dir)
            if seeds:
                runs[method["name"]] = seeds
        settings = description.get("settings", {})
        # A population task names its metric itself, so only its runs record it.
        metric = settings.get("metric") or next(
            (r.metric for seeds in runs.values() for r in seeds.values()), None)
        return ExperimentRecord(path, runs, metric, settings.get("mode", "min"),
                                description.get("optimum"), description)
    if (path / META_FILE).exists():
        result = load_run(path)
        name = "+".join(str(result.meta[k]) for k in ("searcher", "scheduler")
                        if result.meta.get(k)) or "run"
        seed = int(result.meta.get("seed", 0))
        return ExperimentRecord(path, {name: {seed: result}}, result.metric, result.mode,
                                result.meta.get("optimum"),
                                {"methods": [{"name": name}], "seeds": [seed]})
    raise FileNotFoundError(
        f"{str(path)!r} is neither a jhpo experiment ({EXPERIMENT_FILE}) nor a run ({META_FILE})"
    )


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
