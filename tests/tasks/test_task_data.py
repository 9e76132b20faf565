import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jhpo.tasks import data as image_data


@pytest.fixture(scope="module")
def digits():
    return image_data.load_digits(validation_fraction=0.2, seed=0)


def test_digits_split_and_statistics(digits):
    assert digits.train_images.shape[1:] == (8, 8, 1) and digits.train_images.dtype == jnp.uint8
    assert len(digits.train_images) + len(digits.val_images) == 1797
    assert len(digits.val_images) == 359
    assert digits.num_classes == 10 and not digits.augment
    # Statistics describe the training part only.
    np.testing.assert_allclose(digits.mean, np.asarray(digits.train_images, np.float64).mean(), rtol=1e-5)
    normalised = image_data.normalise(digits, digits.train_images)
    assert abs(float(normalised.mean())) < 1e-4 and abs(float(normalised.std()) - 1) < 1e-3


def test_split_is_seeded_and_disjoint():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1)
    labels = np.arange(20) % 10
    first = image_data.from_arrays(images, labels, num_val=5, num_classes=10, seed=3)
    again = image_data.from_arrays(images, labels, num_val=5, num_classes=10, seed=3)
    np.testing.assert_array_equal(first.val_images, again.val_images)
    together = np.concatenate([np.asarray(first.train_images).ravel(), np.asarray(first.val_images).ravel()])
    assert sorted(together.tolist()) == list(range(20))
    with pytest.raises(ValueError, match="validation size"):
        image_data.from_arrays(images, labels, num_val=20, num_classes=10)
    with pytest.raises(ValueError, match="validation_fraction"):
        image_data.load_digits(validation_fraction=1.5)


def test_draw_batch_prefix_does_not_depend_on_size(digits):
    draw = jax.jit(image_data.draw_batch, static_argnums=2)
    small = draw(digits, jax.random.key(1), 5)
    large = draw(digits, jax.random.key(1), 12)
    assert large["image"].shape == (12, 8, 8, 1) and large["image"].dtype == jnp.float32
    np.testing.assert_array_equal(small["image"], large["image"][:5])
    np.testing.assert_array_equal(small["label"], large["label"][:5])
    other = draw(digits, jax.random.key(2), 5)
    assert not np.array_equal(other["label"], small["label"]) or not np.array_equal(other["image"], small["image"])


def test_crop_and_flip_is_a_shifted_window():
    image = jnp.arange(4 * 5 * 2, dtype=jnp.float32).reshape(4, 5, 2) + 1
    pad = 2
    padded = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)))
    for top, left, flip in [(0, 0, 0), (4, 1, 1), (2, 3, 0), (7, 9, 3)]:
        out = np.asarray(image_data.crop_and_flip(jnp.array([top, left, flip], jnp.uint32), image, pad=pad))
        row, col = top % (2 * pad + 1), left % (2 * pad + 1)
        window = padded[row : row + 4, col : col + 5]
        np.testing.assert_array_equal(out, window[:, ::-1] if flip % 2 else window)


def test_cifar10_through_mocked_data_source():
    with tfds.testing.mock_data(num_examples=40):
        cifar = image_data.load_cifar10(validation_size=8)
    assert cifar.train_images.shape == (32, 32, 32, 3) and cifar.val_images.shape == (8, 32, 32, 3)
    assert cifar.train_images.dtype == jnp.uint8 and cifar.augment and cifar.num_classes == 10
    assert cifar.mean.shape == (3,) and cifar.std.shape == (3,)
    batch = jax.jit(image_data.draw_batch, static_argnums=2)(cifar, jax.random.key(0), 6)
    assert batch["image"].shape == (6, 32, 32, 3) and bool(jnp.isfinite(batch["image"]).all())
    assert set(np.asarray(batch["label"]).tolist()) <= set(range(10))


def test_cifar10_not_prepared_says_how_to_prepare(tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        image_data.load_cifar10(data_dir=str(tmp_path))
