"""Image classifiers written for one member, built on ``jhpo.nn`` so they vectorise.

Both models take an NHWC batch, ``train`` (batch statistics and their update in
training, running averages in evaluation) and an optional example ``mask`` that
marks the real examples of a padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jhpo import nn as jnn

Array = jax.Array


SMALL_CNN_KERNEL = (3, 3)


def active_channels(width: int, width_multiplier: Array) -> Array:
    """How many of a layer's ``width`` channels a member with ``width_multiplier`` in (0, 1] uses.

    ``ceil(width_multiplier * width)``, at least one. The small margin keeps a
    float32 product such as 0.3 * 10 = 3.0000002 from rounding up to 4.
    """
    return jnp.clip(jnp.ceil(width_multiplier * width - 1e-4), 1, width).astype(jnp.int32)


class SmallCNN(nn.Module):
    """Three 3x3 convolutions (the last two with stride 2), global average pool, linear head.

    No normalisation layer, so the mask is not needed in the forward pass.
    ``width_multiplier`` (a traced scalar in (0, 1]) keeps only the first
    ``active_channels`` channels of each layer: the others are zeroed, so
    their weights receive no gradient and feed nothing. A member thus trains
    a narrower network inside the full-width arrays that every member of a
    population shares, and members of different widths share one program.
    """

    num_classes: int = 10
    widths: Sequence[int] = (16, 32, 64)
    conv_impl: str | None = None

    @nn.compact
    def __call__(
        self, x: Array, *, train: bool, mask: Array | None = None, width_multiplier: Array | None = None
    ) -> Array:
        del train, mask
        for index, width in enumerate(self.widths):
            strides = (1, 1) if index == 0 else (2, 2)
            x = jax.nn.relu(jnn.Conv(width, SMALL_CNN_KERNEL, strides=strides, impl=self.conv_impl)(x))
            if width_multiplier is not None:
                x = x * (jnp.arange(width) < active_channels(width, width_multiplier)).astype(x.dtype)
        return nn.Dense(self.num_classes)(jnn.global_average_pool(x))

    def num_params(self, in_channels: int, width_multiplier: Array = 1.0) -> Array:
        """Weights and biases of the network a member with ``width_multiplier`` trains (int32)."""
        kernel_area = SMALL_CNN_KERNEL[0] * SMALL_CNN_KERNEL[1]
        previous = jnp.int32(in_channels)
        total = jnp.int32(0)
        for width in self.widths:
            channels = active_channels(width, jnp.asarray(width_multiplier, jnp.float32))
            total = total + (kernel_area * previous + 1) * channels
            previous = channels
        return total + (previous + 1) * self.num_classes


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity or 1x1-projection shortcut."""

    features: int
    strides: tuple[int, int] = (1, 1)
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: Array, *, train: bool, mask: Array | None) -> Array:
        def conv(features, kernel, strides):
            return jnn.Conv(features, kernel, strides=strides, use_bias=False, impl=self.conv_impl)

        y = conv(self.features, (3, 3), self.strides)(x)
        y = jax.nn.relu(jnn.MaskedBatchNorm()(y, train=train, mask=mask))
        y = conv(self.features, (3, 3), (1, 1))(y)
        y = jnn.MaskedBatchNorm()(y, train=train, mask=mask)
        shortcut = x
        if self.strides != (1, 1) or x.shape[-1] != self.features:
            shortcut = conv(self.features, (1, 1), self.strides)(x)
            shortcut = jnn.MaskedBatchNorm()(shortcut, train=train, mask=mask)
        return jax.nn.relu(y + shortcut)


class ResNet(nn.Module):
    """A CIFAR-style residual network: 3x3 stem with stride 1, no max-pool.

    Stage i has ``stage_sizes[i]`` basic blocks with ``width * 2**i`` channels;
    every stage after the first starts with a stride-2 block.
    """

    stage_sizes: Sequence[int]
    num_classes: int = 10
    width: int = 64
    conv_impl: str | None = None

    @nn.compact
    def __call__(self, x: Array, *, train: bool, mask: Array | None = None) -> Array:
        x = jnn.Conv(self.width, (3, 3), use_bias=False, impl=self.conv_impl)(x)
        x = jax.nn.relu(jnn.MaskedBatchNorm()(x, train=train, mask=mask))
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
                x = BasicBlock(self.width * 2**stage, strides, self.conv_impl)(x, train=train, mask=mask)
        return nn.Dense(self.num_classes)(jnn.global_average_pool(x))


RESNET18_STAGES = (2, 2, 2, 2)


def ResNet18(**options) -> ResNet:
    """ResNet-18 in its CIFAR form: four stages of two blocks, 64 to 512 channels by default."""
    return ResNet(stage_sizes=RESNET18_STAGES, **options)
