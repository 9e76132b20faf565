"""Layers that stay fast when a whole population of models is vmapped.

A model in jhpo is written for one member and ``jax.vmap``-ed over the
population axis. Most layers vectorise for free (a dense layer becomes a
batched matmul), but a convolution does not: vmapping ``lax.conv_general_dilated``
over its kernel makes XLA emit a grouped convolution, which is slow on CPU and
whose backward pass is slow on CUDA (jax issue 13800). So the convolution here
has several implementations, selectable by name:

``"im2col"``
    Gather the ``kh * kw`` shifted windows into one patch matrix and multiply it
    by the flattened kernel. Under vmap this is a batched matmul.
``"lax"``
    ``lax.conv_general_dilated``; under vmap, a grouped convolution.
``"map"``
    ``lax.conv_general_dilated`` run member after member: under vmap the
    forward and backward convolutions become loops over the population.

``default_conv_impl()`` picks one per backend from the table below, which
records measurements (``benchmarks/population_throughput.py --conv`` reruns
them); the environment variable ``JHPO_CONV_IMPL`` or the ``impl`` argument
overrides it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

CONV_IMPLS = ("im2col", "lax", "map")

# Fastest implementation per backend for training a population of CNNs.
# cpu: measured with benchmarks/population_throughput.py (conv section: digits
#   CNN, 16 members vmapped, batch 64) on 2 shared x86 cores, jaxlib 0.10.2, in
#   member-steps/s over three runs: im2col 140, 230 and 433; lax 55, 38 and 39;
#   map 47, 50 and 53.
# gpu, tpu: not measured in this repository yet. im2col is chosen because it
#   turns the population into batched matmuls, which both run well, and avoids
#   the grouped-convolution backward pass that is slow on CUDA (jax issue 13800).
BACKEND_DEFAULT_CONV = {"cpu": "im2col", "gpu": "im2col", "tpu": "im2col"}

CONV_IMPL_ENV = "JHPO_CONV_IMPL"

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _check_impl(impl: str, source: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"{source}={impl!r} is not a convolution implementation; expected one of {CONV_IMPLS}")
    return impl


def default_conv_impl(backend: str | None = None) -> str:
    """The convolution implementation used when a layer does not name one.

    ``JHPO_CONV_IMPL`` wins; otherwise the measured table entry for ``backend``
    (the default JAX backend when None); backends missing from the table get
    ``"im2col"``.
    """
    override = os.environ.get(CONV_IMPL_ENV)
    if override:
        return _check_impl(override, CONV_IMPL_ENV)
    backend = backend or jax.default_backend()
    return BACKEND_DEFAULT_CONV.get(backend, "im2col")


def _same_or_valid_pads(spatial: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: str):
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding={padding!r} is not supported; expected 'SAME' or 'VALID'")
    return lax.padtype_to_pads(tuple(spatial), tuple(window), tuple(strides), padding)


def _lax_conv(x: Array, kernel: Array, strides: tuple[int, int], padding: str) -> Array:
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMENSION_NUMBERS)


def _im2col_conv(x: Array, kernel: Array, strides: tuple[int, int], padding: str) -> Array:
    kh, kw, cin, cout = kernel.shape
    sh, sw = strides
    pads = _same_or_valid_pads(x.shape[1:3], (kh, kw), strides, padding)
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_h = (x.shape[1] - kh) // sh + 1
    out_w = (x.shape[2] - kw) // sw + 1
    # Window (i, j) of every output pixel is one strided slice of the padded
    # input; concatenating them channel-last orders the patch as (i, j, c),
    # which is exactly the row order of kernel.reshape(kh * kw * cin, cout).
    windows = [
        x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = windows[0] if len(windows) == 1 else jnp.concatenate(windows, axis=-1)
    return patches @ kernel.reshape(kh * kw * cin, cout)


def _sequential_under_vmap(strides: tuple[int, int], padding: str) -> Callable[[Array, Array], Array]:
    """A lax convolution whose vmap is a loop over members, forward and backward.

    ``jax.custom_batching.sequential_vmap`` alone cannot be differentiated in
    reverse mode, so the gradient is supplied by a custom VJP whose forward and
    backward functions are each sequential under vmap.
    """

    def conv(x, kernel):
        return _lax_conv(x, kernel, strides, padding)

    def conv_vjp(x, kernel, cotangent):
        return jax.vjp(conv, x, kernel)[1](cotangent)

    forward = jax.custom_batching.sequential_vmap(conv)
    backward = jax.custom_batching.sequential_vmap(conv_vjp)

    @jax.custom_vjp
    def looped(x, kernel):
        return forward(x, kernel)

    looped.defvjp(lambda x, kernel: (forward(x, kernel), (x, kernel)), lambda res, g: backward(*res, g))
    return looped


def conv2d(
    x: Array,
    kernel: Array,
    *,
    strides: Sequence[int] = (1, 1),
    padding: str = "SAME",
    impl: str | None = None,
) -> Array:
    """2-D convolution of ``x`` (N, H, W, C) with ``kernel`` (kh, kw, C, O).

    Every implementation computes the same function (up to float rounding);
    they differ only in how they vectorise over a population.
    """
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d expects x (N, H, W, C) and kernel (kh, kw, C, O); got x {x.shape}, kernel {kernel.shape}")
    if x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"x has {x.shape[-1]} channels but kernel expects {kernel.shape[2]}")
    strides = tuple(int(s) for s in strides)
    if len(strides) != 2 or min(strides) < 1:
        raise ValueError(f"strides={strides} must be two positive integers")
    _same_or_valid_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
    impl = _check_impl(impl, "impl") if impl is not None else default_conv_impl()
    if impl == "im2col":
        return _im2col_conv(x, kernel, strides, padding)
    if impl == "lax":
        return _lax_conv(x, kernel, strides, padding)
    return _sequential_under_vmap(strides, padding)(x, kernel)


class Conv(nn.Module):
    """A convolution layer (NHWC) whose implementation is chosen by name.

    ``impl=None`` means ``default_conv_impl()`` at trace time, so one model
    definition serves every backend.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    use_bias: bool = True
    impl: str | None = None
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        y = conv2d(x, kernel.astype(x.dtype), strides=self.strides, padding=self.padding, impl=self.impl)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
        return y


