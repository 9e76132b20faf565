"""Train a population of members of one task, with the programs of ``programs.py``.

``train`` stacks P members along a leading population axis and trains them
together, in blocks of steps, sharded over every device of every process (after
``jax.distributed.initialize``, each process runs ``train`` with the same arguments
and feeds its own devices' members; every process gets the whole result).

Per-member batch size: every member draws a batch of the same static size
``max_batch_size`` and a mask keeps its first ``batch_size`` examples, so a
population of mixed batch sizes is one program. ``batch_strategy="bucket"``
instead trains members grouped by power-of-two batch size (one program per
group shape), which wastes less arithmetic but compiles more; see
``benchmarks/population_throughput.py`` for the measurement behind the default.

A member whose loss or state stops being finite is frozen at its last finite
state and reported failed; nothing it computes reaches another member.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jhpo.population.programs import PopulationPrograms
from jhpo.population.task import Array, Task, check_hparams, stack_hparams, typed_keys
from jhpo.searchers.base import next_power_of_two

BATCH_STRATEGIES = ("mask", "bucket")
# Measured end to end (benchmarks/population_throughput.py, 64 digits CNN
# configurations with batch sizes 8..128, 200 steps, populations of 16, 2
# shared CPU cores), two runs: mask 85 s and 46 s, bucket 136 s and 97 s.
# Bucketing saves arithmetic on small batches but compiles a program per
# bucket and population shape, which costs more.
DEFAULT_BATCH_STRATEGY = "mask"
# Members per device in one program when ``chunk_size`` is not given. On CPU a
# large population spills the caches: the digits CNN, P = 64, batch 64, trained
# at 305 and 580 member-steps/s in one program against 358 and 720 in chunks of
# 16 (two runs on 2 shared cores). Accelerators get the whole population.
BACKEND_CHUNK_PER_DEVICE = {"cpu": 16}


class PopulationResult(NamedTuple):
    """What training a population produced, one row per member, on the host.

    metrics: evaluate's metrics of the final (for a failed member, last finite) state.
    failed: the member's loss or state stopped being finite.
    failed_step: the first step that was not finite; -1 for healthy members.
    losses: (P, steps) training loss per step (NaN from failed_step on).
    states: final states with the population axis, when ``keep_states`` was set.
    compile_s / train_s: seconds spent compiling / running (compile excluded).
    num_compiles: programs compiled by this call (cached programs are reused).
    program_bytes: XLA's estimate of the largest program's memory on one
        device (arguments, outputs and temporaries); 0 where XLA gives none.
    """

    metrics: dict[str, np.ndarray]
    failed: np.ndarray
    failed_step: np.ndarray
    losses: np.ndarray
    states: Any
    compile_s: float
    train_s: float
    num_compiles: int
    program_bytes: int


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def default_chunk_size(num_devices: int, backend: str | None = None) -> int | None:
    """Members trained at once when ``train`` is not given a ``chunk_size`` (None: all)."""
    per_device = BACKEND_CHUNK_PER_DEVICE.get(backend or jax.default_backend())
    return None if per_device is None else per_device * num_devices


def train(
    task: Task,
    hparams: Mapping[str, Any],
    seeds,
    steps: int,
    *,
    max_batch_size: int | None = None,
    batch_strategy: str = DEFAULT_BATCH_STRATEGY,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    block_steps: int | None = None,
    keep_states: bool = False,
    on_block: Callable[[int, int], None] | None = None,
    pad_to: int | None = None,
) -> PopulationResult:
    """Train P members of ``task`` for ``steps`` steps each and evaluate them.

    hparams: name -> (P,) values (see ``stack_hparams``); missing names take
        the task's defaults.
    seeds: (P,) integers or typed PRNG keys; a member's result depends only on
        its hyperparameters and its seed.
    max_batch_size: the static batch every member draws (masked down to its
        own batch size); default: the population's largest batch size rounded
        up to a power of two, so that populations share programs.
    batch_strategy: "mask" (one program) or "bucket" (groups by power-of-two
        batch size).
    chunk_size: train at most this many members at a time, for populations
        that do not fit in memory at once; default ``default_chunk_size``.
    devices: the devices the population axis is sharded over (default: every
        device of every process, ``jax.devices()``). Members are padded to a
        multiple of their number; the padding is trained but never reported.
    block_steps: steps per compiled call; ``on_block(done, total)`` is called
        after each call with member-chunk steps done so far.
    pad_to: train at least this many members (copies of the first, never
        reported), so that a smaller last population reuses the programs of
        the full-size ones instead of compiling its own.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    if batch_strategy not in BATCH_STRATEGIES:
        raise ValueError(f"batch_strategy={batch_strategy!r} must be one of {BATCH_STRATEGIES}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be at least 1")
    block_steps = steps if block_steps is None else block_steps
    if not 1 <= block_steps <= steps:
        raise ValueError(f"block_steps={block_steps} must lie between 1 and steps={steps}")
    columns, size = check_hparams(task, hparams)
    keys = typed_keys(seeds)
    if keys.shape != (size,):
        raise ValueError(f"seeds must have one entry per member ({size}); got shape {keys.shape}")
    batch_sizes = columns["batch_size"]
    if batch_sizes.min() < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_sizes.min()}")
    if max_batch_size is not None and batch_sizes.max() > max_batch_size:
        raise ValueError(f"batch_size {batch_sizes.max()} exceeds max_batch_size={max_batch_size}")
    if pad_to is not None and pad_to > size:
        columns, keys = _pad_population(columns, keys, pad_to)
    devices = list(devices) if devices else jax.devices()
    if chunk_size is None:
        chunk_size = default_chunk_size(len(devices), devices[0].platform)
    pieces = _plan_pieces(columns["batch_size"], batch_strategy, max_batch_size, chunk_size, len(devices))
    total = len(pieces) * steps
    results = []
    for index, (members, batch, width) in enumerate(pieces):

        def progress(done, base=index * steps):
            if on_block is not None:
                on_block(base + done, total)

        schedule = _Schedule(steps, block_steps, keep_states, progress)
        results.append((members, _train_piece(task, columns, keys, members, width, devices, batch, schedule)))
    return _first_members(_merge_groups(results, len(keys)), size)


