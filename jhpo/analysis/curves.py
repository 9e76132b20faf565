"""A run's anytime curve: its incumbent's value against time, evaluations or a resource.

Curves of different runs are compared on a common grid by step interpolation: the
incumbent's value holds until the next improvement, and after the run's last trial it
holds for good (a finished run's answer stays its answer).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np

from jhpo.analysis.quantities import to_loss
from jhpo.runs.records import COMPLETED, STOPPED, Result, Trial, best_so_far


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



def first_reach(curve: Curve, target: float, mode: str) -> float:
    """The first x at which the incumbent is at least as good as ``target`` (inf if never)."""
    reached = to_loss(curve.y, mode) <= to_loss(target, mode)
    return float(curve.x[np.argmax(reached)]) if reached.any() else math.inf

