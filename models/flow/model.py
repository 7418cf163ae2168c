"""The multi-scale flow: L levels of D steps, in Glow, Emerging and CInC variants.

A level squeezes (C, H, W) to (4C, H/2, W/2), runs D steps and, but for the last
level, factors half of the channels out under a learned prior ("Glow: Generative
Flow with Invertible 1x1 Convolutions"). A step is actnorm, a channel-mixing
layer and a coupling. The mixing layer is what the variants differ in:

=========  ===================================================================
glow       invertible 1x1 convolution
emerging   Emerging k x k convolution (two autoregressive ones), then 1x1
cinc       CInC k x k convolution, then 1x1
=========  ===================================================================

The coupling is affine (half the channels change) or Quad (three quarters).
Images are modelled as uint8 with uniform dequantisation: x = (pixel + u) / 256
- 0.5, u ~ U[0, 1), and bits per dimension count the discrete likelihood bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from models.flow.convs import CInCConv2d, EmergingConv2d, InvalidFlowShape
from models.flow.layers import (
    ActNorm,
    AffineCoupling,
    InvertibleConv1x1,
    QuadCoupling,
    Split,
    Squeeze,
    gaussian_log_prob,
)

Mixing = Literal["glow", "emerging", "cinc"]
Coupling = Literal["affine", "quad"]
MIXINGS: tuple[str, ...] = ("glow", "emerging", "cinc")
COUPLINGS: tuple[str, ...] = ("affine", "quad")


@dataclass(frozen=True)
class FlowConfig:
    """The shape of a flow model.

    Attributes
    ----------
    in_channels : int
        Image channels (1 for grey digits, 3 for RGB seed crops).
    size : int
        Image side, pixels; divisible by ``2 ** levels``.
    levels : int
        L, the number of scales.
    steps : int
        D, steps per level.
    hidden : int
        Hidden channels of each coupling conditioner.
    mixing : {'glow', 'emerging', 'cinc'}
    coupling : {'affine', 'quad'}
    kernel_size : int
        Side of the Emerging or CInC kernel (odd).
    scale_bound : float
        Largest |log-scale| of a coupling.
    """

    in_channels: int = 3
    size: int = 32
    levels: int = 3
    steps: int = 8
    hidden: int = 128
    mixing: Mixing = "cinc"
    coupling: Coupling = "affine"
    kernel_size: int = 3
    scale_bound: float = 2.0

    def __post_init__(self) -> None:
        if self.mixing not in MIXINGS:
            raise ValueError(f"mixing must be one of {MIXINGS}, got {self.mixing!r}")
        if self.coupling not in COUPLINGS:
            raise ValueError(
                f"coupling must be one of {COUPLINGS}, got {self.coupling!r}"
            )
        if self.levels < 1 or self.steps < 1 or self.hidden < 1:
            raise ValueError(
                f"levels, steps and hidden must be positive, got {self.levels}, "
                f"{self.steps}, {self.hidden}"
            )
        if self.size % (2**self.levels):
            raise InvalidFlowShape(
                f"image side {self.size} is not divisible by 2 ** levels = "
                f"{2**self.levels}; pick a size or fewer levels"
            )

    @property
    def dims(self) -> int:
        """Dimensions of one image, C * H * W."""
        return self.in_channels * self.size * self.size

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain values (for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FlowConfig:
        """Build from `to_dict` output."""
        return cls(**values)


def _mixing_layers(config: FlowConfig, channels: int) -> list[nn.Module]:
    k = config.kernel_size
    if config.mixing == "glow":
        return [InvertibleConv1x1(channels)]
    if config.mixing == "emerging":
        return [EmergingConv2d(channels, k), InvertibleConv1x1(channels)]
    return [CInCConv2d(channels, k), InvertibleConv1x1(channels)]


class FlowStep(nn.Module):
    """Actnorm, the variant's mixing layers, then a coupling."""

    def __init__(self, config: FlowConfig, channels: int) -> None:
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.mixing = nn.ModuleList(_mixing_layers(config, channels))
        coupling = AffineCoupling if config.coupling == "affine" else QuadCoupling
        self.coupling = coupling(
            channels, config.hidden, scale_bound=config.scale_bound
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(y, logdet)``, logdet (B,)."""
        x, logdet = self.actnorm(x)
        for layer in self.mixing:
            x, more = layer(x)
            logdet = logdet + more
        x, more = self.coupling(x)
        return x, logdet + more

    def inverse(self, y: Tensor, *, sequential: bool = False) -> Tensor:
        """Return x; `sequential` uses the convolutions' pixel-by-pixel inverse."""
        y = self.coupling.inverse(y)
        for layer in reversed(self.mixing):
            if sequential and hasattr(layer, "inverse_sequential"):
                y = layer.inverse_sequential(y)
            else:
                y = layer.inverse(y)
        return self.actnorm.inverse(y)


class FlowLevel(nn.Module):
    """Squeeze, D steps and (but for the last level) a split."""

    def __init__(self, config: FlowConfig, channels: int, *, last: bool) -> None:
        super().__init__()
        self.squeeze = Squeeze()
        self.steps = nn.ModuleList(
            FlowStep(config, 4 * channels) for _ in range(config.steps)
        )
        self.split = None if last else Split(4 * channels)


class FlowModel(nn.Module):
    """A multi-scale normalizing flow over images.

    Parameters
    ----------
    config : FlowConfig

    Examples
    --------
    >>> model = FlowModel(FlowConfig(in_channels=1, size=8, levels=2, steps=1,
    ...                              hidden=8))
    >>> x = torch.rand(2, 1, 8, 8) - 0.5
    >>> zs, logdet, log_prior = model.encode(x)
    >>> bool((model.decode(zs) - x).abs().max() < 1e-4)
    True
    """

    def __init__(self, config: FlowConfig) -> None:
        super().__init__()
        self.config = config
        levels, channels, side = [], config.in_channels, config.size
        for i in range(config.levels):
            last = i == config.levels - 1
            levels.append(FlowLevel(config, channels, last=last))
            channels, side = (4 * channels if last else 2 * channels), side // 2
        self.levels = nn.ModuleList(levels)
        self.top_shape = (channels, side, side)
        self.top_mean = nn.Parameter(torch.zeros(1, *self.top_shape))
        self.top_log_std = nn.Parameter(torch.zeros(1, *self.top_shape))

    def encode(self, x: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """Map images to latents.

        Parameters
        ----------
        x : (B, C, S, S) float Tensor
            Dequantised images in [-0.5, 0.5).

        Returns
        -------
        zs : list of Tensor
            The factored-out latents of each level, then the top latent.
        logdet : (B,) Tensor
            Log-determinant of the whole map, nats.
        log_prior : (B,) Tensor
            Log-density of the latents under the priors, nats.
        """
        expected = (self.config.in_channels, self.config.size, self.config.size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise InvalidFlowShape(
                f"the model takes (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"images, got {tuple(x.shape)}"
            )
        zs: list[Tensor] = []
        logdet = x.new_zeros(x.shape[0])
        log_prior = x.new_zeros(x.shape[0])
        for level in self.levels:
            x, _ = level.squeeze(x)
            for step in level.steps:
                x, more = step(x)
                logdet = logdet + more
            if level.split is not None:
                x, factored, log_prob = level.split(x)
                zs.append(factored)
                log_prior = log_prior + log_prob
        zs.append(x)
        log_prior = log_prior + gaussian_log_prob(x, self.top_mean, self.top_log_std)
        return zs, logdet, log_prior

    def log_prob(self, x: Tensor) -> Tensor:
        """Return the log-density of dequantised images `x`, (B,), nats."""
        _, logdet, log_prior = self.encode(x)
        return logdet + log_prior

    def decode(
        self,
        zs: list[Tensor | None],
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sequential: bool = False,
    ) -> Tensor:
        """Map latents back to images; a None latent is drawn from its prior."""
        if len(zs) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} latents, got {len(zs)}")
        x = zs[-1]
        if x is None:
            raise ValueError("the top latent is needed; use `sample` to draw it")
        for i in reversed(range(len(self.levels))):
            level = self.levels[i]
            if level.split is not None:
                x = level.split.inverse(
                    x, zs[i], temperature=temperature, generator=generator
                )
            for step in reversed(level.steps):
                x = step.inverse(x, sequential=sequential)
            x = level.squeeze.inverse(x)
        return x

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sequential: bool = False,
    ) -> Tensor:
        """Draw `n` images, (n, C, S, S) in [-0.5, 0.5) before clamping.

        Every latent is ``mean + temperature * std * eps``; a temperature below 1
        trades variety for cleaner images.
        """
        device = self.top_mean.device
        eps = torch.randn((n, *self.top_shape), generator=generator, device=device).to(
            self.top_mean.dtype
        )
        top = self.top_mean + temperature * self.top_log_std.exp() * eps
        latents: list[Tensor | None] = [None] * (len(self.levels) - 1)
        return self.decode(
            [*latents, top],
            temperature=temperature,
            generator=generator,
            sequential=sequential,
        )


def parameter_count(model: nn.Module) -> int:
    """Return the number of trained parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def hidden_for(config: FlowConfig, parameters: int) -> int:
    """Return the coupling width whose model has closest to `parameters` weights.

    So that variants are compared at equal parameter count.
    """
    lo, hi = 1, 2048

    def count(hidden: int) -> int:
        with torch.device("meta"):
            return parameter_count(FlowModel(replace(config, hidden=hidden)))

    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) < parameters:
            lo = mid + 1
        else:
            hi = mid
    if lo > 1 and parameters - count(lo - 1) < count(lo) - parameters:
        return lo - 1
    return lo


def dequantise(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Map uint8 images to floats in [-0.5, 0.5) with uniform dequantisation noise.

    Parameters
    ----------
    images : (B, C, H, W) uint8 Tensor
    generator : torch.Generator, optional
        Source of the noise, for repeatable evaluations.
    """
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + noise) / 256.0 - 0.5


def to_uint8(x: Tensor) -> Tensor:
    """Map model-space images back to uint8 pixels."""
    return ((x + 0.5) * 256.0).floor().clamp(0, 255).to(torch.uint8)


def bits_per_dim(
    model: FlowModel, images: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Return each image's bits per dimension, (B,).

    The negative log-likelihood of the dequantised image, in bits, plus the
    ``log2(256)`` per dimension that the scaling to [-0.5, 0.5) removed, divided by
    the number of dimensions: an upper bound on the discrete model's code length.
    """
    dims = images[0].numel()
    log_prob = model.log_prob(dequantise(images, generator))
    return (-log_prob / dims + math.log(256.0)) / math.log(2.0)