def _pad_population(columns: dict[str, np.ndarray], keys: Array, size: int):
    """Append copies of member 0 until there are ``size`` members."""
    copies = np.zeros(size - len(keys), int)
    padded = {name: np.concatenate([column, column[copies]]) for name, column in columns.items()}
    return padded, jnp.concatenate([keys, keys[copies]])


def _plan_pieces(batch_sizes, batch_strategy, max_batch_size, chunk_size, num_devices):
    """Split the population into (members, padded batch size, program width) pieces.

    "mask" keeps one group with one batch size; "bucket" groups members by
    batch size rounded up to a power of two. Each group is cut into chunks of
    at most ``chunk_size`` members, padded to a multiple of the device count.
    """
    if batch_strategy == "mask":
        groups = [(np.arange(len(batch_sizes)), max_batch_size or next_power_of_two(batch_sizes.max()))]
    else:
        groups = _batch_size_buckets(batch_sizes, max_batch_size)
    pieces = []
    for members, batch in groups:
        chunk = len(members) if chunk_size is None else min(chunk_size, len(members))
        # Buckets vary in size from one population to the next; padding them to
        # a power of two bounds the number of distinct program shapes.
        width = _round_up(next_power_of_two(chunk) if batch_strategy == "bucket" else chunk, num_devices)
        pieces += [(members[start : start + chunk], batch, width) for start in range(0, len(members), chunk)]
    return pieces


def _first_members(result: PopulationResult, size: int) -> PopulationResult:
    """Drop the copies ``pad_to`` added."""
    if len(result.failed) == size:
        return result
    return result._replace(
        metrics={name: value[:size] for name, value in result.metrics.items()},
        failed=result.failed[:size],
        failed_step=result.failed_step[:size],
        losses=result.losses[:size],
        states=None if result.states is None else jax.tree.map(lambda leaf: leaf[:size], result.states),
    )


