"""A small class-conditional BigGAN: generator and projection discriminator.

The generator follows "Large Scale GAN Training for High Fidelity Natural Image
Synthesis": residual up-sampling blocks whose batch norms take their gain and bias
from the class (a shared class embedding) concatenated with a chunk of the noise
vector. The discriminator is the projection discriminator of "cGANs with Projection
Discriminator": residual down-sampling blocks, a sum-pooled feature vector, and a
class term that is the inner product of that vector with a class embedding. Every
convolution and linear layer of both networks is spectrally normalised
("Spectral Normalization for Generative Adversarial Networks").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

log = logging.getLogger(__name__)

#: Image sides the networks are built for (16 px is for quick tests).
SIZES = (16, 32, 64, 128)


@dataclass(frozen=True)
class GanShape:
    """The shape of a generator and discriminator pair.

    Attributes
    ----------
    n_classes : int
        Number of seed classes the networks are conditioned on.
    size : int
        Side of the square RGB images, pixels: 32, 64 or 128.
    channels : int
        Width of the last generator block and the first discriminator block; the
        other blocks double it at each halving of the resolution.
    z_dim : int
        Length of the noise vector; it is split into one chunk per generator block
        plus one for the first linear layer.
    embed_dim : int
        Length of the shared class embedding of the generator.
    """

    n_classes: int
    size: int = 64
    channels: int = 16
    z_dim: int = 80
    embed_dim: int = 64

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(
                f"GAN image side must be one of {SIZES} pixels, got {self.size}"
            )
        if self.n_classes < 1:
            raise ValueError(f"need at least one class, got {self.n_classes}")
        if self.z_dim % (self.n_blocks + 1):
            raise ValueError(
                f"z_dim {self.z_dim} must split evenly into {self.n_blocks + 1} "
                f"chunks at {self.size} px"
            )

    @property
    def n_blocks(self) -> int:
        """Residual blocks of either network (one per doubling from 4 px)."""
        return int(math.log2(self.size)) - 2

    def width(self, level: int) -> int:
        """Channels at `level` doublings below full resolution."""
        return self.channels * 2**level


def _conv(c_in: int, c_out: int, k: int = 3) -> nn.Module:
    return spectral_norm(nn.Conv2d(c_in, c_out, k, padding=k // 2))


def _linear(c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Linear(c_in, c_out, bias=bias))


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain and bias are linear in a conditioning vector.

    The gain is ``1 + W_g c`` so that a zero vector gives plain batch norm.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = _linear(cond_dim, channels, bias=False)
        self.bias = _linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Normalise (N, C, H, W) `x` with the gains of (N, D) `cond`."""
        gain = 1.0 + self.gain(cond)[:, :, None, None]
        bias = self.bias(cond)[:, :, None, None]
        return self.norm(x) * gain + bias


class GeneratorBlock(nn.Module):
    """Conditional batch norm, ReLU, 2x up-sampling and two 3x3 convolutions."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm(c_in, cond_dim)
        self.conv1 = _conv(c_in, c_out)
        self.bn2 = ConditionalBatchNorm(c_out, cond_dim)
        self.conv2 = _conv(c_out, c_out)
        self.skip = _conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Return the block's output at twice the resolution."""
        h = F.relu(self.bn1(x, cond))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# Limitation: BigGAN's self-attention block (at 64 px) is left out, as are its
# orthogonal regularisation and truncation trick; the networks are sized for
# training on a CPU in minutes, where these would add cost first.
class Generator(nn.Module):
    """Images (N, 3, S, S) in [-1, 1] from noise (N, z_dim) and classes (N,).

    Noise is split hierarchically: the first chunk feeds the 4x4 linear layer,
    each other chunk joins the shared class embedding to condition one block.
    """

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        self.shape = shape
        n = shape.n_blocks
        self.chunk = shape.z_dim // (n + 1)
        cond_dim = self.chunk + shape.embed_dim
        self.embed = nn.Embedding(shape.n_classes, shape.embed_dim)
        self.linear = _linear(self.chunk, shape.width(n) * 16)
        self.blocks = nn.ModuleList(
            GeneratorBlock(shape.width(n - i), shape.width(n - i - 1), cond_dim)
            for i in range(n)
        )
        self.out_norm = nn.BatchNorm2d(shape.width(0))
        self.out_conv = _conv(shape.width(0), 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Generate images for noise `z` (N, z_dim) and class indices `y` (N,)."""
        chunks = torch.split(z, self.chunk, dim=1)
        shared = self.embed(y)
        h = self.linear(chunks[0]).view(len(z), -1, 4, 4)
        for block, chunk in zip(self.blocks, chunks[1:], strict=True):
            h = block(h, torch.cat([chunk, shared], dim=1))
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions and 2x average pooling, with a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, *, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv1 = _conv(c_in, c_out)
        self.conv2 = _conv(c_out, c_out)
        self.skip = _conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output at half the resolution."""
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        # The first block sees the image itself: pool before the shortcut there,
        # as the pixels need no pre-activation.
        skip = self.skip(F.avg_pool2d(x, 2)) if self.first else self.skip(x)
        return h + (skip if self.first else F.avg_pool2d(skip, 2))


class Discriminator(nn.Module):
    """Realness scores (N,) for images (N, 3, S, S) of classes (N,)."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        self.shape = shape
        n = shape.n_blocks
        widths = [3] + [shape.width(i) for i in range(n + 1)]
        # n blocks bring S down to 4 px; one more keeps 4 px deep enough.
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(widths[i], widths[i + 1], first=i == 0) for i in range(n)
        )
        self.final = _conv(widths[n], widths[n + 1])
        self.linear = _linear(widths[n + 1], 1)
        self.embed = spectral_norm(nn.Embedding(shape.n_classes, widths[n + 1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score images `x` of classes `y`: high is real, low is generated."""
        h = x
        for block in self.blocks:
            h = block(h)
        h = F.relu(self.final(F.relu(h))).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
