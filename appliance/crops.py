"""Seed crops for the classifier, cut the same way in training and in production.

A crop is square, centred on the seed, turned so that the seed's long axis is
vertical, scaled so that the seed's length fills the crop but for a margin, and
black wherever the seed is not (neighbours and plate removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.segmentation import SeedRegion, ellipse_axes

#: Pixels of plate kept around the mask, so the outline itself is in the crop.
_MASK_GROWTH_PX = 2


def cut_crop(
    rgb: NDArray[np.uint8],
    region: SeedRegion,
    *,
    size: int,
    margin: float = 1.15,
) -> NDArray[np.uint8]:
    """One seed's crop.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The (corrected) image the region was found in.
    region : SeedRegion
        The seed.
    size : int
        Side of the square crop, pixels.
    margin : float
        Crop side over the seed's length.

    Returns
    -------
    (size, size, 3) uint8 ndarray
    """
    r0, c0, r1, c1 = region.bbox
    grow = _MASK_GROWTH_PX
    h, w = rgb.shape[:2]
    y0, x0 = max(r0 - grow, 0), max(c0 - grow, 0)
    y1, x1 = min(r1 + grow, h), min(c1 + grow, w)
    window = rgb[y0:y1, x0:x1]
    placed = np.zeros(window.shape[:2], np.uint8)
    placed[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0] = region.mask
    mask = cv2.dilate(placed, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    seed = _uint8(cv2.bitwise_and(window, window, mask=mask))

    cy, cx = region.centroid[0] - y0, region.centroid[1] - x0
    length = max(region.major_px, region.minor_px, 4.0)
    return _turn_and_scale(seed, (cx, cy), region.orientation_rad, length, size, margin)


def cut_crops(
    rgb: NDArray[np.uint8],
    regions: Sequence[SeedRegion],
    *,
    size: int,
    margin: float = 1.15,
) -> NDArray[np.uint8]:
    """Crops of many seeds of one image, as an (N, size, size, 3) uint8 array."""
    out = np.zeros((len(regions), size, size, 3), np.uint8)
    for i, region in enumerate(regions):
        out[i] = cut_crop(rgb, region, size=size, margin=margin)
    return out


def ready_crop(
    rgb: NDArray[np.uint8],
    *,
    size: int,
    margin: float = 1.15,
    side_px: float | None = None,
    level: int = 12,
) -> NDArray[np.uint8]:
    """Crop a photograph of a single seed already masked on black.

    The seed is every pixel brighter than `level` (in its largest blob); it is then
    turned upright as production crops are. With `side_px`, the crop covers a
    fixed `side_px` of the photograph, so a seed's size stays visible (a broken
    grain is smaller, a husked one larger); without it the seed's length fills the
    crop but for `margin`.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    fg = (grey > level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return _uint8(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    m = cv2.moments(mask, binaryImage=True)
    major, _, angle = ellipse_axes(m)
    length = max(major, 4.0)
    centre = (m["m10"] / m["m00"], m["m01"] / m["m00"])
    grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    seed = _uint8(cv2.bitwise_and(rgb, rgb, mask=grown))
    if side_px is not None:
        return _turn_and_scale(seed, centre, angle, side_px, size, 1.0)
    return _turn_and_scale(seed, centre, angle, float(length), size, margin)


def _turn_and_scale(
    seed: NDArray[np.uint8],
    centre: tuple[float, float],
    angle_rad: float,
    length_px: float,
    size: int,
    margin: float,
) -> NDArray[np.uint8]:
    """Rotate the long axis to vertical and fit `length * margin` into `size`."""
    scale = size / (length_px * margin)
    # Large reductions alias under bilinear warping: shrink by area first.
    if scale < 0.5:
        factor = int(1 / scale / 1.5) or 1
        if factor > 1:
            seed = _uint8(
                cv2.resize(
                    seed,
                    (max(seed.shape[1] // factor, 1), max(seed.shape[0] // factor, 1)),
                    interpolation=cv2.INTER_AREA,
                )
            )
            centre = (centre[0] / factor, centre[1] / factor)
            scale *= factor
    turn = np.degrees(angle_rad) - 90.0
    matrix = cv2.getRotationMatrix2D(centre, turn, scale)
    matrix[:, 2] += np.array([size / 2 - centre[0], size / 2 - centre[1]])
    return _uint8(
        cv2.warpAffine(
            seed, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
        )
    )


def _uint8(image: cv2.typing.MatLike) -> NDArray[np.uint8]:
    """Type an OpenCV result computed from uint8 input as what it is."""
    return cast(NDArray[np.uint8], image)