class MaskedBatchNorm(nn.Module):
    """Batch normalisation whose batch statistics ignore masked-out examples.

    A member trained with batch size b inside a population padded to a larger
    batch sees b real examples followed by padding; ``mask`` (N,) marks the
    real ones so that the padding changes neither the normalisation nor the
    running averages. Statistics are weighted sums with one weight per
    example, which XLA compiles faster than a mask broadcast to every element.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: Array, *, train: bool, mask: Array | None = None) -> Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,))
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,))
        if train:
            mean, var = _weighted_moments(x, mask)
            if not self.is_initializing():
                running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
                running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
        else:
            mean, var = running_mean.value, running_var.value
        return (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias


def _weighted_moments(x: Array, mask: Array | None) -> tuple[Array, Array]:
    """Per-channel mean and (two-pass) variance over the examples ``mask`` keeps."""
    weights = jnp.ones(x.shape[0], x.dtype) if mask is None else mask.astype(x.dtype)
    positions = math.prod(x.shape[1:-1])
    weights = weights / (jnp.maximum(jnp.sum(weights), 1) * positions)
    weights = weights.reshape(-1, *([1] * (x.ndim - 1)))
    reduce_axes = tuple(range(x.ndim - 1))
    mean = jnp.sum(x * weights, axis=reduce_axes)
    var = jnp.sum(jnp.square(x - mean) * weights, axis=reduce_axes)
    return mean, var


def global_average_pool(x: Array) -> Array:
    """Mean over the spatial axes of an NHWC batch."""
    return jnp.mean(x, axis=(1, 2))
