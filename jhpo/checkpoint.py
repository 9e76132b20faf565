"""Checkpoints of a population's state (parameters, optimizer state, hyperparameters,
keys, scheduler state) with orbax, so that a killed run resumes from its last boundary.

A checkpoint is a pytree of arrays plus a small JSON record (which trials the members
are, how far they got). Writes are synchronous and atomic (orbax writes to a temporary
directory and renames it), so a kill leaves the previous checkpoint intact.

Each checkpoint also stores the run's fingerprint (a string the caller derives from
the run's settings, space and seed; see ``fingerprint_of``) and a SHA-256 digest of its
arrays, record and fingerprint. ``restore`` then

- refuses, with a ValueError, a checkpoint whose fingerprint is not this run's: one
  copied from another run would otherwise resume this run from a foreign state;
- treats a checkpoint it cannot read, or whose content does not match its digest
  (flipped or truncated bytes, an edited record or array), as unreadable: it warns,
  moves it aside to ``unreadable-<step>`` and restores the newest intact one instead,
  raising ``CorruptCheckpointError`` only when none is intact.

The digest detects damage and careless edits, not a forger: anyone who can write the
files can also write a matching digest (refusing that would need a secret key).
Checkpoints written before fingerprints and digests existed count as unreadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jhpo import jsonfile

QUARANTINE_PREFIX = "unreadable-"


class CorruptCheckpointError(RuntimeError):
    """No checkpoint (or not the one asked for) could be read intact."""


def fingerprint_of(settings: Mapping[str, Any]) -> str:
    """A run's fingerprint: the SHA-256 of ``settings`` (JSON: the run's settings, space
    and seed) written canonically, so equal settings give equal fingerprints."""
    text = jsonfile.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


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


def _digest(state, record: dict, fingerprint: str | None) -> str:
    """SHA-256 over every array (its place in the tree, dtype, shape and bytes), the
    record and the fingerprint."""
    digest = hashlib.sha256()
    digest.update(json.dumps([record, fingerprint], sort_keys=True).encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _short(fingerprint: str | None) -> str:
    return "none" if fingerprint is None else f"{fingerprint[:12]}..."


def _reason(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


class _Unreadable(Exception):
    """One checkpoint could not be read intact; the message says why."""


class Checkpoints:
    """Numbered checkpoints in ``directory`` of the run with ``fingerprint``; the newest
    ``max_to_keep`` are kept.

    ``fingerprint`` should be given (``fingerprint_of`` the run's settings, space and
    seed); it defaults to None only so that callers written before it keep working, and
    then checkpoints are told apart from another run's only if that run gave one.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2,
                 fingerprint: str | None = None):
        self.directory = Path(directory).absolute()
        self.fingerprint = fingerprint
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, record: dict) -> None:
        """Write ``state`` (a pytree of arrays) and ``record`` (JSON) as checkpoint ``step``."""
        state = jax.tree.map(np.asarray, _keys_to_data(state))
        record = json.loads(json.dumps(record))  # as it will read back
        integrity = {"fingerprint": self.fingerprint,
                     "digest": _digest(state, record, self.fingerprint)}
        saved = self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                    record=ocp.args.JsonSave(record),
                                    integrity=ocp.args.JsonSave(integrity)),
        )
        self._manager.wait_until_finished()
        if not saved:
            raise RuntimeError(f"checkpoint {step} was not written to {self.directory}: "
                               "a checkpoint of that step (or a later one) exists")

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state (shaped like ``template``) and record of checkpoint ``step``, or by
        default of the newest intact checkpoint (warning about each newer one skipped).
        ``template`` may be a function of the checkpoint's record that returns the
        template, for states whose shapes the record says."""
        if step is not None:
            try:
                return self._read(step, template)
            except _Unreadable as unreadable:
                raise CorruptCheckpointError(
                    f"checkpoint {step} in {self.directory} is unreadable: {unreadable}") from None
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        skipped = {}
        for candidate in steps:
            try:
                restored = self._read(candidate, template)
            except _Unreadable as unreadable:
                skipped[candidate] = str(unreadable)
                continue
            if skipped:
                self._set_aside(skipped, candidate)
            return restored
        raise CorruptCheckpointError(f"no intact checkpoint in {self.directory}: " + "; ".join(
            f"checkpoint {s}: {why}" for s, why in skipped.items()))

    def _read(self, step: int, template: Any) -> tuple[Any, dict]:
        """Checkpoint ``step`` checked against this run's fingerprint and its digest.
        Raises ValueError for another run's checkpoint, ``_Unreadable`` for a damaged one."""
        try:
            head = self._manager.restore(step, args=ocp.args.Composite(
                record=ocp.args.JsonRestore(), integrity=ocp.args.JsonRestore()))
            record, integrity = dict(head["record"]), dict(head["integrity"])
            stored_fingerprint, stored_digest = integrity["fingerprint"], integrity["digest"]
        except Exception as error:  # noqa: BLE001 - any failure to read is damage
            raise _Unreadable(_reason(error)) from None
        if stored_fingerprint != self.fingerprint:
            raise ValueError(
                f"checkpoint {step} in {self.directory} belongs to another run: its fingerprint "
                f"{_short(stored_fingerprint)} is not this run's {_short(self.fingerprint)} "
                "(settings, space or seed differ); move it away or use another run_dir")
        if callable(template):  # a template whose shapes the record tells (buffers that grow)
            template = template(record)
        abstract = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), np.asarray(leaf).dtype),
            _keys_to_data(template),
        )
        try:
            state = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as error:  # noqa: BLE001
            raise _Unreadable(_reason(error)) from None
        if _digest(state, record, stored_fingerprint) != stored_digest:
            raise _Unreadable("its arrays or record do not match the digest saved with them "
                              "(damaged or edited)")
        return _data_to_keys(state, template), record

    def _set_aside(self, skipped: dict[int, str], restored: int) -> None:
        """Move the unreadable checkpoints out of the steps orbax sees (a run replaying
        from ``restored`` saves those steps again, and orbax skips a step that exists),
        keeping them for inspection, and say so."""
        moved = []
        for step in skipped:
            target = self.directory / f"{QUARANTINE_PREFIX}{step}"
            copies = 0
            while target.exists():
                copies += 1
                target = self.directory / f"{QUARANTINE_PREFIX}{step}-{copies}"
            (self.directory / str(step)).rename(target)
            moved.append(target.name)
        self._manager.reload()
        warnings.warn(
            f"restored checkpoint {restored} in {self.directory}: the newer "
            + "; ".join(f"checkpoint {s} is unreadable ({why})" for s, why in skipped.items())
            + f"; moved aside to {', '.join(moved)}", stacklevel=3)

    def close(self) -> None:
        self._manager.close()
