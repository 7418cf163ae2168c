"""Actnorm, 1x1 convolution, squeeze, split, affine and Quad coupling.

Every layer maps (B, C, H, W) float tensors. ``forward(x)`` returns ``(y, logdet)``
with logdet the log-determinant of the Jacobian, one value per batch item, shape
(B,); ``inverse(y)`` returns x exactly (to rounding). `Split` is the exception: it
removes half of the channels, so it returns their log-likelihood under its learned
prior instead, and its inverse takes them back.

The layers follow "Glow: Generative Flow with Invertible 1x1 Convolutions" but for
Quad-coupling, from "CInC Flow: Characterizable Invertible 3x3 Convolution".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from models.flow.convs import InvalidFlowShape, check_shape

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Return the log-density of `z` under N(mean, exp(log_std)^2), summed per item.

    Parameters
    ----------
    z, mean, log_std : (B, C, H, W) Tensor
        Broadcastable against one another.

    Returns
    -------
    (B,) Tensor
        Natural log-density, nats.
    """
    density = -0.5 * (LOG_2PI + 2 * log_std + (z - mean) ** 2 * torch.exp(-2 * log_std))
    return density.flatten(1).sum(1)


class ActNorm(nn.Module):
    """Per-channel scale and bias, set from the first batch it sees.

    The first `forward` sets the bias and scale so that this batch comes out with
    zero mean and unit variance per channel; from then on they are trained.

    Parameters
    ----------
    channels : int
        Channels, C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """Set bias and scale so that `x` is normalised per channel."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialised.fill_(True)  # type: ignore[operator]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``((x + bias) * exp(log_scale), logdet)``."""
        check_shape(x, self.channels, "ActNorm")
        if not bool(self.initialised):
            self.initialise(x)
        y = (x + self.bias) * self.log_scale.exp()
        logdet = self.log_scale.sum() * (x.shape[2] * x.shape[3])
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``y * exp(-log_scale) - bias``."""
        check_shape(y, self.channels, "ActNorm")
        return y * torch.exp(-self.log_scale) - self.bias


class InvertibleConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution: one C x C matrix at every pixel.

    Starts as a random rotation; the log-determinant is ``H * W * log|det W|``.

    Parameters
    ----------
    channels : int
        Channels, C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(q)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(W x, logdet)`` per pixel."""
        check_shape(x, self.channels, "InvertibleConv1x1")
        y = F.conv2d(x, self.weight[:, :, None, None])
        logdet = torch.linalg.slogdet(self.weight)[1] * (x.shape[2] * x.shape[3])
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``W^-1 y`` per pixel."""
        check_shape(y, self.channels, "InvertibleConv1x1")
        return F.conv2d(y, torch.linalg.inv(self.weight)[:, :, None, None])


class Squeeze(nn.Module):
    """Fold each 2 x 2 block of pixels into channels: (C, H, W) -> (4C, H/2, W/2)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the folded tensor and a zero logdet (a permutation)."""
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise InvalidFlowShape(
                f"Squeeze needs an even height and width, got {h} x {w}; "
                f"use images whose side is divisible by 2 ** levels"
            )
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: Tensor) -> Tensor:
        """Unfold channels back into 2 x 2 blocks."""
        b, c, h, w = y.shape
        x = y.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c // 4, 2 * h, 2 * w)


class ZeroConv2d(nn.Module):
    """A 3x3 convolution that starts at zero, its output scaled by exp(3 * s)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.log_scale = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Return the scaled convolution of `x`."""
        return self.conv(x) * torch.exp(3 * self.log_scale)


class Split(nn.Module):
    """Factor out half of the channels, modelled by a Gaussian conditioned on the rest.

    Parameters
    ----------
    channels : int
        Channels in, C; ``C // 2`` go on, the rest are factored out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.kept = channels // 2
        self.prior = ZeroConv2d(self.kept, 2 * (channels - self.kept))

    def _mean_log_std(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        return mean, log_std

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(kept, factored, log_prob)``, log_prob (B,) of `factored`."""
        check_shape(x, self.channels, "Split")
        kept, factored = x[:, : self.kept], x[:, self.kept :]
        mean, log_std = self._mean_log_std(kept)
        return kept, factored, gaussian_log_prob(factored, mean, log_std)

    def inverse(
        self,
        kept: Tensor,
        factored: Tensor | None = None,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Join `kept` and `factored`, drawing `factored` from the prior if None.

        A draw is ``mean + temperature * exp(log_std) * eps``.
        """
        if factored is None:
            mean, log_std = self._mean_log_std(kept)
            eps = torch.randn(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            factored = mean + temperature * log_std.exp() * eps
        return torch.cat([kept, factored], dim=1)


class CouplingNet(nn.Sequential):
    """The conditioner of a coupling: conv 3x3, ReLU, conv 1x1, ReLU, zero conv 3x3.

    Weights and activations are channels-last, which CPU convolutions (oneDNN) run
    about twice as fast as the default layout; it is most of a flow's work.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(inplace=True),
            ZeroConv2d(hidden, out_channels),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        """Return the conditioner's output for `x`, (B, out_channels, H, W)."""
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def bounded(raw: Tensor, bound: float) -> Tensor:
    """Return ``bound * tanh(raw / bound)``: a log-scale kept within +-bound."""
    return bound * torch.tanh(raw / bound)


class AffineCoupling(nn.Module):
    """Glow's affine coupling: ``y_b = (x_b + t(x_a)) * exp(s(x_a))``, ``y_a = x_a``.

    The log-scale s is bounded to +-`scale_bound` so that no step can blow up or
    collapse the signal.

    Parameters
    ----------
    channels : int
        Channels, C (at least 2); the first ``C // 2`` condition the rest.
    hidden : int
        Hidden channels of the conditioner.
    scale_bound : float
        Largest |log-scale| (2.0).
    """

    def __init__(self, channels: int, hidden: int, *, scale_bound: float = 2.0) -> None:
        super().__init__()
        if channels < 2:
            raise InvalidFlowShape(f"AffineCoupling needs 2+ channels, got {channels}")
        self.channels = channels
        self.half = channels // 2
        self.scale_bound = scale_bound
        self.net = CouplingNet(self.half, 2 * (channels - self.half), hidden)

    def _shift_log_scale(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net(xa).chunk(2, dim=1)
        return shift, bounded(raw, self.scale_bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(y, logdet)``, logdet the sum of the log-scales."""
        check_shape(x, self.channels, "AffineCoupling")
        xa, xb = x[:, : self.half], x[:, self.half :]
        shift, log_scale = self._shift_log_scale(xa)
        yb = (xb + shift) * log_scale.exp()
        return torch.cat([xa, yb], dim=1), log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        """Return ``x_b = y_b * exp(-s) - t``, ``x_a = y_a``."""
        check_shape(y, self.channels, "AffineCoupling")
        ya, yb = y[:, : self.half], y[:, self.half :]
        shift, log_scale = self._shift_log_scale(ya)
        return torch.cat([ya, yb * torch.exp(-log_scale) - shift], dim=1)


class QuadCoupling(nn.Module):
    """Quad-coupling: four channel groups, each transformed given all before it.

    ``y1 = x1`` and ``y_k = (x_k + t_k(x_1..x_{k-1})) * exp(s_k(x_1..x_{k-1}))`` for
    k = 2, 3, 4, with bounded log-scales as in `AffineCoupling`. Three quarters of
    the channels change per layer instead of half.

    Parameters
    ----------
    channels : int
        Channels, C, divisible by 4.
    hidden : int
        Hidden channels of each of the three conditioners.
    scale_bound : float
        Largest |log-scale| (2.0).
    """

    def __init__(self, channels: int, hidden: int, *, scale_bound: float = 2.0) -> None:
        super().__init__()
        if channels % 4:
            raise InvalidFlowShape(
                f"QuadCoupling needs channels divisible by 4, got {channels}"
            )
        self.channels = channels
        self.quarter = q = channels // 4
        self.scale_bound = scale_bound
        self.nets = nn.ModuleList(CouplingNet(k * q, 2 * q, hidden) for k in (1, 2, 3))

    def _shift_log_scale(self, k: int, before: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.nets[k](before).chunk(2, dim=1)
        return shift, bounded(raw, self.scale_bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(y, logdet)``, logdet the sum of the three log-scales."""
        check_shape(x, self.channels, "QuadCoupling")
        parts = list(x.split(self.quarter, dim=1))
        logdet = x.new_zeros(x.shape[0])
        out = [parts[0]]
        for k in range(3):
            shift, log_scale = self._shift_log_scale(k, torch.cat(parts[: k + 1], 1))
            out.append((parts[k + 1] + shift) * log_scale.exp())
            logdet = logdet + log_scale.flatten(1).sum(1)
        return torch.cat(out, dim=1), logdet

    def inverse(self, y: Tensor) -> Tensor:
        """Recover x1, then x2 from x1, x3 from x1..x2 and x4 from x1..x3."""
        check_shape(y, self.channels, "QuadCoupling")
        parts = list(y.split(self.quarter, dim=1))
        x = [parts[0]]
        for k in range(3):
            shift, log_scale = self._shift_log_scale(k, torch.cat(x, 1))
            x.append(parts[k + 1] * torch.exp(-log_scale) - shift)
        return torch.cat(x, dim=1)
