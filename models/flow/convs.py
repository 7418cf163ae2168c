"""Invertible spatial convolutions: CInC and the autoregressive ones of Emerging.

Both are masked convolutions whose matrix, with pixels in raster order and channels
within a pixel, is lower triangular: an output pixel reads only input pixels that
come before it, and at its own pixel a lower-triangular channel block. The
log-determinant is then the sum of the log-diagonal, and the inverse is a forward
substitution.

The CInC convolution ("CInC Flow: Characterizable Invertible 3x3 Convolution") is a
plain k x k convolution padded only on the top and the left, so the output at
``(i, j)`` reads the inputs at rows ``i-k+1..i`` and columns ``j-k+1..j``; the tap
that reads ``(i, j)`` itself is the bottom-right one, and only that tap's channel
block is masked. Every pixel depends only on pixels of earlier anti-diagonals
(``i + j`` smaller), so a whole anti-diagonal inverts in one batched step: an
H x W image in H + W - 1 steps.

The autoregressive convolution of "Emerging Convolutions for Generative Normalizing
Flows" is centred (padded k // 2 on every side) and masked to the rows above and
the pixels to the left. An output reads the row above up to ``k // 2`` columns to
its right, so anti-diagonals do not separate it; the skewed wavefront
``(k // 2 + 1) * i + j`` does, in ``(k // 2 + 1) * (H - 1) + W`` steps. The
Emerging convolution chains one such convolution with its mirror image.

The diagonal of each centre block is ``exp(log_diagonal)``, never zero, so every
layer here is invertible for any weights; with ``log_diagonal = 0`` (the
initialisation) it is the unit-diagonal case.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn


@dataclass(frozen=True)
class _Wavefront:
    """The order in which an H x W image is solved, and where its pixels are kept.

    The inverse keeps x in a sheared buffer of shape (columns, C, rows, B): pixel
    ``(i, j)`` of wavefront step ``t = skew * i + j`` sits at column ``t + lead``
    and row ``i + top``. Every tap then reads a fixed (column, row) offset, the
    pixels of one step are one run of rows of one column, and the taps of one
    kernel row (consecutive columns) share one matrix product per step, with no
    gather. Slots of pixels outside the image are never written and stay zero,
    which is the convolution's zero padding.

    Attributes
    ----------
    columns, rows : int
        Buffer size: ``lead`` zero columns then one per step; H plus the padding
        rows.
    lead : int
        Zero columns before the first step, the farthest column a tap reaches back.
    steps : tuple of (int, int, int)
        Per step: how many pixels it solves, its buffer column, and its first
        buffer row.
    """

    columns: int
    rows: int
    lead: int
    steps: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, eq=False)
class _Workspace:
    """A sheared buffer for one input shape, with its views made once.

    Attributes
    ----------
    buffer : (columns, C, rows, B) Tensor
        Zero in every slot outside the image; the inverse writes only the others.
    image : (C, H, W, B) Tensor
        The view of the image's slots.
    steps : tuple of (Tensor, tuple of Tensor)
        Per step: the (C, n * B) view of its pixels, and per kernel row the
        (span * C, n * B) view of what that row's taps read.
    transposed : (C * H * W, B) Tensor
        Where y is turned batch-innermost.
    presolved : (C, H * W * B) Tensor
        Where the centre block's inverse is applied to all of y at once.
    """

    buffer: Tensor
    image: Tensor
    steps: tuple[tuple[Tensor, tuple[Tensor, ...]], ...]
    transposed: Tensor
    presolved: Tensor


class InvalidFlowShape(ValueError):
    """A flow layer got a tensor whose shape it cannot take."""


def check_shape(x: Tensor, channels: int, layer: str) -> None:
    """Raise `InvalidFlowShape` unless `x` is (B, channels, H, W)."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise InvalidFlowShape(
            f"{layer} takes (B, {channels}, H, W) tensors, got {tuple(x.shape)}"
        )


