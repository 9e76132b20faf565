"""Image-classification data for population training.

Datasets live on the device as a few arrays (``ImageData``) and batches are
drawn inside the compiled training program, so no Python runs per step. Images
stay in their stored dtype (uint8 for CIFAR-10) until a batch is drawn; the
per-channel normalisation and the augmentation happen then, in JAX, with the
member's own key.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

CIFAR10_PAD = 4


class ImageData(NamedTuple):
    """A train / validation split of an image-classification dataset.

    ``train_images`` and ``val_images`` are (N, H, W, C) in their stored dtype;
    ``mean`` and ``std`` are per-channel statistics of the training images, in
    the same units; ``augment`` turns on random crop and horizontal flip.
    """

    train_images: Array
    train_labels: Array
    val_images: Array
    val_labels: Array
    mean: Array
    std: Array
    num_classes: int
    augment: bool

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    @property
    def num_train(self) -> int:
        return int(self.train_images.shape[0])

    def fold(self, train_index, val_index) -> ImageData:
        """One fold of cross-validation: train on ``train_images[train_index]`` and
        validate on ``train_images[val_index]`` (the validation split is not used).

        The normalisation statistics come from the fold's training part, as
        ``from_arrays`` takes them from the training split.
        """
        return self._replace(**_split_arrays(np.asarray(self.train_images),
                                             np.asarray(self.train_labels), train_index, val_index))


# ``num_classes`` and ``augment`` are static: they shape the program, so they
# travel as pytree metadata rather than as traced leaves.
jax.tree_util.register_pytree_node(
    ImageData,
    lambda d: (tuple(d[:6]), (d.num_classes, d.augment)),
    lambda aux, leaves: ImageData(*leaves, *aux),
)


def _split_indices(num_examples: int, num_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < num_val < num_examples:
        raise ValueError(f"validation size {num_val} must be between 1 and {num_examples - 1}")
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def _split_arrays(images: np.ndarray, labels: np.ndarray, train, val) -> dict:
    """``ImageData``'s arrays for a split: the ``train`` and ``val`` examples, and the
    per-channel mean and standard deviation of the training part (in float64)."""
    train_float = images[train].astype(np.float64)
    return {
        "train_images": jnp.asarray(images[train]),
        "train_labels": jnp.asarray(labels[train]),
        "val_images": jnp.asarray(images[val]),
        "val_labels": jnp.asarray(labels[val]),
        "mean": jnp.asarray(train_float.mean(axis=(0, 1, 2)), jnp.float32),
        "std": jnp.asarray(np.maximum(train_float.std(axis=(0, 1, 2)), 1e-6), jnp.float32),
    }


def from_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_val: int,
    num_classes: int,
    augment: bool = False,
    seed: int = 0,
) -> ImageData:
    """Carve a validation set from ``images`` (N, H, W, C) and compute statistics.

    The split is a seeded permutation, so it is the same on every machine. The
    normalisation statistics come from the training part only.
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    train, val = _split_indices(len(images), num_val, seed)
    return ImageData(
        **_split_arrays(images, labels, train, val),
        num_classes=num_classes,
        augment=augment,
    )


def load_digits(*, validation_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped with the package)."""
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction={validation_fraction} must lie strictly between 0 and 1")
    digits = sklearn_digits()
    images = digits.images.astype(np.uint8)[..., None]  # pixel values are integers 0..16
    num_val = int(round(validation_fraction * len(images)))
    return from_arrays(images, digits.target, num_val=num_val, num_classes=10, augment=False, seed=seed)


def _read_source(source) -> tuple[np.ndarray, np.ndarray]:
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
    labels = np.asarray([int(e["label"]) for e in examples], np.int32)
    return images, labels


def load_cifar10(*, validation_size: int = 5000, data_dir: str | None = None, seed: int = 0) -> ImageData:
    """CIFAR-10 read with ``tfds.data_source``; validation carved from the train split.

    Nothing is downloaded here: the dataset must have been prepared once with
    ``tfds.data_source("cifar10", download=True)`` (see the README).
    """
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source("cifar10", split="train", data_dir=data_dir, download=False)
    except Exception as error:  # tfds raises several types for "not prepared"
        raise RuntimeError(
            "CIFAR-10 is not prepared for tfds.data_source; run once, with network access: "
            "python -c \"import tensorflow_datasets as tfds; tfds.data_source('cifar10', download=True)\""
        ) from error
    images, labels = _read_source(source)
    return from_arrays(images, labels, num_val=validation_size, num_classes=10, augment=True, seed=seed)


def normalise(data: ImageData, images: Array) -> Array:
    """Stored images to float32 with zero mean and unit variance per channel."""
    return (images.astype(jnp.float32) - data.mean) / data.std


def crop_and_flip(bits: Array, image: Array, pad: int = CIFAR10_PAD) -> Array:
    """Random crop of a normalised ``image`` (H, W, C) padded by ``pad``, then a coin-flip mirror.

    ``bits`` are three random uint32 words (top, left, flip). The padding is
    zero in normalised units, that is the training set's mean colour.
    """
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    top = (bits[0] % (2 * pad + 1)).astype(jnp.int32)
    left = (bits[1] % (2 * pad + 1)).astype(jnp.int32)
    cropped = jax.lax.dynamic_slice(padded, (top, left, jnp.int32(0)), image.shape)
    return jnp.where(bits[2] % 2 == 1, cropped[:, ::-1, :], cropped)


def draw_batch(data: ImageData, key: Array, size: int) -> dict[str, Array]:
    """``size`` training examples drawn uniformly with replacement, normalised.

    Example i depends only on ``fold_in(key, i)``, so the first n examples do
    not depend on ``size``: a member padded to a larger batch sees the same
    data as when trained alone. Each example takes one draw of four random
    words (index, crop top, crop left, flip) because every separate random call
    adds compile time on CPU.
    """
    num_train = data.train_images.shape[0]

    def one(index_in_batch):
        bits = jax.random.bits(jax.random.fold_in(key, index_in_batch), (4,), jnp.uint32)
        # Modulo bias is below num_train / 2**32, negligible for any image dataset.
        index = (bits[0] % num_train).astype(jnp.int32)
        image = normalise(data, data.train_images[index])
        if data.augment:
            image = crop_and_flip(bits[1:], image)
        return image, data.train_labels[index]

    images, labels = jax.vmap(one)(jnp.arange(size))
    return {"image": images, "label": labels}
