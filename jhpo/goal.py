"""What a run optimises: one or several metrics, their directions, and constraints.

A constraint names a metric that must be > 0 for a trial to be feasible. Searchers see
one row of numbers per trial: the objectives signed so that smaller is better, then the
constraint values as reported, then (cost-aware searchers) the seconds the trial took,
then (multi-fidelity searchers) where the resource it was judged at lies between a
scheduler's first and last rung.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("min", "max")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be 'min' or 'max'")
    return mode


class Goal(NamedTuple):
    metrics: tuple[str | None, ...]  # (None,) for an objective that returns a bare number
    modes: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    cost: bool = False  # also tell each trial's wall-clock seconds (cost-aware searchers)
    # (min_resource, max_resource) of a scheduler's rungs: also tell each trial's fidelity
    fidelity: tuple[float, float] | None = None

    @classmethod
    def from_arguments(cls, metric=None, mode="min", constraints=None, cost=False,
                       fidelity=None) -> Goal:
        """Validate ``tune``'s ``metric``, ``mode`` and ``constraints`` arguments."""
        metrics = tuple(metric) if isinstance(metric, (list, tuple)) else (metric,)
        if not metrics:
            raise ValueError("metric=[] names no objective; give at least one metric")
        if len(metrics) > 1 and any(not isinstance(m, str) for m in metrics):
            raise ValueError(f"metric={list(metrics)!r}: several objectives need metric names")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metric={list(metrics)!r} names a metric twice")
        modes = tuple(mode) if isinstance(mode, (list, tuple)) else (mode,) * len(metrics)
        if len(modes) != len(metrics):
            raise ValueError(f"mode={list(modes)!r} needs one entry per metric {list(metrics)!r}")
        for m in modes:
            check_mode(m)
        constraints = tuple(constraints or ())
        if any(not isinstance(c, str) for c in constraints):
            raise ValueError(f"constraints={list(constraints)!r} must be metric names")
        if set(constraints) & set(metrics):
            raise ValueError(f"constraints={list(constraints)!r} repeat an objective metric")
        if fidelity is not None:
            low, high = fidelity
            if not 0 < low < high:
                raise ValueError(f"fidelity={fidelity!r} must be (min_resource, max_resource) "
                                 "with 0 < min_resource < max_resource")
            fidelity = (float(low), float(high))
        return cls(metrics, modes, constraints, bool(cost), fidelity)

    @property
    def is_multiobjective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def outputs(self) -> int:
        """Numbers per trial a searcher is told: objectives, constraints, cost, fidelity."""
        return (len(self.metrics) + len(self.constraints) + int(self.cost)
                + int(self.fidelity is not None))

    @property
    def signs(self) -> np.ndarray:
        return np.array([1.0 if m == "min" else -1.0 for m in self.modes])

    def describe(self) -> dict:
        """The ``metric``/``mode``/``constraints`` fields of a run's meta.json."""
        single = not self.is_multiobjective
        return {"metric": self.metrics[0] if single else list(self.metrics),
                "mode": self.modes[0] if single else list(self.modes),
                "constraints": list(self.constraints)}

    @classmethod
    def from_meta(cls, meta: Mapping) -> Goal:
        return cls.from_arguments(meta.get("metric"), meta.get("mode", "min"),
                                  meta.get("constraints"))

    def read(self, outcome: Any) -> tuple[dict, list[float], list[float]]:
        """An objective's return as (metrics, objective values, constraint values). The
        objectives and constraints must be real numbers (see ``metric_value``); other
        metrics are recorded as returned."""
        if not isinstance(outcome, Mapping):
            if self.is_multiobjective or self.constraints:
                raise TypeError(
                    f"the objective returned {type(outcome).__name__}; with several metrics or "
                    "constraints it must return a dict of metrics"
                )
            name = self.metrics[0] or "value"
            return {name: outcome}, [metric_value(name, outcome)], []
        metrics = dict(outcome)
        names = list(self.metrics)
        if names == [None]:
            if len(metrics) != 1:
                raise ValueError(
                    f"the objective returned metrics {sorted(metrics)}; pass metric= to name "
                    "the one to optimise"
                )
            names = list(metrics)
        for name in names + list(self.constraints):
            if name not in metrics:
                raise ValueError(f"metric {name!r} is not among the returned metrics {sorted(metrics)}")
        return (metrics, [metric_value(n, metrics[n]) for n in names],
                [metric_value(c, metrics[c]) for c in self.constraints])

    def value_record(self, values: Sequence[float]):
        """How a trial stores its objective values: a float, or a list for several."""
        cleaned = [v if math.isfinite(v) else None for v in values]
        return cleaned if self.is_multiobjective else cleaned[0]

    def feasibility(self, constraint_values: Sequence[float]) -> bool | None:
        """Whether every constraint is > 0; None for a goal without constraints."""
        return all(c > 0 for c in constraint_values) if self.constraints else None

    def searcher_row(self, values: Sequence[float] | None,
                     constraint_values: Sequence[float] | None, cost: float | None = None,
                     resource: float | None = None) -> np.ndarray:
        """The numbers a searcher is told for one trial: objectives signed to be
        minimised, constraints as reported, then (cost-aware) the cost in seconds, then
        (multi-fidelity) ``fidelity_of(resource)``. NaN marks what a failed trial did not
        give; a failed trial's cost and fidelity are still known."""
        known = [np.nan if cost is None else cost] if self.cost else []
        if self.fidelity is not None:
            known.append(self.fidelity_of(resource))
        if values is None:
            objectives = np.full(len(self.metrics) + len(self.constraints), np.nan)
            return np.concatenate([objectives, known]).astype(np.float64)
        objectives = self.signs * np.asarray(values, float)
        constraints = np.asarray(constraint_values if constraint_values is not None
                                 else [np.nan] * len(self.constraints), float)
        row = np.concatenate([objectives, constraints, known]).astype(np.float64)
        return np.where(np.isfinite(row), row, np.nan)

    def fidelity_of(self, resource: float | None) -> float:
        """Where ``resource`` lies between the first rung (0) and the last (1), on a log
        scale: rungs grow geometrically, and learning curves are closer to stationary in
        log resource. A trial with no resource recorded counts as fully trained."""
        low, high = self.fidelity
        if resource is None or not math.isfinite(resource):
            return 1.0
        position = math.log(max(resource, low) / low) / math.log(high / low)
        return min(position, 1.0)