class MaskedInvertibleConv2d(nn.Module):
    """A k x k convolution masked to a triangular matrix, with its exact inverse.

    Subclasses choose the padding, which taps are kept and the wavefront skew
    under which every pixel depends only on earlier steps.

    Parameters
    ----------
    channels : int
        Input and output channels, C.
    kernel_size : int
        Odd kernel side, k.
    padding : tuple of int
        ``(left, right, top, bottom)`` zero padding, as `torch.nn.functional.pad`.
    centre : tuple of int
        Kernel position ``(row, col)`` of the tap that reads the output's own pixel.
    taps : (k, k) bool Tensor
        Kernel positions kept (the centre included, where only its lower-triangular
        channel block is used).
    skew : int
        Pixels ``(i, j)`` with equal ``skew * i + j`` are independent of one another.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        *,
        padding: tuple[int, int, int, int],
        centre: tuple[int, int],
        taps: Tensor,
        skew: int,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.padding = padding
        self.centre = centre
        self.skew = skew

        mask = taps.to(torch.float32)[None, None].repeat(channels, channels, 1, 1)
        mask[:, :, centre[0], centre[1]] = torch.tril(
            torch.ones(channels, channels), diagonal=-1
        )
        self.register_buffer("mask", mask)
        spot = torch.zeros(kernel_size, kernel_size)
        spot[centre] = 1.0
        self.register_buffer("spot", spot)
        # Small taps around an identity map: the layer starts near the identity.
        std = 0.05 / math.sqrt(channels * kernel_size * kernel_size)
        self.weight = nn.Parameter(
            torch.randn(channels, channels, kernel_size, kernel_size) * std
        )
        self.log_diagonal = nn.Parameter(torch.zeros(channels))
        self._orders: dict[tuple[int, int], _Wavefront] = {}
        # Workspaces not in use, by input shape; an inverse takes one out while
        # it runs, so concurrent inverses never share one.
        self._spare: dict[tuple[object, ...], _Workspace] = {}

    def kernel(self) -> Tensor:
        """Return the effective (C, C, k, k) weight: masked, diagonal added."""
        mask: Tensor = self.mask  # type: ignore[assignment]
        spot: Tensor = self.spot  # type: ignore[assignment]
        diagonal = torch.diag_embed(self.log_diagonal.exp())
        return self.weight * mask + diagonal[:, :, None, None] * spot

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve `x`; return ``(y, logdet)``, logdet of shape (B,)."""
        check_shape(x, self.channels, type(self).__name__)
        y = F.conv2d(F.pad(x, self.padding), self.kernel())
        logdet = self.log_diagonal.sum() * (x.shape[2] * x.shape[3])
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        """Return the `x` with ``forward(x)[0] == y``, one wavefront per step.

        The weights are detached: the inverse serves sampling and checks, and
        passes no gradient to them.
        """
        check_shape(y, self.channels, type(self).__name__)
        b, c, h, w = y.shape
        plan = self._wavefront(h, w)
        weight = self.kernel().detach()
        solve = torch.linalg.inv(weight[:, :, self.centre[0], self.centre[1]])
        # Per step: x = inv(centre) @ y - sum over taps of inv(centre) @ tap @
        # x_earlier. inv(centre) is applied to y once, up front, and folded into
        # the taps, so a step is only its taps' products. The taps of one kernel
        # row read consecutive buffer columns, which make one matrix: one product
        # per kernel row and step.
        by_row = weight.permute(2, 0, 3, 1)  # (u, out, v, in)
        matrices = [
            -solve @ by_row[u, :, vs[0] : vs[-1] + 1].reshape(c, len(vs) * c)
            for u, vs, _ in self._rows
        ]
        # The buffer keeps the batch innermost, so a step's pixels and each
        # kernel row's sources are plain (rows, n * B) matrices. y goes in by a
        # 2-D transpose, far faster than a 4-D permute.
        key = (b, h, w, y.dtype, y.device)
        space = self._spare.pop(key, None) or self._workspace(plan, b, h, w, y)
        space.transposed.copy_(y.detach().reshape(b, c * h * w).t())
        torch.mm(solve, space.transposed.view(c, h * w * b), out=space.presolved)
        space.image.copy_(space.presolved.view(c, h, w, b))
        for out, sources in space.steps:
            for matrix, src in zip(matrices, sources, strict=True):
                out.addmm_(matrix, src)
        x = space.image.contiguous().view(c * h * w, b).t().reshape(b, c, h, w)
        # Limitation: the buffers of up to four input shapes stay allocated (for
        # 100 images of 12 x 32 x 32, about 21 MB) for as long as the layer lives.
        if len(self._spare) < 4:
            self._spare[key] = space
        return x

    def _workspace(
        self, plan: _Wavefront, b: int, h: int, w: int, like: Tensor
    ) -> _Workspace:
        c = self.channels
        buffer = like.new_zeros(plan.columns, c, plan.rows, b)
        rows_b, column_size = plan.rows * b, c * plan.rows * b
        # Pixel (i, j) sits at column lead + skew * i + j, row top + i.
        image = buffer.as_strided(
            (c, h, w, b),
            (rows_b, self.skew * column_size + b, column_size, 1),
            plan.lead * column_size + self.padding[2] * b,
        )
        spans = [(offset, row, len(vs)) for _, vs, (offset, row) in self._rows]
        steps = []
        for n, column, row in plan.steps:
            at = column * column_size + row * b
            out = buffer.as_strided((c, n * b), (rows_b, 1), at)
            sources = tuple(
                buffer.as_strided(
                    (span * c, n * b),
                    (rows_b, 1),
                    at + offset * column_size + tap_row * b,
                )
                for offset, tap_row, span in spans
            )
            steps.append((out, sources))
        transposed = like.new_empty(c * h * w, b)
        presolved = like.new_empty(c, h * w * b)
        return _Workspace(buffer, image, tuple(steps), transposed, presolved)

    def inverse_sequential(self, y: Tensor) -> Tensor:
        """Return the same as `inverse`, one pixel per step in raster order.

        The plain reference the wavefront inverse is checked and timed against:
        each pixel is a window product and a triangular solve of its channels.
        """
        check_shape(y, self.channels, type(self).__name__)
        b, c, h, w = y.shape
        left, right, top, bottom = self.padding
        k = self.kernel_size
        weight = self.kernel().detach()
        centre = weight[:, :, self.centre[0], self.centre[1]]
        target = y.detach()

        x = y.new_zeros(b, c, h + top + bottom, w + left + right)
        for i in range(h):
            for j in range(w):
                window = x[:, :, i : i + k, j : j + k]
                rest = target[:, :, i, j] - torch.einsum(
                    "bcuv,ocuv->bo", window, weight
                )
                x[:, :, i + top, j + left] = torch.linalg.solve_triangular(
                    centre, rest.T, upper=False
                ).T
        return x[:, :, top : top + h, left : left + w]

    @functools.cached_property
    def _rows(self) -> list[tuple[int, list[int], tuple[int, int]]]:
        """List each kernel row's kept off-centre taps and where the first reads.

        Per kernel row ``u``: its taps' columns ``v`` (a contiguous run), and the
        (column, row) buffer offset of the first one. Tap ``(u, v)`` reads the
        pixel ``(i + u - top, j + v - left)``, solved ``skew * (u - top) + v - left``
        steps earlier (always before), ``u - top`` rows from the output's row;
        the run's taps read consecutive columns. Fixed by the mask, so worked out
        once, at the first inverse.
        """
        left, _, top, _ = self.padding
        kept: Tensor = self.mask.amax((0, 1))  # type: ignore[operator]
        out = []
        for u in range(self.kernel_size):
            vs = [
                v
                for v in range(self.kernel_size)
                if kept[u, v] and (u, v) != self.centre
            ]
            if not vs:
                continue
            if vs != list(range(vs[0], vs[-1] + 1)):
                raise ValueError(f"kernel row {u} keeps a broken run of taps {vs}")
            out.append((u, vs, (self.skew * (u - top) + vs[0] - left, u - top)))
        return out

    def _wavefront(self, h: int, w: int) -> _Wavefront:
        if (h, w) not in self._orders:
            self._orders[(h, w)] = self._make_wavefront(h, w)
        return self._orders[(h, w)]

    def _make_wavefront(self, h: int, w: int) -> _Wavefront:
        _, _, top, bottom = self.padding
        lead = max((-offset for _, _, (offset, _) in self._rows), default=0)
        n_steps = self.skew * (h - 1) + w
        steps = []
        for t in range(n_steps):
            # Step t solves the pixels (i, t - skew * i) inside the image: the
            # rows from ceil((t - w + 1) / skew) to floor(t / skew).
            first = max(0, -((w - 1 - t) // self.skew))
            last = min(h - 1, t // self.skew)
            if last >= first:
                steps.append((last - first + 1, lead + t, first + top))
        return _Wavefront(
            columns=lead + n_steps,
            rows=h + top + bottom,
            lead=lead,
            steps=tuple(steps),
        )


class CInCConv2d(MaskedInvertibleConv2d):
    """The CInC invertible convolution: padded on the top and the left only.

    ``forward(x)`` returns ``(y, logdet)`` with logdet of shape (B,), equal to
    ``H * W * sum(log_diagonal)``; ``inverse(y)`` returns x in H + W - 1 batched
    anti-diagonal steps.

    Parameters
    ----------
    channels : int
        Input and output channels.
    kernel_size : int
        Odd kernel side (3 by default, any odd size works).

    Examples
    --------
    >>> conv = CInCConv2d(4)
    >>> x = torch.randn(2, 4, 8, 8)
    >>> y, logdet = conv(x)
    >>> bool((conv.inverse(y) - x).abs().max() < 1e-5)
    True
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        k = kernel_size
        super().__init__(
            channels,
            k,
            padding=(k - 1, 0, k - 1, 0),
            centre=(k - 1, k - 1),
            taps=torch.ones(k, k, dtype=torch.bool),
            skew=1,
        )


class AutoregressiveConv2d(MaskedInvertibleConv2d):
    """A centred convolution masked to the rows above and the pixels to the left.

    One half of an Emerging convolution. Its inverse runs in
    ``(k // 2 + 1) * (H - 1) + W`` skewed-wavefront steps.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        k, c = kernel_size, kernel_size // 2
        taps = torch.zeros(k, k, dtype=torch.bool)
        taps[:c] = True
        taps[c, : c + 1] = True
        super().__init__(
            channels,
            k,
            padding=(c, c, c, c),
            centre=(c, c),
            taps=taps,
            skew=c + 1,
        )


class _Mirrored(nn.Module):
    """An autoregressive convolution run on the image turned by 180 degrees.

    Flipping both axes and the channel order makes it read the rows below, the
    pixels to the right and an upper-triangular centre block.
    """

    def __init__(self, conv: AutoregressiveConv2d) -> None:
        super().__init__()
        self.conv = conv

    @staticmethod
    def _turn(x: Tensor) -> Tensor:
        return x.flip(1, 2, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, logdet = self.conv(self._turn(x))
        return self._turn(y), logdet

    def inverse(self, y: Tensor, *, sequential: bool = False) -> Tensor:
        solve = self.conv.inverse_sequential if sequential else self.conv.inverse
        return self._turn(solve(self._turn(y)))


class EmergingConv2d(nn.Module):
    """The Emerging convolution: an autoregressive convolution and its mirror.

    Its receptive field covers the whole k x k square, as an unmasked convolution,
    at the cost of two triangular solves in the inverse.

    Parameters
    ----------
    channels : int
        Input and output channels.
    kernel_size : int
        Odd kernel side (3).
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.first = AutoregressiveConv2d(channels, kernel_size)
        self.second = _Mirrored(AutoregressiveConv2d(channels, kernel_size))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve `x`; return ``(y, logdet)``, logdet of shape (B,)."""
        h, logdet_a = self.first(x)
        y, logdet_b = self.second(h)
        return y, logdet_a + logdet_b

    def inverse(self, y: Tensor) -> Tensor:
        """Return x, each half by its skewed wavefront."""
        return self.first.inverse(self.second.inverse(y))

    def inverse_sequential(self, y: Tensor) -> Tensor:
        """Return x, pixel by pixel in raster order as Emerging's own inverse."""
        return self.first.inverse_sequential(self.second.inverse(y, sequential=True))
