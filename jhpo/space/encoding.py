"""How each domain lives in a row: one codec per domain kind.

A canonical row is determined by one integer *position* per parameter: a float's point on
the grid of ``numerics.GRID + 1`` unit values, an integer's offset from ``lo``, a choice's
or an ordinal's index. Codecs map between rows, positions and values; the array methods
are pure, jittable and vmappable, and the ``python_*`` / ``position_of`` methods are the
host side, exact in float64 and Python integers.
"""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp
import numpy as np

from jhpo.space import numerics
from jhpo.space.domains import COMPARISONS, Choice, Condition, Float, Int, Ordinal, \
    SpaceError, is_number, value_key

F32 = np.dtype(np.float32)


class FloatCodec:
    kind, width = "float", 1

    def __init__(self, domain: Float):
        self.domain = domain
        self.size = numerics.GRID + 1

    def from_uniform(self, u: jax.Array) -> jax.Array:
        return numerics.to_grid(u.astype(jnp.float32), jnp).astype(jnp.int32)

    def positions(self, block: jax.Array) -> jax.Array:
        return self.from_uniform(block[:, 0])

    def block(self, positions: jax.Array) -> jax.Array:
        return numerics.from_grid(positions, F32)[:, None]

    def values(self, positions: jax.Array) -> jax.Array:
        d = self.domain
        return numerics.float_value(numerics.from_grid(positions, F32), d.lo, d.hi, d.log, jnp)

    def from_values(self, values: jax.Array) -> jax.Array:
        d = self.domain
        u = numerics.float_unit(jnp.asarray(values, jnp.float32), d.lo, d.hi, d.log, jnp)
        return self.from_uniform(u)

    def compiled_violation(self) -> str | None:
        return numerics.float32_violation(self.domain.lo, self.domain.hi, self.domain.log)

    def python_values(self, positions: np.ndarray) -> list:
        d = self.domain
        u = numerics.from_grid(np.asarray(positions, np.int64), np.dtype(np.float64))
        return [float(x) for x in numerics.float_value(u, d.lo, d.hi, d.log, np)]

    def position_of(self, name: str, value) -> int:
        d = self.domain
        if not is_number(value) or not d.lo <= value <= d.hi:
            raise SpaceError(f"parameter {name!r}: value {value!r} is outside [{d.lo}, {d.hi}]")
        u = numerics.float_unit(np.asarray([value], np.float64), d.lo, d.hi, d.log, np)
        return int(numerics.to_grid(u, np)[0])

    def positions_where(self, condition: Condition) -> list[tuple[int, int]]:
        """Grid positions whose float64 value passes ``condition``: each comparison is
        found on the grid itself, so a configuration holds a child exactly when its
        parent's decoded value passes the test."""
        d = self.domain

        def first(test) -> int:
            return numerics.first_grid_position(test, d.lo, d.hi, d.log)

        low, high = 0, numerics.GRID
        if condition.ge is not None:
            low = max(low, first(lambda x: x >= condition.ge))
        if condition.gt is not None:
            low = max(low, first(lambda x: x > condition.gt))
        if condition.le is not None:
            high = min(high, first(lambda x: x > condition.le) - 1)
        if condition.lt is not None:
            high = min(high, first(lambda x: x >= condition.lt) - 1)
        if condition.values is None:
            return merge_intervals([(low, high)])
        equal = [(first(lambda x, v=v: x >= v), first(lambda x, v=v: x > v) - 1)
                 for v in condition.values if is_number(v)]
        return merge_intervals([(max(a, low), min(b, high)) for a, b in equal])


