"""The compiled programs of a population: every member of one task in one program.

``PopulationPrograms`` vmaps a ``Task``'s functions over a leading population axis
and shards that axis over a mesh of devices (``shard_map``, mesh axis
``POPULATION_AXIS``), so each device trains its own members and members never
talk to each other. The mesh spans every device of every process by default: after
``jax.distributed.initialize`` the same programs run on every host, each process
feeding the members its own devices hold (see :mod:`jhpo.multihost`). Its programs:

- ``init``: fresh members (states, alive flags, failure steps);
- ``advance``: every member trains one block of steps from its own step count;
- ``evaluate``: every member's evaluation metrics;
- ``select``: per member, a new pytree or the old one (load fresh members into slots);
- ``gather``: per member, the state of another member (PBT's copies).

A member whose loss or state stops being finite is frozen at its last finite
state; nothing it computes reaches another member. A step's randomness depends
on the member's key and its global step only, so blocks, padding and devices do
not change what a member computes.

Compiled programs live in one cache for the process, shared by every
``PopulationPrograms``: a program is reused wherever its trace would be the same.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from jhpo import multihost
from jhpo.population.task import Task

POPULATION_AXIS = "population"


class PopulationPrograms:
    """The programs over ``size`` members of ``task`` on ``devices`` (default: every
    device of every process, ``jax.devices()``).

    size: members per program, rounded up to a multiple of the device count
        (``self.size``); the caller fills the extra members with valid copies.
    max_batch_size: the static batch every member draws, masked down to its own
        "batch_size" hyperparameter.
    interval: steps ``advance`` trains by default.

    ``num_compiles``, ``compile_s`` and ``program_bytes`` (the largest program's
    memory on one device, as XLA estimates it) count what these programs cost;
    ``compiles`` counts compilations per program name.
    """

    def __init__(self, task: Task, size: int, max_batch_size: int, interval: int,
                 devices: Sequence[jax.Device] | None = None):
        for name, value in (("size", size), ("max_batch_size", max_batch_size), ("interval", interval)):
            if value < 1:
                raise ValueError(f"{name}={value} must be at least 1")
        self.task = task
        self.mesh = Mesh(np.asarray(list(devices) if devices else jax.devices()), (POPULATION_AXIS,))
        self.size = -(-size // self.mesh.size) * self.mesh.size
        self.max_batch_size = max_batch_size
        self.interval = interval
        self.sharding = NamedSharding(self.mesh, PS(POPULATION_AXIS))
        self.data = multihost.put(task.data, NamedSharding(self.mesh, PS()))
        self.compiles: Counter = Counter()
        self.compile_s = 0.0
        self.program_bytes = 0

    @property
    def num_compiles(self) -> int:
        return sum(self.compiles.values())

    def put(self, tree):
        """``tree`` (host or device arrays) with its leading member axis sharded over the
        devices. A host value must be the same on every process; each process copies only
        its own devices' members (``jhpo.multihost.put``)."""
        return multihost.put(tree, self.sharding)

    def fetch(self, tree, members=None):
        """``tree`` (arrays with a leading member axis) as numpy arrays on every process,
        only the ``members`` given (indices) when given."""
        if members is not None:
            tree = jax.tree.map(lambda leaf: leaf[np.asarray(members)], tree)
        return multihost.fetch(tree)

    def init(self, keys, hp):
        """Fresh members from their keys and hyperparameters: (states, alive, failed_step)."""
        init = self._program(("init",), lambda: _shard_population(self.task.init, self.mesh, 2), (keys, hp))
        return (init(keys, hp), self.put(np.ones(self.size, bool)), self.put(np.full(self.size, -1, np.int32)))

    def advance(self, carry, hp, keys, starts, steps: int | None = None):
        """Train every member ``steps`` steps (default: the interval) from its step count ``starts``.

        Returns the new carry and the (size, steps) training losses, NaN where a
        member is frozen.
        """
        steps = self.interval if steps is None else steps
        args = (carry, hp, keys, self.data, self.put(jnp.asarray(starts, jnp.int32)))
        block = self._program(
            ("advance", steps, self.max_batch_size),
            lambda: _shard_population(
                _member_block(self.task, self.max_batch_size, steps), self.mesh, 5, replicated=(3,)
            ),
            args,
        )
        return block(*args)

    def evaluate(self, states, hp) -> dict[str, np.ndarray]:
        """Every member's evaluation metrics, on the host of every process."""
        args = (states, hp, self.data)
        evaluate = self._program(("evaluate",),
                                 lambda: _shard_population(self.task.evaluate, self.mesh, 3, replicated=(2,)), args)
        return self.fetch(evaluate(*args))

    def select(self, mask, new, old):
        """Per member, the ``new`` pytree where ``mask`` is set, else ``old`` (same structure)."""
        args = self.put((np.asarray(mask, bool), new, old))
        select = self._program(("select",), lambda: _shard_population(_choose, self.mesh, 3), args)
        return select(*args)

    def gather(self, tree, index):
        """Per member ``i``, member ``index[i]``'s slice of ``tree``."""
        args = self.put((tree, np.asarray(index, np.int32)))
        gather = self._program(("gather",), lambda: jax.jit(_take, out_shardings=self.sharding), args)
        return gather(*args)

    def _program(self, name: tuple, build: Callable[[], Callable], args: tuple):
        key = (_task_identity(self.task), self.mesh, name, trace_settings())
        compiled, seconds = _PROGRAMS.get(key, build, args)
        self.compiles[name[0]] += seconds > 0
        self.compile_s += seconds
        self.program_bytes = max(self.program_bytes, _program_bytes(compiled))
        return compiled


