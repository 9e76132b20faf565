"""What the slots of a population run hold, on the host, in fixed-shape arrays.

A population run trains a fixed number of slots together; each slot holds one trial at
a time (see :mod:`jhpo.runs.population_loop`). This module keeps the host's side of
that: which trial each slot holds and how far it trained (``Slots``), the last training
losses of each slot's trial (``LossTail``, read as the trial's ``train_loss``), and the
trials ASHA's promotion form paused (``Paused``), packed into arrays for a checkpoint.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from jhpo.searchers.base import capacity_for

TRAIN_LOSS = "train_loss"


class Slots(NamedTuple):
    """What each slot holds, on the host. ``trial`` is -1 for an empty slot."""

    trial: np.ndarray  # (S,) int
    steps: np.ndarray  # (S,) int, steps the slot's state has trained
    rows: np.ndarray  # (S, dim) float32, the slot's configuration
    parent: np.ndarray  # (S,) int, PBT donor trial or -1
    start_step: np.ndarray  # (S,) int, step at which the slot's trial began
    started_at: np.ndarray  # (S,) float, wall-clock start of the slot's trial

    @classmethod
    def empty(cls, slots: int, dim: int) -> Slots:
        return cls(np.full(slots, -1), np.zeros(slots, np.int64), np.zeros((slots, dim), np.float32),
                   np.full(slots, -1), np.zeros(slots, np.int64), np.zeros(slots))

    def copy(self) -> Slots:
        return Slots(*(np.array(field) for field in self))

    @property
    def occupied(self) -> np.ndarray:
        return self.trial >= 0


def tail_length(steps: int) -> int:
    """How many of its last training losses a trial's ``train_loss`` averages: a tenth of
    the full training (one minibatch's loss is noisy)."""
    return max(1, steps // 10)


class LossTail(NamedTuple):
    """Each slot's last ``length`` training losses, oldest first, NaN before its trial's
    first steps. A trial starting in a slot clears it."""

    losses: np.ndarray  # (S, length) float32

    @classmethod
    def empty(cls, slots: int, length: int) -> LossTail:
        return cls(np.full((slots, length), np.nan, np.float32))

    def clear(self, slots) -> None:
        self.losses[slots] = np.nan

    def extend(self, losses: np.ndarray, slots: np.ndarray) -> None:
        """Append ``losses`` ((len(slots), steps), in step order) to those ``slots``."""
        length = self.losses.shape[1]
        joined = np.concatenate([self.losses[slots], np.asarray(losses, np.float32)], axis=1)
        self.losses[slots] = joined[:, -length:]

    def means(self) -> np.ndarray:
        """(S,): the mean of each slot's losses so far (NaN where it has none yet)."""
        counted = ~np.isnan(self.losses)
        total = np.where(counted, self.losses, np.float32(0)).sum(axis=1)
        with np.errstate(invalid="ignore"):
            return total / counted.sum(axis=1).astype(np.float32)


class Paused(NamedTuple):
    """A trial waiting at a rung to be promoted: its member state on the host and what it
    reported there."""

    state: Any
    row: np.ndarray
    steps: int
    started_at: float
    metrics: dict[str, float]


def pack_paused(paused: dict[int, Paused], member_like, dim: int, capacity: int | None = None) -> dict:
    """The paused trials in fixed-shape arrays of ``capacity`` entries (default: the
    power of two that holds them), ids first and -1 pads; ``member_like`` is one member's
    state with a leading axis (its first row gives the shapes of the padding)."""
    ids = sorted(paused)
    capacity = capacity_for(len(ids)) if capacity is None else capacity
    pads = capacity - len(ids)
    member = jax.tree.map(lambda leaf: np.zeros(leaf.shape[1:], leaf.dtype), member_like)
    states = [paused[i].state for i in ids] + [member] * pads
    return {"trial": np.array(ids + [-1] * pads, np.int64),
            "state": jax.tree.map(lambda *leaves: np.stack(leaves), *states),
            "row": np.stack([paused[i].row for i in ids] + [np.zeros(dim, np.float32)] * pads),
            "steps": np.array([paused[i].steps for i in ids] + [0] * pads),
            "started_at": np.array([paused[i].started_at for i in ids] + [0.0] * pads)}


def unpack_paused(buffer: dict, metrics: dict[str, dict]) -> dict[int, Paused]:
    """The paused trials of a ``pack_paused`` buffer; ``metrics`` by trial id (a string)."""
    paused = {}
    for index, trial_id in enumerate(np.asarray(buffer["trial"]).tolist()):
        if trial_id >= 0:
            paused[trial_id] = Paused(
                jax.tree.map(lambda leaf, index=index: np.asarray(leaf[index]), buffer["state"]),
                np.asarray(buffer["row"][index], np.float32), int(buffer["steps"][index]),
                float(buffer["started_at"][index]), metrics[str(trial_id)])
    return paused