def _batch_size_buckets(batch_sizes: np.ndarray, max_batch_size: int | None) -> list[tuple[np.ndarray, int]]:
    buckets = np.array([next_power_of_two(b) for b in batch_sizes])
    if max_batch_size is not None:
        buckets = np.minimum(buckets, max_batch_size)
    return [(np.flatnonzero(buckets == bucket), int(bucket)) for bucket in np.unique(buckets)]


class _Schedule(NamedTuple):
    steps: int
    block_steps: int
    keep_states: bool
    progress: Callable[[int], None]


def _pad_members(members: np.ndarray, width: int) -> np.ndarray:
    """Fill a piece up to ``width`` with copies of its first member (a valid configuration)."""
    return np.concatenate([members, np.full(width - len(members), members[0])])


def _train_piece(task, columns, keys, members, width, devices, max_batch_size, schedule) -> PopulationResult:
    """Train ``members`` (padded to ``width``) as one sharded population."""
    wall_start = time.perf_counter()
    programs = PopulationPrograms(task, width, max_batch_size, schedule.block_steps, devices)
    rows = _pad_members(members, width)
    hp = programs.put({name: column[rows] for name, column in columns.items()})
    member_keys = programs.put(keys[rows])
    carry = programs.init(member_keys, hp)
    losses = []
    for start in range(0, schedule.steps, schedule.block_steps):
        length = min(schedule.block_steps, schedule.steps - start)
        carry, block_losses = programs.advance(carry, hp, member_keys, np.full(width, start, np.int32), steps=length)
        losses.append(block_losses)
        schedule.progress(start + length)
    states, alive, failed_step = carry
    metrics = programs.evaluate(states, hp)
    live = len(members)
    alive, failed_step, losses = programs.fetch((alive, failed_step, losses))
    return PopulationResult(
        metrics={name: value[:live] for name, value in metrics.items()},
        failed=~alive[:live],
        failed_step=failed_step[:live],
        losses=np.concatenate(losses, axis=1)[:live],
        states=jax.tree.map(lambda leaf: leaf[:live], programs.fetch(states)) if schedule.keep_states else None,
        compile_s=programs.compile_s,
        train_s=time.perf_counter() - wall_start - programs.compile_s,
        num_compiles=programs.num_compiles,
        program_bytes=programs.program_bytes,
    )


def _merge_groups(parts: list[tuple[np.ndarray, PopulationResult]], size: int) -> PopulationResult:
    """Put the results of pieces of the population back in member order."""
    if len(parts) == 1 and np.array_equal(parts[0][0], np.arange(size)):
        return parts[0][1]
    order = np.argsort(np.concatenate([members for members, _ in parts]), kind="stable")

    def gather(pick):
        return np.concatenate([pick(result) for _, result in parts])[order]

    first = parts[0][1]
    states = None
    if first.states is not None:
        states = jax.tree.map(lambda *leaves: np.concatenate(leaves)[order], *[r.states for _, r in parts])
    return PopulationResult(
        metrics={name: gather(lambda r, name=name: r.metrics[name]) for name in first.metrics},
        failed=gather(lambda r: r.failed),
        failed_step=gather(lambda r: r.failed_step),
        losses=gather(lambda r: r.losses),
        states=states,
        compile_s=sum(r.compile_s for _, r in parts),
        train_s=sum(r.train_s for _, r in parts),
        num_compiles=sum(r.num_compiles for _, r in parts),
        program_bytes=max(r.program_bytes for _, r in parts),
    )


def train_configs(task: Task, configs: Sequence[Mapping[str, Any]], seeds, steps: int, **options) -> PopulationResult:
    """``train`` for a list of plain configuration dicts."""
    return train(task, stack_hparams(task, configs), seeds, steps, **options)


def steps_per_block(steps: int, blocks: int = 10) -> int:
    """The largest divisor of ``steps`` that splits it into at least ``blocks`` calls.

    Using a divisor keeps every call the same length, so one program serves them all.
    """
    if steps < 1 or blocks < 1:
        raise ValueError(f"steps={steps} and blocks={blocks} must be at least 1")
    target = max(1, steps // blocks)
    return max(d for d in range(1, target + 1) if steps % d == 0)
