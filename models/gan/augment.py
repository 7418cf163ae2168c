"""Differentiable augmentation of real and generated images for small datasets.

From "Differentiable Augmentation for Data-Efficient GAN Training": the same
random, differentiable transformations are applied to every image the
discriminator sees, real or generated, and the generator's gradient flows back
through them, so the discriminator cannot memorise a few hundred real seeds and
the generator does not learn to reproduce the augmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

#: The transformations, in the order they are applied.
POLICIES = ("color", "translation", "cutout")


def diff_augment(
    x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator
) -> torch.Tensor:
    """Return images `x` (N, 3, S, S) in [-1, 1] randomly transformed by `policy`.

    Parameters
    ----------
    x : (N, 3, S, S) float tensor
    policy : tuple of str
        Any of ``"color"`` (brightness, saturation, contrast), ``"translation"``
        (shift by up to 1/8 of the side, black fill) and ``"cutout"`` (a black
        square of half the side).
    generator : torch.Generator
        Source of every random draw, so a training step is reproducible.
    """
    unknown = set(policy) - set(POLICIES)
    if unknown:
        raise ValueError(
            f"unknown augmentation {sorted(unknown)}; choose from {list(POLICIES)}"
        )
    for name in POLICIES:
        if name in policy:
            x = _TRANSFORMS[name](x, generator)
    return x


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand((n, 1, 1, 1), generator=generator).to(device)


def _color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    x = x + (_uniform(n, generator, x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, generator, x.device) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, generator, x.device) + 0.5) + mean


def _translation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    limit = max(1, h // 8)
    shift = torch.randint(-limit, limit + 1, (n, 2), generator=generator)
    padded = F.pad(x, (limit, limit, limit, limit), value=-1.0)
    rows = torch.arange(h)[None, :] + limit - shift[:, :1]
    cols = torch.arange(w)[None, :] + limit - shift[:, 1:]
    index_r = rows[:, None, :, None].expand(n, x.shape[1], h, w + 2 * limit)
    picked = padded.gather(2, index_r.to(x.device))
    index_c = cols[:, None, None, :].expand(n, x.shape[1], h, w)
    return picked.gather(3, index_c.to(x.device))


def _cutout(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = h // 2, w // 2
    top = torch.randint(-(ch // 2), h - ch // 2, (n, 1, 1), generator=generator)
    left = torch.randint(-(cw // 2), w - cw // 2, (n, 1, 1), generator=generator)
    r = torch.arange(h)[None, :, None]
    c = torch.arange(w)[None, None, :]
    hole = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw)
    keep = (~hole).to(x.dtype)[:, None].to(x.device)
    return x * keep - (1.0 - keep)


_TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}
