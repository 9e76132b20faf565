"""Typed search spaces and their unit-cube encoding.

A configuration is encoded as a row of the unit cube ``[0, 1]^dim``: one column per
numeric parameter (log-warped where the domain is logarithmic), one-hot columns for a
``choice`` and one rank column for an ``ordinal``. Searchers only ever see rows; the
objective only ever sees plain dicts. Every array function here is pure, jittable and
vmappable; the ``*_configs`` methods are the Python shell around them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Column",
    "Condition",
    "Choice",
    "Float",
    "Int",
    "Ordinal",
    "Space",
    "SpaceError",
    "choice",
    "loguniform",
    "lograndint",
    "ordinal",
    "randint",
    "uniform",
]


class SpaceError(ValueError):
    """A search space broke one of the construction rules."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """A parameter is active only when its parent is active and satisfies this test."""

    parent: str
    values: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> dict:
        fields = {"parent": self.parent}
        if self.values is not None:
            fields["values"] = [_jsonable(v) for v in self.values]
        for bound in ("ge", "gt", "le", "lt"):
            if getattr(self, bound) is not None:
                fields[bound] = getattr(self, bound)
        return fields


class _Domain:
    """Shared behaviour of the domain records: attaching a condition."""

    condition: Condition | None

    def when(self, parent: str, *values: Any, ge=None, gt=None, le=None, lt=None):
        """Make this parameter active only when ``parent`` takes one of ``values``
        (or satisfies the comparisons ``ge``/``gt``/``le``/``lt``)."""
        if not values and all(b is None for b in (ge, gt, le, lt)):
            raise SpaceError(
                f"when({parent!r}): give the parent's values or a comparison (ge, gt, le, lt)"
            )
        condition = Condition(parent, tuple(values) if values else None, ge, gt, le, lt)
        return dataclasses.replace(self, condition=condition)


@dataclasses.dataclass(frozen=True)
class Float(_Domain):
    lo: float
    hi: float
    log: bool = False
    condition: Condition | None = None


@dataclasses.dataclass(frozen=True)
class Int(_Domain):
    lo: int
    hi: int
    log: bool = False
    condition: Condition | None = None


@dataclasses.dataclass(frozen=True)
class Choice(_Domain):
    values: tuple
    condition: Condition | None = None


@dataclasses.dataclass(frozen=True)
class Ordinal(_Domain):
    values: tuple
    condition: Condition | None = None


def uniform(lo: float, hi: float) -> Float:
    """A float drawn uniformly from ``[lo, hi]``."""
    return Float(lo, hi, log=False)


def loguniform(lo: float, hi: float) -> Float:
    """A positive float whose logarithm is uniform on ``[log lo, log hi]``."""
    return Float(lo, hi, log=True)


def randint(lo: int, hi: int) -> Int:
    """An integer drawn uniformly from ``lo..hi``, both inclusive."""
    return Int(lo, hi, log=False)


def lograndint(lo: int, hi: int) -> Int:
    """A positive integer in ``lo..hi`` (inclusive), spread evenly in log space."""
    return Int(lo, hi, log=True)


def choice(values: Sequence[Hashable]) -> Choice:
    """One of unordered ``values`` (strings, numbers, booleans, None), encoded one-hot."""
    return Choice(_as_tuple(values))


def ordinal(values: Sequence[Hashable]) -> Ordinal:
    """One of ordered ``values``, encoded by rank in a single column."""
    return Ordinal(_as_tuple(values))


def _as_tuple(values) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise SpaceError(f"choices must be a list or tuple of values, got {values!r}")
    return tuple(values)


class Column(NamedTuple):
    """Where one parameter lives in an encoded row."""

    name: str
    kind: str  # "float", "int", "onehot" or "ordinal"
    start: int
    width: int


Domain = Float | Int | Choice | Ordinal


# ----------------------------------------------------------------------------- validation


def _validate_domain(name: str, domain: Domain) -> None:
    if isinstance(domain, Float):
        _check_bounds(name, domain.lo, domain.hi, domain.log)
    elif isinstance(domain, Int):
        for bound in (domain.lo, domain.hi):
            if isinstance(bound, bool) or not float(bound).is_integer():
                raise SpaceError(
                    f"parameter {name!r}: integer domain needs integer bounds, got "
                    f"lo={domain.lo!r}, hi={domain.hi!r}"
                )
        _check_bounds(name, domain.lo, domain.hi, domain.log)
    else:
        _check_values(name, domain.values)


def _check_bounds(name: str, lo, hi, log: bool) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SpaceError(f"parameter {name!r}: bounds must be finite, got lo={lo!r}, hi={hi!r}")
    if lo >= hi:
        raise SpaceError(f"parameter {name!r}: needs lo < hi, got lo={lo!r}, hi={hi!r}")
    if log and lo <= 0:
        raise SpaceError(f"parameter {name!r}: a log-scale domain needs lo > 0, got lo={lo!r}")


def _check_values(name: str, values: tuple) -> None:
    if not values:
        raise SpaceError(f"parameter {name!r}: needs at least one value, got an empty list")
    for value in values:
        if not isinstance(value, Hashable):
            raise SpaceError(f"parameter {name!r}: value {value!r} is not hashable")
    keys = [_value_key(v) for v in values]
    if len(set(keys)) != len(keys):
        duplicates = sorted({repr(v) for v, k in zip(values, keys) if keys.count(k) > 1})
        raise SpaceError(f"parameter {name!r}: duplicate values {', '.join(duplicates)}")


def _value_key(value) -> tuple:
    # True == 1 in Python; keep booleans and numbers apart so choice([0, False]) is legal.
    return (type(value) is bool, value)


def _validate_condition(name: str, condition: Condition, domains: Mapping[str, Domain]) -> None:
    parent = condition.parent
    if parent not in domains:
        raise SpaceError(
            f"parameter {name!r}: condition on unknown parameter {parent!r} "
            f"(tunable parameters: {', '.join(domains)})"
        )
    parent_domain = domains[parent]
    comparisons = [b for b in ("ge", "gt", "le", "lt") if getattr(condition, b) is not None]
    if condition.values is not None and isinstance(parent_domain, (Choice, Ordinal)):
        known = {_value_key(v) for v in parent_domain.values}
        for value in condition.values:
            if _value_key(value) not in known:
                raise SpaceError(
                    f"parameter {name!r}: condition value {value!r} is not one of "
                    f"{parent!r}'s values {list(parent_domain.values)!r}"
                )
    if comparisons and not _is_numeric_parent(parent_domain):
        raise SpaceError(
            f"parameter {name!r}: comparison {comparisons[0]!r} needs a numeric parent, "
            f"but {parent!r} is not numeric"
        )


def _is_numeric_parent(domain: Domain) -> bool:
    if isinstance(domain, (Float, Int)):
        return True
    if isinstance(domain, Ordinal):
        return all(_is_number(v) for v in domain.values)
    return False


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _topological_order(domains: Mapping[str, Domain]) -> list[str]:
    """Parents before children; a cycle of conditions is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise SpaceError(
                f"parameter {name!r}: cycle of conditions {' -> '.join(cycle)}"
            )
        state[name] = "visiting"
        condition = domains[name].condition
        if condition is not None:
            visit(condition.parent, path + [name])
        state[name] = "done"
        order.append(name)

    for name in domains:
        visit(name, [])
    return order


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