_SHORT = reprlib.Repr()  # reprs cut short, so a huge return does not flood the error
_SHORT.maxstring = _SHORT.maxother = 40


def metric_value(name: str, value: Any) -> float:
    """``value`` as a float, if it is a real number: a Python int or float, or a numpy or
    JAX scalar or 0-d array of an integer or floating dtype. Anything else (a string, a
    bool, a complex number, None, a sequence) is a TypeError naming the metric: a string
    "1.5" or a flag ``True`` recorded as a number would hide a bug in the objective."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and np.shape(value) == () and (
            jnp.issubdtype(value.dtype, jnp.integer) or jnp.issubdtype(value.dtype, jnp.floating)):
        return float(value)
    raise TypeError(f"metric {name!r} must be a real number (int, float, or a numpy or JAX "
                    f"scalar of an integer or floating dtype); the objective returned "
                    f"{_described(value)}")


def _described(value: Any) -> str:
    kind = type(value)
    if isinstance(value, jax.Array):
        described = "jax.Array"  # rather than the name of jaxlib's implementation class
    elif kind.__module__ == "builtins":
        described = kind.__name__
    else:
        described = f"{kind.__module__}.{kind.__qualname__}"
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        described += f" of dtype {value.dtype} and shape {tuple(value.shape)}"
    return f"{described} {_SHORT.repr(value)}"