def trace_settings() -> tuple[Hashable, ...]:
    """The global settings a task's functions may read while they are traced.

    A cached program is only valid under the settings it was traced with: the
    convolution implementation ``jhpo.nn`` resolves (``JHPO_CONV_IMPL`` or the
    backend's default), and JAX's own flags for default dtypes and matmul precision.
    """
    # Until something imports jhpo.nn no trace can have resolved a convolution through
    # it; importing it here instead would load flax for tasks that never use it.
    nn = sys.modules.get("jhpo.nn")
    conv_impl = None if nn is None else nn.default_conv_impl()
    return (conv_impl, jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)


def _task_identity(task: Task) -> tuple:
    return (task.init, task.train_step, task.evaluate, task.draw_batch)


def _choose(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


def _take(tree, index):
    return jax.tree.map(lambda leaf: leaf[index], tree)


def _all_finite(tree) -> jax.Array:
    checks = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def _member_block(task: Task, max_batch_size: int, length: int):
    """``length`` training steps of one member, frozen once it turns non-finite."""

    def run(carry, hp, key, data, start):
        def step(carry, offset):
            state, alive, failed_step = carry
            step_index = start + offset
            # The step's randomness depends on the member key and the global step
            # only, so blocks, chunks, padding and devices do not change a member.
            batch_key, step_key = jax.random.split(jax.random.fold_in(key, step_index))
            batch = dict(task.draw_batch(data, batch_key, max_batch_size))
            batch["mask"] = jnp.arange(max_batch_size) < hp["batch_size"]
            new_state, metrics = task.train_step(state, hp, batch, step_key)
            loss = metrics["loss"]
            healthy = alive & jnp.isfinite(loss) & _all_finite(new_state)
            state = jax.tree.map(lambda new, old: jnp.where(healthy, new, old), new_state, state)
            failed_step = jnp.where(alive & ~healthy, step_index, failed_step)
            return (state, healthy, failed_step), jnp.where(healthy, loss, jnp.nan)

        return jax.lax.scan(step, carry, jnp.arange(length))

    return run


def _shard_population(body, mesh: Mesh, num_args: int, replicated: Sequence[int] = ()):
    """vmap ``body`` over the local members of each device of ``mesh``."""
    specs = tuple(PS() if index in replicated else PS(POPULATION_AXIS) for index in range(num_args))
    vmapped = jax.vmap(body, in_axes=tuple(None if index in replicated else 0 for index in range(num_args)))
    return jax.jit(jax.shard_map(vmapped, mesh=mesh, in_specs=specs, out_specs=PS(POPULATION_AXIS)))


class _ProgramCache:
    """Compiled programs by key and argument signature (tree structure, shapes, dtypes).

    Bounded, least recently used first out, so that tasks built and dropped (as
    in tests) do not pile up.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self.entries: OrderedDict = OrderedDict()

    def get(self, key, build: Callable[[], Callable], args: tuple) -> tuple[Callable, float]:
        """The compiled program and the seconds spent compiling it (0 when cached)."""
        leaves = jax.tree.leaves(args)
        signature = (key, jax.tree.structure(args), tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves))
        if signature in self.entries:
            self.entries.move_to_end(signature)
            return self.entries[signature], 0.0
        start = time.perf_counter()
        # The partitionable threefry lowering makes XLA:CPU compile a flax init
        # about 9x slower (9 s against 1 s for the digits CNN); members are
        # sharded by shard_map, not by the SPMD partitioner, so they do not need
        # it. The "rbg" PRNG compiles fast too but its draws depend on the device.
        with jax.threefry_partitionable(False):
            compiled = build().lower(*args).compile()
        seconds = time.perf_counter() - start
        self.entries[signature] = compiled
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return compiled, seconds


_PROGRAMS = _ProgramCache()


def _program_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
