"""The searcher record and the padded observation buffers searchers keep their data in.

A searcher is three pure functions over a pytree state, in the manner of optax's
``GradientTransformation``: ``init(key) -> state``, ``ask(state, key, n) -> (rows, state,
fresh)`` and ``tell(state, rows, values) -> state``. Rows are canonical unit-cube rows of a
:class:`jhpo.space.Space`; values are to be minimised and NaN marks a failed trial.

``fresh`` is an (n,) bool array beside the rows, as BlackJAX's kernels return what happened
beside the new state: False marks a row that repeats one already observed or pending
because the searcher found nothing else (a small discrete space used up). The caller
decides what to do about it (``jhpo.Optimizer`` warns); a searcher that never looks for
repeats, as random search, returns all True.

Observations live in fixed-capacity buffers with a mask. Capacity doubles when full, so a
jitted kernel over a buffer compiles once per power of two, not once per trial. The
doubling reads the buffer's fill level back to the host (a capacity is a static shape), so
``append`` is called outside ``jit`` and waits for the device; a caller that already
holds the fill level on the host grows the buffer itself (``compact``, ``grow``,
``capacity_for``) and writes with ``write_after_filled``, which reads nothing back.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

State = Any


class Searcher(NamedTuple):
    """A search strategy as pure functions over its state."""

    init: Callable[[jax.Array], State]
    ask: Callable[[State, jax.Array, int], tuple[jax.Array, State, jax.Array]]
    tell: Callable[[State, jax.Array, jax.Array], State]


class Buffer(NamedTuple):
    """Rows and values in fixed-capacity arrays; ``mask`` marks the filled slots."""

    x: jax.Array  # (capacity, dim) float32
    y: jax.Array  # (capacity,) float32, or (capacity, outputs) for several outputs
    mask: jax.Array  # (capacity,) bool

    @property
    def capacity(self) -> int:
        return self.x.shape[0]

    @property
    def count(self) -> int:
        """The number of filled slots, read back to the host: it waits for the device."""
        return int(jnp.sum(self.mask))


class SearchState(NamedTuple):
    """The state of searchers that keep nothing but their data."""

    observed: Buffer
    pending: Buffer


MIN_CAPACITY = 8


def empty_buffer(dim: int, capacity: int = MIN_CAPACITY, outputs: int = 1) -> Buffer:
    """An empty buffer; ``outputs > 1`` keeps a vector of values per row (objectives
    to minimise, then constraints)."""
    return Buffer(
        x=jnp.zeros((capacity, dim), jnp.float32),
        y=jnp.zeros((capacity,) if outputs == 1 else (capacity, outputs), jnp.float32),
        mask=jnp.zeros((capacity,), bool),
    )


def next_power_of_two(n: int) -> int:
    """The smallest power of two that is at least ``n`` (1 for n <= 1): sizes grow by
    doubling, so a jitted function compiles once per size, not once per count."""
    return 1 << max(0, int(n) - 1).bit_length()


def capacity_for(count: int) -> int:
    """The smallest power of two (at least MIN_CAPACITY) holding ``count`` rows."""
    return max(MIN_CAPACITY, next_power_of_two(count))


def grow(buffer: Buffer, capacity: int) -> Buffer:
    """The same contents in a buffer of at least ``capacity`` slots."""
    extra = capacity - buffer.capacity
    if extra <= 0:
        return buffer
    return Buffer(
        x=jnp.pad(buffer.x, ((0, extra), (0, 0))),
        y=jnp.pad(buffer.y, ((0, extra),) + ((0, 0),) * (buffer.y.ndim - 1)),
        mask=jnp.pad(buffer.mask, (0, extra)),
    )


def append(buffer: Buffer, x: jax.Array, y: jax.Array | None = None) -> Buffer:
    """Add rows (and their values) into the free slots, doubling capacity when needed.

    Filled slots are compacted to the front first, so free slots are always a suffix.
    """
    x = jnp.atleast_2d(jnp.asarray(x, jnp.float32))
    if y is None:
        y = jnp.zeros((x.shape[0],) + buffer.y.shape[1:], jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    if y.shape != (x.shape[0],) + buffer.y.shape[1:]:
        raise ValueError(
            f"values of shape {y.shape} do not fit a buffer of {buffer.y.shape[1:] or 'scalar'} "
            f"values per row for {x.shape[0]} rows"
        )
    buffer = grow(compact(buffer), capacity_for(buffer.count + x.shape[0]))
    return write_after_filled(buffer, x, y)


@jax.jit
def compact(buffer: Buffer) -> Buffer:
    """Move filled slots to the front, keeping their order."""
    order = jnp.argsort(~buffer.mask, stable=True)
    return Buffer(buffer.x[order], buffer.y[order], buffer.mask[order])


@jax.jit
def write_after_filled(buffer: Buffer, x: jax.Array, y: jax.Array) -> Buffer:
    """Rows ``x`` (float32, 2-D) and their values ``y`` written into the slots after the
    filled ones, without reading anything back to the host.

    The buffer must be compacted and have room for the rows (see ``append``): the write
    position is clamped to the capacity, so rows beyond it would overwrite filled slots.
    """
    start = jnp.sum(buffer.mask)
    return Buffer(
        x=jax.lax.dynamic_update_slice(buffer.x, x, (start, 0)),
        y=jax.lax.dynamic_update_slice(buffer.y, y, (start,) + (0,) * (y.ndim - 1)),
        mask=jax.lax.dynamic_update_slice(buffer.mask, jnp.ones(x.shape[0], bool), (start,)),
    )


@jax.jit
def remove_rows(buffer: Buffer, x: jax.Array) -> Buffer:
    """Unmask every slot whose row equals one of the rows of ``x``."""
    matches = jnp.all(buffer.x[:, None, :] == x[None, :, :], axis=-1).any(axis=1)
    return buffer._replace(mask=buffer.mask & ~matches)


def init_search_state(dim: int, outputs: int = 1) -> SearchState:
    return SearchState(observed=empty_buffer(dim, outputs=outputs), pending=empty_buffer(dim))


def record_asked(state, rows: jax.Array):
    """``state`` with ``rows`` added to its pending buffer."""
    return state._replace(pending=append(state.pending, rows))


def record_told(state, rows: jax.Array, values: jax.Array):
    """``state`` with ``rows`` observed and no longer pending."""
    rows = jnp.atleast_2d(jnp.asarray(rows, jnp.float32))
    return state._replace(
        observed=append(state.observed, rows, values),
        pending=remove_rows(state.pending, rows),
    )


def taken(rows: jax.Array, *buffers: Buffer) -> jax.Array:
    """For each of ``rows`` (canonical), whether it equals a filled row of one of ``buffers``."""
    found = jnp.zeros(rows.shape[0], bool)
    for buffer in buffers:
        equal = jnp.all(rows[:, None, :] == buffer.x[None, :, :], axis=-1)
        found |= jnp.any(equal & buffer.mask[None, :], axis=1)
    return found


# ----------------------------------------------------------------------------- options


def check_count(name: str, value, minimum: int) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def check_number(name: str, value, bound: float, allow_equal: bool = False) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a real number above
    ``bound`` (or equal to it, with ``allow_equal``)."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not (value >= bound if allow_equal else value > bound):
        relation = ">=" if allow_equal else ">"
        raise ValueError(f"{name}={value!r} must be a number {relation} {bound:g}")