class IntCodec:
    kind, width = "int", 1

    def __init__(self, domain: Int):
        self.domain = domain
        self.size = domain.hi - domain.lo + 1

    def from_uniform(self, u: jax.Array) -> jax.Array:
        d = self.domain
        offset = numerics.integer_offset(u.astype(jnp.float32), d.lo, d.hi, d.log, jnp)
        return offset.astype(jnp.int32)

    def positions(self, block: jax.Array) -> jax.Array:
        return self.from_uniform(block[:, 0])

    def block(self, positions: jax.Array) -> jax.Array:
        d = self.domain
        return numerics.integer_unit(positions, d.lo, d.hi, d.log, jnp, F32)[:, None]

    def values(self, positions: jax.Array) -> jax.Array:
        return jnp.int32(self.domain.lo) + positions.astype(jnp.int32)

    def from_values(self, values: jax.Array) -> jax.Array:
        d = self.domain
        clipped = jnp.clip(jnp.asarray(values).astype(jnp.int32), d.lo, d.hi)
        return clipped - jnp.int32(d.lo)

    def compiled_violation(self) -> str | None:
        return numerics.int32_violation(self.domain.lo, self.domain.hi)

    def python_values(self, positions: np.ndarray) -> list:
        return [self.domain.lo + int(p) for p in positions]

    def position_of(self, name: str, value) -> int:
        d = self.domain
        if not is_number(value) or not d.lo <= value <= d.hi:
            raise SpaceError(f"parameter {name!r}: value {value!r} is outside [{d.lo}, {d.hi}]")
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise SpaceError(f"parameter {name!r}: value {value!r} is not an integer")
        return int(value) - d.lo

    def positions_where(self, condition: Condition) -> list[tuple[int, int]]:
        d = self.domain
        # Thresholds beyond the range act as the range's edges; this keeps ceil/floor finite.
        def clamp(t):
            return min(max(t, d.lo - 1), d.hi + 1)

        lows = [0]
        highs = [self.size - 1]
        if condition.ge is not None:
            lows.append(math.ceil(clamp(condition.ge)) - d.lo)
        if condition.gt is not None:
            lows.append(math.floor(clamp(condition.gt)) + 1 - d.lo)
        if condition.le is not None:
            highs.append(math.floor(clamp(condition.le)) - d.lo)
        if condition.lt is not None:
            highs.append(math.ceil(clamp(condition.lt)) - 1 - d.lo)
        low, high = max(lows), min(highs)
        if condition.values is None:
            return merge_intervals([(low, high)])
        offsets = [int(v) - d.lo for v in condition.values
                   if is_number(v) and float(v).is_integer()]
        return merge_intervals([(k, k) for k in offsets if low <= k <= high])


class IndexCodec:
    """Shared by choices (one-hot columns) and ordinals (one rank column)."""

    def __init__(self, domain: Choice | Ordinal):
        self.domain = domain
        self.size = len(domain.values)

    def from_uniform(self, u: jax.Array) -> jax.Array:
        return jnp.clip(jnp.floor(u.astype(jnp.float32) * self.size), 0, self.size - 1) \
            .astype(jnp.int32)

    def values(self, positions: jax.Array) -> jax.Array:
        return positions.astype(jnp.int32)

    def from_values(self, values: jax.Array) -> jax.Array:
        return jnp.clip(jnp.asarray(values).astype(jnp.int32), 0, self.size - 1)

    def compiled_violation(self) -> str | None:
        return None

    def python_values(self, positions: np.ndarray) -> list:
        return [self.domain.values[int(p)] for p in positions]

    def position_of(self, name: str, value) -> int:
        key = value_key(value)
        for i, candidate in enumerate(self.domain.values):
            if value_key(candidate) == key:
                return i
        raise SpaceError(
            f"parameter {name!r}: {value!r} is not one of {list(self.domain.values)!r}"
        )

    def positions_where(self, condition: Condition) -> list[tuple[int, int]]:
        wanted = None if condition.values is None else {value_key(v) for v in condition.values}
        holding = [
            i for i, value in enumerate(self.domain.values)
            if (wanted is None or value_key(value) in wanted) and _compares(value, condition)
        ]
        return merge_intervals([(i, i) for i in holding])


class ChoiceCodec(IndexCodec):
    kind = "onehot"

    @property
    def width(self) -> int:
        return self.size

    def positions(self, block: jax.Array) -> jax.Array:
        return jnp.argmax(block, axis=1).astype(jnp.int32)

    def block(self, positions: jax.Array) -> jax.Array:
        return jax.nn.one_hot(positions, self.size, dtype=jnp.float32)


class OrdinalCodec(IndexCodec):
    kind, width = "ordinal", 1

    def positions(self, block: jax.Array) -> jax.Array:
        return self.from_uniform(block[:, 0])

    def block(self, positions: jax.Array) -> jax.Array:
        return ((positions.astype(jnp.float32) + 0.5) / self.size)[:, None]


Codec = FloatCodec | IntCodec | ChoiceCodec | OrdinalCodec


def codec_for(domain) -> Codec:
    if isinstance(domain, Float):
        return FloatCodec(domain)
    if isinstance(domain, Int):
        return IntCodec(domain)
    if isinstance(domain, Choice):
        return ChoiceCodec(domain)
    return OrdinalCodec(domain)


def _compares(value, condition: Condition) -> bool:
    comparisons = [(getattr(condition, b), b) for b in COMPARISONS if getattr(condition, b) is not None]
    if not comparisons:
        return True
    if not is_number(value):
        return False
    return all(bool(getattr(operator, bound)(value, threshold)) for threshold, bound in comparisons)


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-empty closed integer intervals, sorted, with touching ones joined."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted((a, b) for a, b in intervals if a <= b):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def holds_within(positions: jax.Array, intervals: list[tuple[int, int]]) -> jax.Array:
    """Whether each position lies in one of the closed ``intervals`` (pure, jittable)."""
    holds = jnp.zeros(positions.shape, bool)
    for low, high in intervals:
        holds = holds | ((positions >= low) & (positions <= high))
    return holds