# ----------------------------------------------------------------------------- the space


class Space:
    """A search space built from a dict of domains and constants.

    >>> space = Space({"lr": loguniform(1e-4, 1e-1), "opt": choice(["sgd", "adam"]),
    ...                "momentum": uniform(0.0, 0.99).when("opt", "sgd"), "epochs": 10})
    """

    def __init__(self, parameters: Mapping[str, Any]):
        if isinstance(parameters, Space):
            parameters = parameters.parameters
        if not isinstance(parameters, Mapping):
            raise SpaceError(f"a space is built from a dict of parameters, got {type(parameters).__name__}")
        self.parameters = dict(parameters)
        self.domains: dict[str, Domain] = {}
        self.constants: dict[str, Any] = {}
        for name, domain in self.parameters.items():
            if not isinstance(name, str):
                raise SpaceError(f"parameter names must be strings, got {name!r}")
            if isinstance(domain, (Float, Int, Choice, Ordinal)):
                _validate_domain(name, domain)
                self.domains[name] = domain
            else:
                self.constants[name] = domain
        for name, domain in self.domains.items():
            if domain.condition is not None:
                _validate_condition(name, domain.condition, self.domains)
        self._order = _topological_order(self.domains)
        self.names: tuple[str, ...] = tuple(self.domains)
        self.columns: tuple[Column, ...] = self._layout()
        self.dim: int = sum(c.width for c in self.columns)
        self._column_of = {c.name: c for c in self.columns}

    def _layout(self) -> tuple[Column, ...]:
        columns, start = [], 0
        for name, domain in self.domains.items():
            if isinstance(domain, Choice):
                kind, width = "onehot", len(domain.values)
            elif isinstance(domain, Ordinal):
                kind, width = "ordinal", 1
            else:
                kind, width = ("int" if isinstance(domain, Int) else "float"), 1
            columns.append(Column(name, kind, start, width))
            start += width
        return tuple(columns)

    def __repr__(self) -> str:
        return f"Space({self.parameters!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Space) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(repr(self.describe()))

    @property
    def is_conditional(self) -> bool:
        return any(d.condition is not None for d in self.domains.values())

    # ------------------------------------------------------------------ pure array functions

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` independent uniform draws from the space, as canonical rows."""
        return self.from_unit(jax.random.uniform(key, (n, len(self.names))))

    def from_unit(self, u: jax.Array) -> jax.Array:
        """Map one uniform number per parameter (``(n, len(names))``) to canonical rows.

        Every parameter's distribution is the domain's own (uniform, log-uniform, uniform
        over integers or categories), so quasi-random points keep their spread.
        """
        blocks = []
        for i, column in enumerate(self.columns):
            if column.kind == "onehot":
                blocks.append(jax.nn.one_hot(_bin_index(u[:, i], column.width), column.width))
            else:
                blocks.append(u[:, i : i + 1])
        return self.canonicalize(jnp.concatenate(blocks, axis=1))

    def decode(self, rows: jax.Array) -> dict[str, jax.Array]:
        """Values of every tunable parameter (active or not) for each row.

        Floats as float32, integers as int32, choices and ordinals as the int32 index
        of their value.
        """
        return {
            c.name: self._decode_column(c, rows[:, c.start : c.start + c.width])
            for c in self.columns
        }

    def _decode_column(self, column: Column, block: jax.Array) -> jax.Array:
        domain = self.domains[column.name]
        if column.kind == "onehot":
            return jnp.argmax(block, axis=1).astype(jnp.int32)
        u = jnp.clip(block[:, 0], 0.0, 1.0)
        if column.kind == "ordinal":
            return _bin_index(u, len(domain.values))
        lo, hi = _warped_range(domain)
        x = lo + u * (hi - lo)
        if domain.log:
            x = jnp.exp(x)
        if column.kind == "int":
            return jnp.clip(jnp.round(x), domain.lo, domain.hi).astype(jnp.int32)
        return jnp.clip(x, domain.lo, domain.hi).astype(jnp.float32)

    def encode(self, values: Mapping[str, jax.Array]) -> jax.Array:
        """Rows for the given parameter values; inactive parameters' columns are zero."""
        blocks = [self._encode_column(c, jnp.asarray(values[c.name])) for c in self.columns]
        return self._zero_inactive(blocks, self.active(values))

    def _zero_inactive(self, blocks: list[jax.Array], active: dict[str, jax.Array]) -> jax.Array:
        masked = [jnp.where(active[c.name][:, None], b, 0.0) for c, b in zip(self.columns, blocks)]
        return jnp.concatenate(masked, axis=1).astype(jnp.float32)

    def _encode_column(self, column: Column, value: jax.Array) -> jax.Array:
        domain = self.domains[column.name]
        if column.kind == "onehot":
            return jax.nn.one_hot(value, column.width, dtype=jnp.float32)
        if column.kind == "ordinal":
            return ((value.astype(jnp.float32) + 0.5) / len(domain.values))[:, None]
        lo, hi = _warped_range(domain)
        x = value.astype(jnp.float32)
        if domain.log:
            x = jnp.log(x)
        return jnp.clip((x - lo) / (hi - lo), 0.0, 1.0)[:, None]

    def active(self, values: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Whether each parameter is active, per row, from the decoded values."""
        n = jnp.shape(values[self.names[0]])[0] if self.names else 0
        active: dict[str, jax.Array] = {}
        for name in self._order:
            condition = self.domains[name].condition
            if condition is None:
                active[name] = jnp.ones((n,), bool)
            else:
                holds = self._condition_holds(condition, jnp.asarray(values[condition.parent]))
                active[name] = active[condition.parent] & holds
        return {name: active[name] for name in self.names}

    def _condition_holds(self, condition: Condition, parent_value: jax.Array) -> jax.Array:
        parent = self.domains[condition.parent]
        holds = jnp.ones(parent_value.shape, bool)
        if condition.values is not None:
            if isinstance(parent, (Choice, Ordinal)):
                targets = [self.index_of(condition.parent, v) for v in condition.values]
            else:
                targets = list(condition.values)
            holds &= jnp.isin(parent_value, jnp.asarray(targets))
        numeric = self._numeric_value(condition.parent, parent_value)
        for bound, compare in (("ge", jnp.greater_equal), ("gt", jnp.greater),
                               ("le", jnp.less_equal), ("lt", jnp.less)):
            threshold = getattr(condition, bound)
            if threshold is not None:
                holds &= compare(numeric, threshold)
        return holds

    def _numeric_value(self, name: str, value: jax.Array) -> jax.Array:
        domain = self.domains[name]
        if isinstance(domain, Ordinal) and _is_numeric_parent(domain):
            return jnp.asarray(domain.values, jnp.float32)[value]
        return value

    def canonicalize(self, rows: jax.Array) -> jax.Array:
        """The canonical row of each row's configuration: floats clipped to the cube,
        integers and ranks at bin centres, one-hot blocks made exact, inactive columns
        zero. Idempotent, bit for bit."""
        values = self.decode(rows)
        blocks = [
            jnp.clip(rows[:, c.start : c.start + 1], 0.0, 1.0) if c.kind == "float"
            else self._encode_column(c, values[c.name])
            for c in self.columns
        ]
        return self._zero_inactive(blocks, self.active(values))

    def column_mask(self, rows: jax.Array) -> jax.Array:
        """``(n, dim)`` booleans: which columns are active in each row."""
        active = self.active(self.decode(rows))
        return jnp.concatenate(
            [jnp.repeat(active[c.name][:, None], c.width, axis=1) for c in self.columns], axis=1
        )

    # ------------------------------------------------------------------ the Python shell

    def index_of(self, name: str, value) -> int:
        """Index of ``value`` among the values of choice or ordinal ``name``."""
        key = _value_key(value)
        for i, candidate in enumerate(self.domains[name].values):
            if _value_key(candidate) == key:
                return i
        raise SpaceError(
            f"parameter {name!r}: {value!r} is not one of {list(self.domains[name].values)!r}"
        )

    def to_configs(self, rows) -> list[dict]:
        """Plain Python dicts for rows: active parameters and constants only."""
        rows = jnp.atleast_2d(jnp.asarray(rows, jnp.float32))
        values = {k: np.asarray(v) for k, v in self.decode(rows).items()}
        active = {k: np.asarray(v) for k, v in self.active(values).items()}
        configs = []
        for i in range(rows.shape[0]):
            config = {}
            for column in self.columns:
                if active[column.name][i]:
                    config[column.name] = self._python_value(column, values[column.name][i])
            config.update(self.constants)
            configs.append(config)
        return configs

    def _python_value(self, column: Column, value):
        if column.kind in ("onehot", "ordinal"):
            return self.domains[column.name].values[int(value)]
        if column.kind == "int":
            return int(value)
        return float(value)

    def from_configs(self, configs: Sequence[Mapping[str, Any]]) -> jax.Array:
        """Canonical rows for plain dicts; inactive parameters may be absent."""
        configs = list(configs)
        values = {name: np.zeros(len(configs), self._value_dtype(name)) for name in self.names}
        present = {name: np.zeros(len(configs), bool) for name in self.names}
        for i, config in enumerate(configs):
            unknown = set(config) - set(self.names) - set(self.constants)
            if unknown:
                raise SpaceError(f"configuration has unknown parameters {sorted(unknown)}")
            for name in self.names:
                if name in config:
                    values[name][i] = self._array_value(name, config[name])
                    present[name][i] = True
                else:
                    values[name][i] = self._array_value(name, self._default(name))
        active = {k: np.asarray(v) for k, v in self.active(values).items()}
        for name in self.names:
            missing = active[name] & ~present[name]
            if missing.any():
                raise SpaceError(
                    f"configuration {int(np.argmax(missing))} lacks active parameter {name!r}"
                )
        if not configs:
            return jnp.zeros((0, self.dim), jnp.float32)
        return self.encode(values)

    def _value_dtype(self, name: str):
        return np.float32 if isinstance(self.domains[name], Float) else np.int32

    def _default(self, name: str):
        domain = self.domains[name]
        return domain.lo if isinstance(domain, (Float, Int)) else domain.values[0]

    def _array_value(self, name: str, value):
        domain = self.domains[name]
        if isinstance(domain, (Choice, Ordinal)):
            return self.index_of(name, value)
        if not _is_number(value) or not domain.lo <= value <= domain.hi:
            raise SpaceError(
                f"parameter {name!r}: value {value!r} is outside [{domain.lo}, {domain.hi}]"
            )
        if isinstance(domain, Int) and not float(value).is_integer():
            raise SpaceError(f"parameter {name!r}: value {value!r} is not an integer")
        return value

    def describe(self) -> dict:
        """A JSON-ready description of every parameter, for run records."""
        description = {}
        for name, domain in self.domains.items():
            entry = _describe_domain(domain)
            if domain.condition is not None:
                entry["when"] = domain.condition.describe()
            description[name] = entry
        for name, value in self.constants.items():
            description[name] = {"type": "constant", "value": _jsonable(value)}
        return description


def _describe_domain(domain: Domain) -> dict:
    if isinstance(domain, Float):
        return {"type": "loguniform" if domain.log else "uniform", "lo": domain.lo, "hi": domain.hi}
    if isinstance(domain, Int):
        return {"type": "lograndint" if domain.log else "randint", "lo": domain.lo, "hi": domain.hi}
    kind = "choice" if isinstance(domain, Choice) else "ordinal"
    return {"type": kind, "values": [_jsonable(v) for v in domain.values]}


def _warped_range(domain: Float | Int) -> tuple[float, float]:
    """The interval the unit column maps onto: integers own [v - 0.5, v + 0.5] each,
    so uniform columns give uniform integers; log domains map in log space."""
    lo, hi = float(domain.lo), float(domain.hi)
    if isinstance(domain, Int):
        lo, hi = lo - 0.5, hi + 0.5
    if domain.log:
        return math.log(lo), math.log(hi)
    return lo, hi


def _bin_index(u: jax.Array, k: int) -> jax.Array:
    return jnp.clip(jnp.floor(u * k), 0, k - 1).astype(jnp.int32)
