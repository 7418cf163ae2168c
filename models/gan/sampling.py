"""Drawing seed images from a trained generator, reproducibly."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from models.gan.network import Generator

log = logging.getLogger(__name__)

#: Grey level under which a generated pixel is background (as `ready_crop` reads).
BACKGROUND_LEVEL = 12


def to_uint8(x: torch.Tensor) -> NDArray[np.uint8]:
    """(N, 3, S, S) images in [-1, 1] as (N, S, S, 3) uint8 RGB."""
    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def grid(images: NDArray[np.uint8], columns: int, gap: int = 2) -> NDArray[np.uint8]:
    """Tile (N, S, S, 3) images row by row, `columns` a row, grey gaps between."""
    n, s = len(images), images.shape[1]
    rows = -(-n // columns)
    out = np.full((rows * (s + gap) + gap, columns * (s + gap) + gap, 3), 96, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = gap + r * (s + gap), gap + c * (s + gap)
        out[y : y + s, x : x + s] = image
    return out


def clear_background(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Set to black every pixel outside each image's largest bright blob.

    Real crops show one seed on pure black; a generator leaves faint speckle
    around it, which this removes as production crops' masking would.
    """
    out = images.copy()
    for i, image in enumerate(images):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        fg = (grey > BACKGROUND_LEVEL).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        if n <= 1:
            out[i] = 0
            continue
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        keep = cv2.dilate((labels == largest).astype(np.uint8), np.ones((3, 3)))
        out[i][keep == 0] = 0
    return out


def sample_class(
    generator: Generator,
    label: int,
    n: int,
    *,
    seed: int,
    batch_size: int = 64,
    clear: bool = True,
) -> NDArray[np.uint8]:
    """Return `n` images (n, S, S, 3) uint8 of class `label`.

    The same generator, class, count and seed give the same images: the noise
    comes from a generator seeded by `seed` and `label` only.
    """
    shape = generator.shape
    if not 0 <= label < shape.n_classes:
        raise ValueError(
            f"class index {label} is out of range for {shape.n_classes} classes"
        )
    rng = torch.Generator().manual_seed(seed * 1009 + label)
    z = torch.randn((n, shape.z_dim), generator=rng)
    generator.eval()
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            zb = z[start : start + batch_size]
            y = torch.full((len(zb),), label, dtype=torch.long)
            out.append(to_uint8(generator(zb, y)))
    images = (
        np.concatenate(out)
        if out
        else np.zeros((0, shape.size, shape.size, 3), np.uint8)
    )
    return clear_background(images) if clear else images
