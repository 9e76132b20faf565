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
files can also write a matching digest (refusing that would need a secret key). It is
taken row by row (along each array's first axis, the population's members), so it does
not depend on how the arrays are laid out over devices and processes.
Checkpoints written before fingerprints and row digests existed count as unreadable.

In a run over several processes (``jax.distributed``) every process constructs the same
``Checkpoints`` and calls ``save`` and ``restore`` together: arrays that span several
processes' devices are written by orbax shard by shard, each process writing its own, and
committed once by process 0, which also writes the record; host values (numpy arrays,
equal on every process) are written once. ``directory`` must then be on a filesystem
every host mounts (checked when constructed), and every process takes the same decision
about every checkpoint (a damage seen by one process counts for all).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jhpo import jsonfile, multihost

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


def _for_orbax(leaf):
    # arrays spanning several processes stay global (each process writes its shards);
    # everything else is a host value, written once
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return leaf
    return np.asarray(leaf)


def _row_digests(leaf) -> dict[str, str]:
    """SHA-256 of each row (slice along the first axis; a scalar is one row) of ``leaf``
    that this process holds: every row of a host value; of a global array, the rows of
    the shards this process writes. Keyed by row and, where a shard is cut along later
    axes, by that cut."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        pieces = [(shard.index, shard.data) for shard in leaf.addressable_shards if shard.replica_id == 0]
    else:
        pieces = [((), leaf)]
    digests = {}
    for index, data in pieces:
        rows = np.atleast_1d(np.ascontiguousarray(np.asarray(data)))
        first = index[0].start or 0 if index else 0
        cut = [(part.start, part.stop) for part in index[1:]]
        for offset, row in enumerate(rows):
            digests[f"{first + offset}|{cut}"] = hashlib.sha256(row.tobytes()).hexdigest()
    return digests


def _digest(state, record: dict, fingerprint: str | None) -> str:
    """SHA-256 over every array (its place in the tree, dtype, shape and the digest of
    each row), the record and the fingerprint. With several processes each hashes the
    rows it holds and every process combines them all (a collective)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    rows: dict[str, dict[str, str]] = {}
    for part in multihost.allgather_json([_row_digests(leaf) for _, leaf in leaves]):
        for index, found in enumerate(part):
            rows.setdefault(str(index), {}).update(found)
    digest = hashlib.sha256()
    digest.update(json.dumps([record, fingerprint], sort_keys=True).encode())
    for index, (path, leaf) in enumerate(leaves):
        digest.update(f"{jax.tree_util.keystr(path)}|{np.dtype(leaf.dtype).str}|{tuple(leaf.shape)}".encode())
        held = rows.get(str(index), {})
        for key in sorted(held, key=lambda k: (int(k.split("|")[0]), k)):
            digest.update(f"{key}:{held[key]}".encode())
    return digest.hexdigest()


def _short(fingerprint: str | None) -> str:
    return "none" if fingerprint is None else f"{fingerprint[:12]}..."


def _reason(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


class _Unreadable(Exception):
    """One checkpoint could not be read intact; the message says why."""


def _agreed(read: Callable[[], Any]) -> Any:
    """``read()``'s value, or ``_Unreadable`` on every process if it failed on any (so
    all processes skip the same checkpoints and meet in the same collectives)."""
    try:
        value, failure = read(), None
    except Exception as error:  # noqa: BLE001 - any failure to read is damage
        value, failure = None, _reason(error)
    failures = multihost.allgather_json(failure)
    for index, found in enumerate(failures):
        if found is not None:
            raise _Unreadable(found if len(failures) == 1 else f"on process {index}, {found}")
    return value


def _restore_target(leaf):
    """What orbax restores a template leaf as: a global array keeps its layout over the
    devices of every process; anything else comes back as a host value."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    return jax.ShapeDtypeStruct(np.shape(leaf), np.asarray(leaf).dtype)


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
        multihost.check_shared_directory(self.directory, "the checkpoint directory")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, record: dict) -> None:
        """Write ``state`` (a pytree of arrays) and ``record`` (JSON) as checkpoint ``step``."""
        state = jax.tree.map(_for_orbax, _keys_to_data(state))
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
        Raises ValueError for another run's checkpoint, ``_Unreadable`` for a damaged one.
        Every process reads its part; a failure on any counts for all."""
        head = _agreed(lambda: self._manager.restore(step, args=ocp.args.Composite(
            record=ocp.args.JsonRestore(), integrity=ocp.args.JsonRestore())))
        try:
            record, integrity = dict(head["record"]), dict(head["integrity"])
            stored_fingerprint, stored_digest = integrity["fingerprint"], integrity["digest"]
        except Exception as error:  # noqa: BLE001 - a record that is not ours is damage
            raise _Unreadable(_reason(error)) from None
        if stored_fingerprint != self.fingerprint:
            raise ValueError(
                f"checkpoint {step} in {self.directory} belongs to another run: its fingerprint "
                f"{_short(stored_fingerprint)} is not this run's {_short(self.fingerprint)} "
                "(settings, space or seed differ); move it away or use another run_dir")
        if callable(template):  # a template whose shapes the record tells (buffers that grow)
            template = template(record)
        abstract = jax.tree.map(_restore_target, _keys_to_data(template))
        state = _agreed(lambda: self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))["state"])
        if _digest(state, record, stored_fingerprint) != stored_digest:
            raise _Unreadable("its arrays or record do not match the digest saved with them "
                              "(damaged or edited)")
        return _data_to_keys(state, template), record

    def _set_aside(self, skipped: dict[int, str], restored: int) -> None:
        """Move the unreadable checkpoints out of the steps orbax sees (a run replaying
        from ``restored`` saves those steps again, and orbax skips a step that exists),
        keeping them for inspection, and say so."""
        moved = multihost.on_writer(lambda: [self._move_aside(step) for step in skipped])
        multihost.barrier(f"jhpo-checkpoints-set-aside-{restored}")
        self._manager.reload()
        warnings.warn(
            f"restored checkpoint {restored} in {self.directory}: the newer "
            + "; ".join(f"checkpoint {s} is unreadable ({why})" for s, why in skipped.items())
            + f"; moved aside to {', '.join(moved)}", stacklevel=3)

    def _move_aside(self, step: int) -> str:
        target = self.directory / f"{QUARANTINE_PREFIX}{step}"
        copies = 0
        while target.exists():
            copies += 1
            target = self.directory / f"{QUARANTINE_PREFIX}{step}-{copies}"
        (self.directory / str(step)).rename(target)
        return target.name

    def close(self) -> None:
        self._manager.close()
