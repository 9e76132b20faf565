"""Resource levels shared by the rung-based schedulers."""

from __future__ import annotations

import math


def check_rung_settings(min_resource: float, max_resource: float, eta: float) -> None:
    if not min_resource > 0:
        raise ValueError(f"min_resource={min_resource!r} must be positive")
    if not max_resource >= min_resource:
        raise ValueError(
            f"max_resource={max_resource!r} must be at least min_resource={min_resource!r}"
        )
    if not eta > 1:
        raise ValueError(f"eta={eta!r} (the reduction factor) must be greater than 1")


def rung_levels(min_resource: float, max_resource: float, eta: float) -> tuple[float, ...]:
    """``min_resource * eta**k`` for every k below ``max_resource``, then ``max_resource``.

    These are the resources (epochs, steps) at which rung-based schedulers decide.
    """
    check_rung_settings(min_resource, max_resource, eta)
    levels = []
    k = 0
    while min_resource * eta**k < max_resource * (1 - 1e-9):
        levels.append(float(min_resource * eta**k))
        k += 1
    levels.append(float(max_resource))
    return tuple(levels)


def hyperband_brackets(min_resource: float, max_resource: float, eta: float) -> list[tuple[int, int]]:
    """Hyperband's brackets as (first rung index, number of starting configurations).

    Bracket s starts its configurations at rung s; it starts about
    ``ceil((s_max + 1) / (s_max + 1 - s) * eta**(s_max - s))`` of them, so every bracket
    spends about the same total budget (Li et al., 2018).
    """
    s_max = len(rung_levels(min_resource, max_resource, eta)) - 1
    return [
        (s, math.ceil((s_max + 1) / (s_max + 1 - s) * eta ** (s_max - s)))
        for s in range(s_max + 1)
    ]
