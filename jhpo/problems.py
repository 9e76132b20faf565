"""Synthetic test problems with known optima, for tests, examples and benchmarks.

Every problem is minimised. ``fn`` takes a configuration dict, as
``Space.to_configs`` returns it, and gives a float; the arithmetic is jnp, so
numeric parameters may also be arrays of equal shape (vectorised evaluation).
``optimum`` is the global minimum and ``argmin`` one configuration attaining it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jhpo.space import Space, choice, loguniform, randint, uniform


class Problem(NamedTuple):
    name: str
    space: Space
    fn: Callable[[Mapping[str, Any]], Any]
    optimum: float
    argmin: dict

    def __call__(self, config: Mapping[str, Any]) -> float:
        return float(self.fn(config))

    def regret(self, value: float) -> float:
        """How far ``value`` is above the optimum (>= 0 up to rounding)."""
        return value - self.optimum


def _vector(config: Mapping[str, Any], names: list[str]) -> jnp.ndarray:
    return jnp.stack([jnp.asarray(config[n]) for n in names], axis=-1)


def _branin(config):
    x1, x2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * jnp.cos(x1) + s


_HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_HARTMANN6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
_HARTMANN6_NAMES = [f"x{i}" for i in range(6)]


def _hartmann6(config):
    x = _vector(config, _HARTMANN6_NAMES)[..., None, :]  # (..., 1, 6) against 4 centres
    inner = (_HARTMANN6_A * (x - _HARTMANN6_P) ** 2).sum(-1)
    return -(_HARTMANN6_ALPHA * jnp.exp(-inner)).sum(-1)


# Moves Ackley's minimum away from the centre of the box, where a searcher
# biased towards the middle would otherwise find it for free.
_ACKLEY_SHIFT = np.array([2.7, -1.9, 4.1, -3.3, 1.2])
_ACKLEY_NAMES = [f"x{i}" for i in range(5)]


def _ackley5(config):
    z = _vector(config, _ACKLEY_NAMES) - _ACKLEY_SHIFT
    d = z.shape[-1]
    radius = jnp.sqrt((z**2).sum(-1) / d)
    wave = jnp.cos(2 * math.pi * z).sum(-1) / d
    return -20 * jnp.exp(-0.2 * radius) - jnp.exp(wave) + 20 + math.e


_ROSENBROCK_NAMES = [f"x{i}" for i in range(4)]


def _rosenbrock4(config):
    x = _vector(config, _ROSENBROCK_NAMES)
    head, tail = x[..., :-1], x[..., 1:]
    return (100 * (tail - head**2) ** 2 + (1 - head) ** 2).sum(-1)


# The categorical parameter picks one of three penalties; "relu" is the best.
_MIXED_PENALTY = {"tanh": 0.6, "relu": 0.0, "gelu": 0.3}


def _mixed(config):
    x = jnp.asarray(config["x"])
    log_lr = jnp.log10(jnp.asarray(config["lr"]))
    layers = jnp.asarray(config["layers"])
    # x's best value depends on the number of layers: an interaction a
    # separable model cannot capture.
    return (
        (x - 1.3 - 0.1 * (layers - 13)) ** 2
        + 0.5 * (log_lr + 2.5) ** 2
        + ((layers - 13) / 5) ** 2
        + _MIXED_PENALTY[config["activation"]]
    )


def branin() -> Problem:
    """Branin-Hoo on [-5, 10] x [0, 15]; three global minima of 0.397887."""
    space = Space({"x1": uniform(-5.0, 10.0), "x2": uniform(0.0, 15.0)})
    return Problem("branin", space, _branin, 0.397887357729738, {"x1": math.pi, "x2": 2.275})


def hartmann6() -> Problem:
    """Hartmann-6 on [0, 1]^6; minimum -3.32237."""
    space = Space({n: uniform(0.0, 1.0) for n in _HARTMANN6_NAMES})
    argmin = dict(zip(_HARTMANN6_NAMES,
                      [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]))
    return Problem("hartmann6", space, _hartmann6, -3.322368011391339, argmin)


def ackley5() -> Problem:
    """Ackley in 5 dimensions on [-10, 10]^5, minimum 0 moved off centre."""
    space = Space({n: uniform(-10.0, 10.0) for n in _ACKLEY_NAMES})
    argmin = dict(zip(_ACKLEY_NAMES, _ACKLEY_SHIFT.tolist()))
    return Problem("ackley5", space, _ackley5, 0.0, argmin)


def rosenbrock4() -> Problem:
    """Rosenbrock in 4 dimensions on [-5, 10]^4; minimum 0 at (1, 1, 1, 1)."""
    space = Space({n: uniform(-5.0, 10.0) for n in _ROSENBROCK_NAMES})
    return Problem("rosenbrock4", space, _rosenbrock4, 0.0, {n: 1.0 for n in _ROSENBROCK_NAMES})


def mixed() -> Problem:
    """A float, a log-scale float, an integer and a categorical; minimum 0."""
    space = Space({
        "x": uniform(-5.0, 5.0),
        "lr": loguniform(1e-5, 1.0),
        "layers": randint(1, 20),
        "activation": choice(list(_MIXED_PENALTY)),
    })
    argmin = {"x": 1.3, "lr": 10**-2.5, "layers": 13, "activation": "relu"}
    return Problem("mixed", space, _mixed, 0.0, argmin)


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": branin,
    "hartmann6": hartmann6,
    "ackley5": ackley5,
    "rosenbrock4": rosenbrock4,
    "mixed": mixed,
}


def get(name: str) -> Problem:
    """The problem registered as ``name``."""
    if name not in PROBLEMS:
        raise ValueError(f"problem={name!r} is not one of {sorted(PROBLEMS)}")
    return PROBLEMS[name]()
