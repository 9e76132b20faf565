"""Statistics over seeds of loss-space values: median, interquartile mean, their bootstrap
band, average ranks, and the Pareto mask of a set of points."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from jhpo.analysis.quantities import to_loss

STATISTICS = ("median", "iqm")


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

