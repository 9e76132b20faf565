"""Checkpoints of a population's state (parameters, optimizer state, hyperparameters,
keys, scheduler state) with orbax, so that a killed run resumes from its last boundary.

A checkpoint is a pytree of arrays plus a small JSON record (which trials the members
are, how far they got). Writes are synchronous and atomic (orbax writes to a temporary
directory and renames it), so a kill leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree):
    # orbax stores plain arrays; typed PRNG keys travel as their raw uint32 data
    return jax.tree.map(lambda leaf: jax.random.key_data(leaf) if _is_key(leaf) else leaf, tree)


def _data_to_keys(tree, template):
    return jax.tree.map(
        lambda leaf, like: jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(like))
        if _is_key(like) else leaf,
        tree, template,
    )


class Checkpoints:
    """Numbered checkpoints in ``directory``; the newest ``max_to_keep`` are kept."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, record: dict) -> None:
        """Write ``state`` (a pytree of arrays) and ``record`` (JSON) as checkpoint ``step``."""
        state = jax.tree.map(np.asarray, _keys_to_data(state))
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                    record=ocp.args.JsonSave(record)),
        )
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state (shaped like ``template``) and record of checkpoint ``step``
        (default: the newest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), np.asarray(leaf).dtype),
            _keys_to_data(template),
        )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                    record=ocp.args.JsonRestore()),
        )
        return _data_to_keys(restored["state"], template), dict(restored["record"])

    def close(self) -> None:
        self._manager.close()
