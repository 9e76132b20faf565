"""k-fold cross-validation of a population task, the folds as one more ``vmap`` axis.

``kfold(task, k)`` returns a ``Task`` whose member is k copies of the task's
member, one per fold: fold f trains on every training example outside fold f
and is evaluated on fold f. The copies are stacked along a leading fold axis
of the member's state and run by ``vmap`` inside the member's functions, so a
population of P members trains P * k models in one compiled program, and
``jhpo.tune_population`` runs the new task like any other. Its evaluation
reports, for each metric m of the task, the mean over folds as m and the
standard error of that mean (sample standard deviation / sqrt(k)) as
``m + "_stderr"``: a noisy objective's estimate and its noise.

Randomness: fold f of a member uses ``fold_in(key, f)`` wherever the task's
functions receive a key (initialisation, each step's batch draw and step), so
the folds of one member are independent draws and a member's result depends
only on its configuration and key, as in ``jhpo.population``.

A fold's data must have the shapes of every other fold's, so the folds have
``n // k`` examples each; the ``n % k`` examples left over (after a seeded
shuffle) always train and never validate. The folds' data are built once and
stacked, so the new task holds about k copies of the training set.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jhpo.population import Task

STDERR_SUFFIX = "_stderr"


def fold_indices(num_examples: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation example indices of each fold: (k, n - n // k) and (k, n // k).

    Validation folds are disjoint slices of a seeded permutation; each row is sorted.
    """
    _check_k(k, num_examples)
    order = np.random.default_rng(seed).permutation(num_examples)
    size = num_examples // k
    val = np.sort(order[: k * size].reshape(k, size), axis=1)
    train = np.stack([np.setdiff1d(order, fold) for fold in val])  # setdiff1d sorts
    return train, val


def _check_k(k, num_examples: int) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 2 <= k <= num_examples:
        raise ValueError(f"k={k!r} must be an integer between 2 and the number of training examples ({num_examples})")


def _default_split(data) -> tuple[Callable[[Any, np.ndarray, np.ndarray], Any], int]:
    if not (hasattr(data, "fold") and hasattr(data, "num_train")):
        raise TypeError(
            f"the task's data ({type(data).__name__}) does not know how to split itself into folds "
            "(no fold() and num_train); pass split= and num_examples="
        )
    return type(data).fold, data.num_train


def kfold(
    task: Task,
    k: int,
    *,
    seed: int = 0,
    split: Callable[[Any, np.ndarray, np.ndarray], Any] | None = None,
    num_examples: int | None = None,
) -> Task:
    """The k-fold cross-validation form of ``task`` (see the module docstring).

    seed: fixes the assignment of examples to folds.

    split: ``split(data, train_index, val_index)`` -> the task's data for one
        fold, training on the training examples ``train_index`` and validating
        on ``val_index``; with it, ``num_examples`` is the number of training
        examples. By default the data splits itself with ``data.fold`` and
        counts with ``data.num_train`` (``jhpo.tasks.ImageData`` does).

    The task's ``draw_batch`` and ``evaluate`` must read example counts from
    the data they are given, not from values captured when the task was built:
    a fold has fewer training and validation examples than the whole.
    """
    if split is None:
        if num_examples is not None:
            raise ValueError("num_examples= goes with split=; without split the data counts its examples")
        split, num_examples = _default_split(task.data)
    elif num_examples is None:
        raise ValueError("split= needs num_examples=, the number of training examples it splits")
    train_index, val_index = fold_indices(num_examples, k, seed)
    folds = [split(task.data, train, val) for train, val in zip(train_index, val_index)]
    return Task(
        init=_per_fold_init(task, k),
        train_step=_per_fold_train_step(task, k),
        evaluate=_fold_summary_evaluate(task, k),
        draw_batch=_per_fold_draw_batch(task, k),
        data=jax.tree.map(lambda *leaves: jnp.stack(leaves), *folds),
        defaults=task.defaults,
        metric=task.metric,
        name=f"{task.name}_{k}fold",
    )


def _per_fold_init(task: Task, k: int):
    def init(key, hp):
        return jax.vmap(lambda fold: task.init(jax.random.fold_in(key, fold), hp))(jnp.arange(k))

    return init


def _per_fold_draw_batch(task: Task, k: int):
    def draw_batch(data, key, size):
        batches = jax.vmap(lambda fold_data, fold: task.draw_batch(fold_data, jax.random.fold_in(key, fold), size))(
            data, jnp.arange(k)
        )
        # A Task's batch leads with the example axis; the fold axis comes second.
        return jax.tree.map(lambda leaf: jnp.moveaxis(leaf, 0, 1), batches)

    return draw_batch


def _per_fold_train_step(task: Task, k: int):
    def train_step(state, hp, batch, key):
        batch = dict(batch)
        mask = batch.pop("mask")  # the member's batch size: the same in every fold
        per_fold = jax.tree.map(lambda leaf: jnp.moveaxis(leaf, 1, 0), batch)

        def one(fold_state, fold_batch, fold):
            return task.train_step(fold_state, hp, {**fold_batch, "mask": mask}, jax.random.fold_in(key, fold))

        states, metrics = jax.vmap(one)(state, per_fold, jnp.arange(k))
        # The mean loss turns non-finite when any fold does, so a member fails as a whole.
        return states, jax.tree.map(jnp.mean, metrics)

    return train_step


def _fold_summary_evaluate(task: Task, k: int):
    def evaluate(state, hp, data):
        per_fold = jax.vmap(lambda fold_state, fold_data: task.evaluate(fold_state, hp, fold_data))(state, data)
        return {key: value for name, values in per_fold.items() for key, value in _fold_summary(name, values).items()}

    return evaluate


def _fold_summary(name: str, values: jax.Array) -> dict[str, jax.Array]:
    """A metric's per-fold values (k,) -> its mean and the standard error of the mean."""
    values = values.astype(jnp.float32)
    stderr = jnp.std(values, ddof=1) / math.sqrt(values.shape[0])
    return {name: jnp.mean(values), name + STDERR_SUFFIX: stderr}
