"""The Space: a nested dict of domains and constants, and its unit-cube rows.

A configuration is encoded as a row of the unit cube ``[0, 1]^dim``: one column per
numeric parameter (log-warped where the domain is logarithmic), one-hot columns for a
``choice`` and one rank column for an ``ordinal``. Searchers only ever see rows; the
objective only ever sees plain (nested) dicts. The array functions are pure, jittable and
vmappable; ``to_configs`` / ``from_configs`` are the Python shell around them, and decode
values on the host in float64 and Python integers.

Compiled ``decode`` and ``encode`` hold values in float32 and int32. A domain beyond those
(``uniform(0, 1e39)``, ``loguniform(1e-300, 1)``, ``randint(2**40, 2**40 + 9)``) is legal
in a space, sampled and searched like any other and decoded exactly by ``to_configs``, but
``decode`` and ``encode`` refuse it with a SpaceError naming it instead of returning
values float32 cannot hold (inf, 0, wrapped integers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jhpo import jsonfile
from jhpo.space.conditions import check_condition, topological_order
from jhpo.space.domains import (
    DOMAIN_TYPES,
    Choice,
    Domain,
    Ordinal,
    SpaceError,
    describe_call,
    describe_domain,
)
from jhpo.space.encoding import codec_for, holds_within
from jhpo.space.nesting import flatten_config, flatten_parameters, group_names, nest


class Column(NamedTuple):
    """Where one parameter lives in an encoded row."""

    name: str
    kind: str  # "float", "int", "onehot" or "ordinal"
    start: int
    width: int


class Space:
    """A search space built from a (possibly nested) dict of domains and constants.

    >>> space = Space({"lr": loguniform(1e-4, 1e-1),
    ...                "optim": {"kind": choice(["sgd", "adam"]),
    ...                          "momentum": uniform(0.0, 0.99).when("optim.kind", "sgd")},
    ...                "epochs": 10})

    Inside, every parameter has a flat dotted name (``space.names`` holds ``"optim.kind"``);
    configurations are nested dicts shaped like the space.
    """

    def __init__(self, parameters: Mapping[str, Any]):
        if isinstance(parameters, Space):
            parameters = parameters.parameters
        if not isinstance(parameters, Mapping):
            raise SpaceError(f"a space is built from a dict of parameters, got {type(parameters).__name__}")
        self.parameters = dict(parameters)
        leaves = flatten_parameters(self.parameters)
        self.domains: dict[str, Domain] = {n: v for n, v in leaves.items() if isinstance(v, DOMAIN_TYPES)}
        self.constants: dict[str, Any] = {n: v for n, v in leaves.items() if n not in self.domains}
        for name, value in self.constants.items():
            _check_constant(name, value)
        if not self.domains:
            held = f"only constants ({', '.join(self.constants)})" if self.constants else "nothing"
            raise SpaceError(f"a space needs at least one tunable domain (uniform, loguniform, "
                             f"randint, lograndint, choice, ordinal); this one holds {held}")
        self._leaves = tuple(leaves)
        self._groups = group_names(self._leaves)
        for name, domain in self.domains.items():
            if domain.condition is not None:
                check_condition(name, domain.condition, self.domains, self.constants, self._groups)
        self._order = topological_order(self.domains)
        self._codecs = {name: codec_for(domain) for name, domain in self.domains.items()}
        self._intervals = {name: self._condition_intervals(name) for name in self.domains
                           if self.domains[name].condition is not None}
        self.names: tuple[str, ...] = tuple(self.domains)
        self.columns: tuple[Column, ...] = self._layout()
        self.dim: int = sum(c.width for c in self.columns)

    def _layout(self) -> tuple[Column, ...]:
        columns, start = [], 0
        for name, codec in self._codecs.items():
            columns.append(Column(name, codec.kind, start, codec.width))
            start += codec.width
        return tuple(columns)

    def _condition_intervals(self, name: str) -> list[tuple[int, int]]:
        condition = self.domains[name].condition
        intervals = self._codecs[condition.parent].positions_where(condition)
        if not intervals:
            raise SpaceError(f"parameter {name!r}: its condition {condition.describe()} never "
                             f"holds for any value of {condition.parent!r}")
        return intervals

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
        positions = {name: self._codecs[name].from_uniform(u[:, i]) for i, name in enumerate(self.names)}
        return self._rows(positions)

    def canonicalize(self, rows: jax.Array) -> jax.Array:
        """The canonical row of each row's configuration: floats on their grid of 2^24 + 1
        points in the cube, integers and ranks at bin centres, one-hot blocks made exact,
        inactive columns zero. Idempotent, bit for bit."""
        return self._rows(self._positions(rows))

    def column_mask(self, rows: jax.Array) -> jax.Array:
        """``(n, dim)`` booleans: which columns are active in each row."""
        active = self._active(self._positions(rows))
        return jnp.concatenate(
            [jnp.repeat(active[c.name][:, None], c.width, axis=1) for c in self.columns], axis=1
        )

    @property
    def num_lattice_neighbours(self) -> int:
        """How many rows ``lattice_neighbours`` gives per row."""
        return sum(2 if codec.kind in ("int", "ordinal") else codec.size - 1
                   for codec in self._codecs.values() if codec.kind != "float")

    def lattice_neighbours(self, rows: jax.Array) -> jax.Array:
        """``(n, num_lattice_neighbours, dim)`` canonical rows one step from each row along
        one discrete parameter: an integer or an ordinal one position down and one up
        (held at the edge of its range), a choice at each of its other values. Floats keep
        their values. A step on an inactive parameter, or past an edge, gives the row
        itself back (canonical rows drop inactive values).
        """
        positions = self._positions(rows)
        moved = []
        for name in self.names:
            codec = self._codecs[name]
            if codec.kind == "float":
                continue
            if codec.kind == "onehot":
                shifted = [(positions[name] + k) % codec.size for k in range(1, codec.size)]
            else:
                shifted = [jnp.clip(positions[name] + k, 0, codec.size - 1) for k in (-1, 1)]
            moved += [self._rows({**positions, name: p}) for p in shifted]
        if not moved:
            return jnp.zeros((jnp.shape(rows)[0], 0, self.dim), jnp.float32)
        return jnp.stack(moved, axis=1)

    def decode(self, rows: jax.Array) -> dict[str, jax.Array]:
        """Values of every tunable parameter (active or not) for each row, by dotted name.

        Floats as float32, integers as int32, choices and ordinals as the int32 index of
        their value. A domain float32 or int32 cannot hold is refused (``require_float32``).
        """
        self.require_float32("decode")
        positions = self._positions(rows)
        return {name: self._codecs[name].values(positions[name]) for name in self.names}

    def encode(self, values: Mapping[str, jax.Array]) -> jax.Array:
        """Canonical rows for the given parameter values (as ``decode`` gives them);
        inactive parameters' columns are zero."""
        self.require_float32("encode")
        return self._rows(self._positions_of_values(values))

    def active(self, values: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Whether each parameter is active, per row, from the decoded values."""
        self.require_float32("active")
        return self._active(self._positions_of_values(values))

    def require_float32(self, purpose: str) -> None:
        """Raise a SpaceError naming the first domain whose values float32 (floats) or
        int32 (integers) cannot hold, which compiled ``purpose`` would need."""
        for name, codec in self._codecs.items():
            violation = codec.compiled_violation()
            if violation is not None:
                domain = self.domains[name]
                label = describe_call(describe_domain(domain)["type"], domain.lo, domain.hi)
                raise SpaceError(
                    f"parameter {name!r}: {label} is beyond what {purpose} holds in compiled "
                    f"code: {violation}; to_configs and from_configs read it exactly on the host"
                )

    def _positions_of_values(self, values: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return {name: self._codecs[name].from_values(values[name]) for name in self.names}

    def _positions(self, rows: jax.Array) -> dict[str, jax.Array]:
        # A NaN entry reads as 0, so every row, however it was made, has positions.
        rows = jnp.nan_to_num(jnp.asarray(rows).astype(jnp.float32), nan=0.0)
        return {c.name: self._codecs[c.name].positions(rows[:, c.start:c.start + c.width])
                for c in self.columns}

    def _active(self, positions: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        active: dict[str, jax.Array] = {}
        for name in self._order:
            condition = self.domains[name].condition
            if condition is None:
                active[name] = jnp.ones(jnp.shape(positions[name]), bool)
            else:
                holds = holds_within(positions[condition.parent], self._intervals[name])
                active[name] = active[condition.parent] & holds
        return {name: active[name] for name in self.names}

    def _rows(self, positions: Mapping[str, jax.Array]) -> jax.Array:
        active = self._active(positions)
        blocks = [jnp.where(active[c.name][:, None], self._codecs[c.name].block(positions[c.name]), 0.0)
                  for c in self.columns]
        return jnp.concatenate(blocks, axis=1).astype(jnp.float32)

    # ------------------------------------------------------------------ the Python shell

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A (possibly nested) configuration's values under dotted names."""
        return flatten_config(config, self._leaves, self._groups)

    def index_of(self, name: str, value) -> int:
        """Index of ``value`` among the values of choice or ordinal ``name``."""
        if not isinstance(self.domains.get(name), (Choice, Ordinal)):
            raise SpaceError(f"parameter {name!r} is not a choice or an ordinal of this space")
        return self._codecs[name].position_of(name, value)

    def to_configs(self, rows) -> list[dict]:
        """Plain Python dicts for rows, nested like the space: active parameters and
        constants only. Floats are decoded in float64, integers as exact Python ints."""
        rows = jnp.atleast_2d(jnp.asarray(rows, jnp.float32))
        positions = self._positions(rows)
        active = {k: np.asarray(v) for k, v in self._active(positions).items()}
        values = {name: self._codecs[name].python_values(np.asarray(positions[name]))
                  for name in self.names}
        configs = []
        for i in range(rows.shape[0]):
            flat = {}
            for name in self._leaves:
                if name in self.constants:
                    flat[name] = self.constants[name]
                elif active[name][i]:
                    flat[name] = values[name][i]
            configs.append(nest(flat))
        return configs

    def from_configs(self, configs: Sequence[Mapping[str, Any]]) -> jax.Array:
        """Canonical rows for plain (nested) dicts; inactive parameters may be absent."""
        configs = list(configs)
        if not configs:
            return jnp.zeros((0, self.dim), jnp.float32)
        positions = {name: np.zeros(len(configs), np.int32) for name in self.names}
        present = {name: np.zeros(len(configs), bool) for name in self.names}
        for i, config in enumerate(configs):
            flat = flatten_config(config, self._leaves, self._groups)
            for name in self.names:
                if name in flat:
                    positions[name][i] = self._codecs[name].position_of(name, flat[name])
                    present[name][i] = True
        arrays = {name: jnp.asarray(p) for name, p in positions.items()}
        active = {k: np.asarray(v) for k, v in self._active(arrays).items()}
        for name in self.names:
            missing = active[name] & ~present[name]
            if missing.any():
                raise SpaceError(
                    f"configuration {int(np.argmax(missing))} lacks active parameter {name!r}"
                )
        return self._rows(arrays)

    def describe(self) -> dict:
        """A JSON-ready description of every parameter under its dotted name, in the
        space's order (deterministic, for run records)."""
        description = {}
        for name in self._leaves:
            if name in self.constants:
                description[name] = {"type": "constant", "value": jsonfile.normalise(self.constants[name])}
                continue
            domain = self.domains[name]
            entry = describe_domain(domain)
            if domain.condition is not None:
                entry["when"] = domain.condition.describe()
            description[name] = entry
        return description


def _check_constant(name: str, value) -> None:
    """A constant holding domains would hand the objective domain records, not values."""
    if isinstance(value, Space):
        raise SpaceError(f"parameter {name!r}: a Space inside a space; nest its dict of "
                         f"parameters instead")
    if isinstance(value, Mapping):
        items = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return
    for item in items:
        if isinstance(item, (Space, *DOMAIN_TYPES)):
            raise SpaceError(
                f"parameter {name!r}: a {type(value).__name__} holding domains would be "
                f"passed on as a constant; give each domain its own key (a dict nests)"
            )
        _check_constant(name, item)
