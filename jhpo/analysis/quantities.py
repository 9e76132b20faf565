"""The quantities aggregated over seeds, in loss space: values signed so that lower is
better, a run without any result yet counting as ``+inf``; regret and normalised regret.
"""

from __future__ import annotations

import numpy as np

from jhpo.goal import check_mode

QUANTITIES = ("value", "regret", "normalised_regret")


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

