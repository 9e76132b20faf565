import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jhpo import nn as jnn


def _random(shape, seed):
    # numpy, not jax.random: every jax.random call site compiles, which adds
    # seconds to a test file on a small CPU.
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _conv(x, kernel, **options):
    return jax.jit(lambda a, b: jnn.conv2d(a, b, **options))(x, kernel)


@pytest.mark.parametrize("impl", ["im2col", "map"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_implementations_match_lax(impl, strides, padding):
    x = _random((2, 7, 6, 3), 0)
    kernel = _random((3, 3, 3, 5), 1)
    expected = _conv(x, kernel, strides=strides, padding=padding, impl="lax")
    got = _conv(x, kernel, strides=strides, padding=padding, impl=impl)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["im2col", "map"])
def test_population_gradients_match_lax(impl):
    # vmap over a population of kernels, differentiated inside: the case that
    # turns lax convolutions into grouped ones and the "map" path into loops.
    x = _random((3, 2, 6, 6, 2), 2)
    kernels = _random((3, 3, 3, 2, 4), 3)

    def member_grad(conv_impl):
        def loss(kernel, images):
            return jnp.sum(jnp.tanh(jnn.conv2d(images, kernel, strides=(2, 2), impl=conv_impl)))

        return jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(kernels, x)

    for got, expected in zip(member_grad(impl), member_grad("lax")):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_one_by_one_kernel_with_stride():
    x = _random((1, 5, 5, 2), 4)
    kernel = _random((1, 1, 2, 3), 5)
    got = _conv(x, kernel, strides=(2, 2), impl="im2col")
    np.testing.assert_allclose(got, x[:, ::2, ::2, :] @ kernel[0, 0], rtol=1e-5, atol=1e-5)


def test_default_impl_comes_from_backend_table_and_env(monkeypatch):
    monkeypatch.delenv(jnn.CONV_IMPL_ENV, raising=False)
    assert jnn.default_conv_impl("cpu") == jnn.BACKEND_DEFAULT_CONV["cpu"]
    assert jnn.default_conv_impl("unknown-backend") == "im2col"
    monkeypatch.setenv(jnn.CONV_IMPL_ENV, "map")
    assert jnn.default_conv_impl("cpu") == "map"
    monkeypatch.setenv(jnn.CONV_IMPL_ENV, "winograd")
    with pytest.raises(ValueError, match=jnn.CONV_IMPL_ENV):
        jnn.default_conv_impl()


def test_conv_rejects_bad_arguments():
    x = jnp.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="impl"):
        jnn.conv2d(x, jnp.zeros((3, 3, 2, 1)), impl="fft")
    with pytest.raises(ValueError, match="channels"):
        jnn.conv2d(x, jnp.zeros((3, 3, 3, 1)))
    with pytest.raises(ValueError, match="padding"):
        jnn.conv2d(x, jnp.zeros((3, 3, 2, 1)), padding="CIRCULAR")
    with pytest.raises(ValueError, match="strides"):
        jnn.conv2d(x, jnp.zeros((3, 3, 2, 1)), strides=(0, 1))


def test_conv_layer_output_does_not_depend_on_impl():
    x = _random((2, 6, 6, 3), 6)
    variables = {"params": {"kernel": _random((3, 3, 3, 4), 7), "bias": _random((4,), 8)}}
    outputs = {}
    for impl in jnn.CONV_IMPLS:
        layer = jnn.Conv(4, strides=(2, 2), impl=impl)
        shapes = jax.eval_shape(layer.init, jax.random.key(0), x)
        assert jax.tree.map(lambda leaf: leaf.shape, shapes) == jax.tree.map(jnp.shape, variables)
        outputs[impl] = jax.jit(layer.apply)(variables, x)
    np.testing.assert_allclose(outputs["im2col"], outputs["lax"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["map"], outputs["lax"], rtol=1e-4, atol=1e-4)


def test_masked_batch_norm_ignores_padding_examples():
    real = _random((3, 4, 4, 2), 8)
    padding = 1e3 * jnp.ones((2, 4, 4, 2))
    padded = jnp.concatenate([real, padding])
    mask = jnp.arange(5) < 3
    layer = jnn.MaskedBatchNorm()
    variables = layer.init(jax.random.key(0), real, train=False)
    apply = jax.jit(layer.apply, static_argnames=("train", "mutable"))
    alone, alone_stats = apply(variables, real, train=True, mutable=("batch_stats",))
    masked, masked_stats = apply(variables, padded, train=True, mask=mask, mutable=("batch_stats",))
    np.testing.assert_allclose(masked[:3], alone, rtol=1e-4, atol=1e-4)
    for got, expected in zip(jax.tree.leaves(masked_stats), jax.tree.leaves(alone_stats)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Evaluation uses the running averages, not the batch.
    evaluated = apply({**variables, **masked_stats}, padded, train=False)
    assert not np.allclose(evaluated[:3], masked[:3])


def test_global_average_pool():
    x = jnp.arange(2 * 2 * 3 * 1, dtype=jnp.float32).reshape(2, 2, 3, 1)
    np.testing.assert_allclose(jnn.global_average_pool(x), x.mean(axis=(1, 2)))
    assert isinstance(jnn.Conv(1), nn.Module)
