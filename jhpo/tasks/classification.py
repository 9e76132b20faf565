"""Image classification as a population ``Task``: SGD with momentum and weight decay.

The chapter's four hyperparameters map onto training as follows:
learning_rate and momentum parameterise SGD, weight_decay adds
``weight_decay * params`` to the gradient (coupled L2, as in classic ResNet
training), and batch_size is the number of real examples in each step's batch.
All four are traced arrays, so members with different values share one program.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jhpo.population import Task, masked_mean
from jhpo.tasks.data import ImageData, draw_batch, normalise

Array = jax.Array

CHAPTER_DEFAULTS = {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128}


def sgd(hp: Mapping[str, Array]) -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay, from (possibly traced) hyperparameters.

    Built afresh in every step from the step's hyperparameters, so a scheduler
    that changes a member's values between steps (PBT) needs no extra plumbing;
    the optimizer state's structure does not depend on the values.
    """
    return optax.chain(
        optax.add_decayed_weights(hp["weight_decay"]),
        optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
    )


def _split_variables(variables) -> tuple[dict, dict]:
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables


def _chunked_validation(data: ImageData, eval_batch_size: int) -> tuple[Array, Array, Array]:
    """Validation images, labels and a real-example mask, padded to whole chunks."""
    count = data.val_images.shape[0]
    size = min(eval_batch_size, count)
    chunks = -(-count // size)
    padding = chunks * size - count
    images = jnp.pad(data.val_images, ((0, padding),) + ((0, 0),) * (data.val_images.ndim - 1))
    labels = jnp.pad(data.val_labels, (0, padding))
    mask = jnp.arange(chunks * size) < count
    shape = (chunks, size)
    return images.reshape(shape + images.shape[1:]), labels.reshape(shape), mask.reshape(shape)


def image_classification(
    model: nn.Module,
    data: ImageData,
    *,
    defaults: Mapping[str, float | int] = CHAPTER_DEFAULTS,
    eval_batch_size: int = 500,
    name: str = "image_classification",
    model_hparams: Sequence[str] = (),
    count_params: Callable[[Mapping[str, Array]], Array] | None = None,
) -> Task:
    """A ``Task`` training ``model`` on ``data`` with masked cross-entropy and ``sgd``.

    evaluate reports ``val_error`` (the tuned metric), ``val_loss`` and
    ``val_accuracy`` on the whole validation split, ``eval_batch_size``
    images at a time per member, and ``num_params``, the size of the member's
    network: ``count_params(hp)`` when given (for architectures that vary with
    the hyperparameters), else the number of entries in the parameters.
    ``model_hparams`` names hyperparameters passed to ``model.apply`` as
    keyword arguments (such as the CNN's ``width_multiplier``).
    """
    if eval_batch_size < 1:
        raise ValueError(f"eval_batch_size={eval_batch_size} must be at least 1")
    missing = sorted(({"learning_rate", "momentum", "weight_decay", "batch_size"} | set(model_hparams)) - set(defaults))
    if missing:
        raise ValueError(f"defaults lacks {missing}: every hyperparameter the optimizer reads needs a default")

    def architecture(hp):
        return {name: hp[name] for name in model_hparams}

    def init(key, hp):
        sample = jnp.zeros((1, *data.image_shape), jnp.float32)
        params, model_state = _split_variables(model.init(key, sample, train=False))
        return {"params": params, "model_state": model_state, "opt_state": sgd(hp).init(params)}

    def train_step(state, hp, batch, key):
        del key  # the models have no dropout; augmentation happened in draw_batch
        mutable = list(state["model_state"])

        def loss_fn(params):
            variables = {"params": params, **state["model_state"]}
            logits, model_state = model.apply(
                variables, batch["image"], train=True, mask=batch["mask"], mutable=mutable, **architecture(hp)
            )
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
            return masked_mean(losses, batch["mask"]), (model_state, logits)

        (loss, (model_state, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = sgd(hp).update(grads, state["opt_state"], state["params"])
        accuracy = masked_mean((jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32), batch["mask"])
        new_state = {"params": optax.apply_updates(state["params"], updates), "model_state": dict(model_state), "opt_state": opt_state}
        return new_state, {"loss": loss, "accuracy": accuracy}

    def evaluate(state, hp, data):
        images, labels, mask = _chunked_validation(data, eval_batch_size)
        variables = {"params": state["params"], **state["model_state"]}

        def chunk_sums(chunk):
            chunk_images, chunk_labels, chunk_mask = chunk
            logits = model.apply(variables, normalise(data, chunk_images), train=False, **architecture(hp))
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, chunk_labels)
            correct = jnp.argmax(logits, -1) == chunk_labels
            return jnp.sum(jnp.where(chunk_mask, losses, 0.0)), jnp.sum(correct & chunk_mask)

        loss_sums, correct_sums = jax.lax.map(chunk_sums, (images, labels, mask))
        count = data.val_images.shape[0]
        accuracy = jnp.sum(correct_sums) / count
        if count_params is None:
            num_params = sum(leaf.size for leaf in jax.tree.leaves(state["params"]))
        else:
            num_params = count_params(hp)
        return {
            "val_error": 1.0 - accuracy,
            "val_loss": jnp.sum(loss_sums) / count,
            "val_accuracy": accuracy,
            "num_params": jnp.asarray(num_params, jnp.int32),
        }

    return Task(
        init=init,
        train_step=train_step,
        evaluate=evaluate,
        draw_batch=draw_batch,
        data=data,
        defaults=dict(defaults),
        metric="val_error",
        name=name,
    )
