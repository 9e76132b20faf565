"""Synthetic test problems with known optima, for tests, examples and benchmarks.

Every problem is minimised. ``fn`` takes a configuration dict, as
``Space.to_configs`` returns it, and gives a float; the arithmetic is jnp, so
numeric parameters may also be arrays of equal shape (vectorised evaluation).
``optimum`` is the global minimum and ``argmin`` one configuration attaining it.

Some problems say more: ``constraints`` gives the values that must all be > 0 for a
configuration to be feasible (then ``optimum`` is the best feasible value), and
``cost`` a simulated evaluation cost in seconds, a known function of the
configuration so that cost-aware benchmarks run fast. ``MultiObjectiveProblem``
records give several objectives at once, with a reference point for hypervolumes.
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
    constraints: Callable[[Mapping[str, Any]], Any] | None = None  # (..., k) feasible when > 0
    cost: Callable[[Mapping[str, Any]], Any] | None = None  # simulated seconds

    def __call__(self, config: Mapping[str, Any]) -> float:
        return float(self.fn(config))

    def regret(self, value: float) -> float:
        """How far ``value`` is above the optimum (>= 0 up to rounding)."""
        return value - self.optimum

    def constraint_values(self, config: Mapping[str, Any]) -> list[float]:
        return [] if self.constraints is None else np.atleast_1d(
            np.asarray(self.constraints(config), float)).tolist()

    def is_feasible(self, config: Mapping[str, Any]) -> bool:
        return all(value > 0 for value in self.constraint_values(config))


class MultiObjectiveProblem(NamedTuple):
    """Several objectives, all minimised: ``fn`` gives them along the last axis."""

    name: str
    space: Space
    fn: Callable[[Mapping[str, Any]], Any]
    reference: tuple[float, ...]  # hypervolume reference point, worse than the front

    def __call__(self, config: Mapping[str, Any]) -> list[float]:
        return np.asarray(self.fn(config), float).tolist()


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


# The multimodal functions below have a local minimum in every cell of a regular lattice
# (Rastrigin, Griewank), a best basin far from the second best (Schwefel) or narrow valleys
# on plateaus (Michalewicz): a searcher that exploits the first good basin it finds stalls.
# Rastrigin's and Griewank's minima are moved off centre, as Ackley's is.
_RASTRIGIN_SHIFT = np.array([1.3, -2.1, 0.7, 2.9])
_RASTRIGIN_NAMES = [f"x{i}" for i in range(4)]


def _rastrigin4(config):
    z = _vector(config, _RASTRIGIN_NAMES) - _RASTRIGIN_SHIFT
    return (z**2 - 10 * jnp.cos(2 * math.pi * z) + 10).sum(-1)


# x sin(sqrt(|x|)) peaks on [-500, 500] at x = 420.9687...; the constant is that peak, so
# that Schwefel's minimum is 0 (both found by a bounded scalar search in float64).
_SCHWEFEL_PEAK_AT = 420.96874878568275
_SCHWEFEL_PEAK = 418.98288727243295
_SCHWEFEL_NAMES = [f"x{i}" for i in range(4)]


def _schwefel4(config):
    x = _vector(config, _SCHWEFEL_NAMES)
    return (_SCHWEFEL_PEAK - x * jnp.sin(jnp.sqrt(jnp.abs(x)))).sum(-1)


# Michalewicz's steepness m = 10: valleys narrow as m grows.
_MICHALEWICZ_STEEPNESS = 10
_MICHALEWICZ_NAMES = [f"x{i}" for i in range(5)]
# The function is a sum of one term per coordinate, each minimised on its own (the
# minimisers found by a dense grid refined by a bounded scalar search in float64).
_MICHALEWICZ_ARGMIN = [2.2029055199529126, 1.5707963266195448, 1.284991570272413,
                       1.9230584696163617, 1.7204697722211917]


def _michalewicz5(config):
    x = _vector(config, _MICHALEWICZ_NAMES)
    index = np.arange(1, x.shape[-1] + 1)
    return -(jnp.sin(x) * jnp.sin(index * x**2 / math.pi) ** (2 * _MICHALEWICZ_STEEPNESS)).sum(-1)


_GRIEWANK_SHIFT = np.array([110.0, -230.0, 45.0, 310.0, -75.0, 180.0])
_GRIEWANK_NAMES = [f"x{i}" for i in range(6)]


def _griewank6(config):
    z = _vector(config, _GRIEWANK_NAMES) - _GRIEWANK_SHIFT
    index = np.arange(1, z.shape[-1] + 1)
    return 1 + (z**2).sum(-1) / 4000 - jnp.cos(z / np.sqrt(index)).prod(-1)


def rastrigin4() -> Problem:
    """Rastrigin in 4 dimensions on [-5.12, 5.12]^4, a local minimum near every integer
    offset from the global one; minimum 0 moved off centre."""
    space = Space({n: uniform(-5.12, 5.12) for n in _RASTRIGIN_NAMES})
    argmin = dict(zip(_RASTRIGIN_NAMES, _RASTRIGIN_SHIFT.tolist()))
    return Problem("rastrigin4", space, _rastrigin4, 0.0, argmin)


def schwefel4() -> Problem:
    """Schwefel in 4 dimensions on [-500, 500]^4; minimum 0 at 420.9687 in every coordinate,
    near a corner and far from the second-best basin."""
    space = Space({n: uniform(-500.0, 500.0) for n in _SCHWEFEL_NAMES})
    argmin = {n: _SCHWEFEL_PEAK_AT for n in _SCHWEFEL_NAMES}
    return Problem("schwefel4", space, _schwefel4, 0.0, argmin)


def michalewicz5() -> Problem:
    """Michalewicz in 5 dimensions (m = 10) on [0, pi]^5: narrow valleys on flat ground;
    minimum -4.687658."""
    space = Space({n: uniform(0.0, math.pi) for n in _MICHALEWICZ_NAMES})
    argmin = dict(zip(_MICHALEWICZ_NAMES, _MICHALEWICZ_ARGMIN))
    return Problem("michalewicz5", space, _michalewicz5, -4.687658179088147, argmin)


def griewank6() -> Problem:
    """Griewank in 6 dimensions on [-600, 600]^6: a wide bowl covered in small local
    minima; minimum 0 moved off centre."""
    space = Space({n: uniform(-600.0, 600.0) for n in _GRIEWANK_NAMES})
    argmin = dict(zip(_GRIEWANK_NAMES, _GRIEWANK_SHIFT.tolist()))
    return Problem("griewank6", space, _griewank6, 0.0, argmin)


# Branin's disc constraint: only the minimiser (pi, 2.275) lies inside it.
_BRANIN_DISC_CENTRE = (2.5, 7.5)
_BRANIN_DISC_RADIUS_SQ = 50.0


def _branin_disc(config):
    x1, x2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    distance_sq = (x1 - _BRANIN_DISC_CENTRE[0]) ** 2 + (x2 - _BRANIN_DISC_CENTRE[1]) ** 2
    return (_BRANIN_DISC_RADIUS_SQ - distance_sq)[..., None]


def branin_disc() -> Problem:
    """Branin subject to (x1 - 2.5)^2 + (x2 - 7.5)^2 <= 50: two of its three
    minimisers are infeasible; the feasible optimum is 0.397887 at (pi, 2.275)."""
    base = branin()
    return base._replace(name="branin_disc", constraints=_branin_disc)


def _gardner(config):
    x1, x2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    return jnp.cos(2 * x1) * jnp.cos(x2) + jnp.sin(x1)


def _gardner_constraint(config):
    x1, x2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    return (0.5 - jnp.cos(x1) * jnp.cos(x2) + jnp.sin(x1) * jnp.sin(x2))[..., None]


def gardner() -> Problem:
    """Gardner et al. (ICML 2014), first simulation: cos(2 x1) cos(x2) + sin(x1) on
    [0, 6]^2 subject to cos(x1) cos(x2) - sin(x1) sin(x2) < 0.5, whose feasible
    set is a union of bands; feasible minimum -2 at (3 pi / 2, 0)."""
    space = Space({"x1": uniform(0.0, 6.0), "x2": uniform(0.0, 6.0)})
    return Problem("gardner", space, _gardner, -2.0, {"x1": 1.5 * math.pi, "x2": 0.0},
                   constraints=_gardner_constraint)


# The cost grows 10^COST_DECADES-fold from x1 = -5 to x1 = 10.
_COST_DECADES = 2.0


def _branin_cost(config):
    unit_x1 = (jnp.asarray(config["x1"]) + 5.0) / 15.0
    return 10.0 ** (_COST_DECADES * unit_x1)


def branin_cost() -> Problem:
    """Branin whose simulated evaluation cost rises 100-fold along x1, from 1 s at
    x1 = -5 to 100 s at x1 = 10. Of the three minimisers, (-pi, 12.275) costs 1.8 s,
    (pi, 2.275) 12 s and (3 pi, 2.475) 84 s: a cost-blind searcher pays for the
    expensive side."""
    return branin()._replace(name="branin_cost", cost=_branin_cost)


_BRANIN_MINIMISERS = ((-math.pi, 12.275), (math.pi, 2.275), (3.0 * math.pi, 2.475))
# Width, in units of the box's side, of the cost peak around each minimiser.
_COST_PEAK_WIDTH = 0.15


def _branin_costly_minima_cost(config):
    x1, x2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    squared = [((x1 - a) / 15.0) ** 2 + ((x2 - b) / 15.0) ** 2 for a, b in _BRANIN_MINIMISERS]
    nearest = jnp.min(jnp.stack(squared), axis=0)
    return 10.0 ** (_COST_DECADES * jnp.exp(-nearest / (2.0 * _COST_PEAK_WIDTH**2)))


def branin_costly_minima() -> Problem:
    """Branin whose simulated cost peaks at 100 s on each of its three minimisers and
    falls to about 1 s far from them (a Gaussian bump in log cost, 0.15 of the box
    wide): the adverse case for cost-aware search, which must pay to get close."""
    return branin()._replace(name="branin_costly_minima", cost=_branin_costly_minima_cost)


_ZDT_NAMES = [f"x{i}" for i in range(6)]


def _zdt(config, shape):
    x = _vector(config, _ZDT_NAMES)
    first = x[..., 0]
    g = 1.0 + 9.0 * x[..., 1:].sum(-1) / (x.shape[-1] - 1)
    return jnp.stack([first, g * shape(first / g)], axis=-1)


def zdt1() -> MultiObjectiveProblem:
    """ZDT1 in 6 dimensions: a convex front f2 = 1 - sqrt(f1) where x1..x5 = 0."""
    space = Space({n: uniform(0.0, 1.0) for n in _ZDT_NAMES})
    return MultiObjectiveProblem("zdt1", space, lambda c: _zdt(c, lambda r: 1.0 - jnp.sqrt(r)),
                                 (11.0, 11.0))


def zdt2() -> MultiObjectiveProblem:
    """ZDT2 in 6 dimensions: a concave front f2 = 1 - f1^2 where x1..x5 = 0."""
    space = Space({n: uniform(0.0, 1.0) for n in _ZDT_NAMES})
    return MultiObjectiveProblem("zdt2", space, lambda c: _zdt(c, lambda r: 1.0 - r**2),
                                 (11.0, 11.0))


def _branin_currin(config):
    u1, u2 = jnp.asarray(config["x1"]), jnp.asarray(config["x2"])
    first = _branin({"x1": 15.0 * u1 - 5.0, "x2": 15.0 * u2})
    # exp(-1 / (2 u2)) tends to 0 as u2 -> 0; the floor avoids dividing by zero there.
    decay = 1.0 - jnp.exp(-1.0 / (2.0 * jnp.maximum(u2, 1e-12)))
    numerator = 2300 * u1**3 + 1900 * u1**2 + 2092 * u1 + 60
    ratio = numerator / (100 * u1**3 + 500 * u1**2 + 4 * u1 + 20)
    return jnp.stack([first, decay * ratio], axis=-1)


def branin_currin() -> MultiObjectiveProblem:
    """Branin and Currin's exponential function on [0, 1]^2 (Branin rescaled to its box),
    both minimised; a common two-objective benchmark with reference point (18, 6)."""
    space = Space({"x1": uniform(0.0, 1.0), "x2": uniform(0.0, 1.0)})
    return MultiObjectiveProblem("branin_currin", space, _branin_currin, (18.0, 6.0))


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": branin,
    "hartmann6": hartmann6,
    "ackley5": ackley5,
    "rosenbrock4": rosenbrock4,
    "mixed": mixed,
    "rastrigin4": rastrigin4,
    "schwefel4": schwefel4,
    "michalewicz5": michalewicz5,
    "griewank6": griewank6,
    "branin_disc": branin_disc,
    "gardner": gardner,
    "branin_cost": branin_cost,
    "branin_costly_minima": branin_costly_minima,
}

MULTIOBJECTIVE_PROBLEMS: dict[str, Callable[[], MultiObjectiveProblem]] = {
    "zdt1": zdt1,
    "zdt2": zdt2,
    "branin_currin": branin_currin,
}


def get(name: str) -> Problem:
    """The problem registered as ``name``."""
    everything = {**PROBLEMS, **MULTIOBJECTIVE_PROBLEMS}
    if name not in everything:
        raise ValueError(f"problem={name!r} is not one of {sorted(everything)}")
    return everything[name]()
