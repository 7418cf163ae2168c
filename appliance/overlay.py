"""Overlay images: every seed outlined on the photograph, for people to check."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.segmentation import BORDER, CLUMP, SPECK, Segmentation

#: Outline colours (RGB) of regions by their first flag; clean seeds are blue.
FLAG_COLOURS: dict[str, tuple[int, int, int]] = {
    "": (30, 90, 255),
    BORDER: (150, 150, 150),
    CLUMP: (255, 0, 255),
    SPECK: (90, 90, 90),
}


def draw_overlay(
    rgb: NDArray[np.uint8],
    segmentation: Segmentation,
    *,
    colours: Mapping[int, tuple[int, int, int]] | None = None,
    numbers: Mapping[int, int] | None = None,
    thickness: int = 2,
) -> NDArray[np.uint8]:
    """Outline each region of `segmentation` on a copy of `rgb`.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The image the segmentation was made from.
    segmentation : Segmentation
        Its regions.
    colours : dict of label to RGB, optional
        Outline colour per region label; by flag (`FLAG_COLOURS`) by default.
    numbers : dict of label to int, optional
        A number written beside each region (the seed's index in the sample).
    thickness : int
        Outline width in pixels.
    """
    out = rgb.copy()
    labels = segmentation.labels
    lut = np.zeros((int(labels.max()) + 1, 3), np.uint8)
    for region in segmentation.regions:
        flag = region.flags[0] if region.flags else ""
        lut[region.label] = FLAG_COLOURS.get(flag, FLAG_COLOURS[""])
    for label, colour in (colours or {}).items():
        if 0 < label < len(lut):
            lut[label] = colour

    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(labels, kernel) != labels
    edge = cv2.dilate(inner.view(np.uint8), kernel, iterations=max(thickness - 1, 0))
    owner = cv2.dilate(labels, kernel, iterations=max(thickness - 1, 0))
    edge_mask = edge.view(bool) & (owner > 0)
    out[edge_mask] = lut[owner[edge_mask]]

    scale = max(rgb.shape[:2]) / 2000
    for region in segmentation.regions:
        if numbers is None or region.label not in numbers:
            continue
        y, x = region.centroid
        _label_text(out, str(numbers[region.label]), (int(x), int(y)), scale)
    return out


def _label_text(
    out: NDArray[np.uint8], text: str, centre: tuple[int, int], scale: float
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    size = 0.6 * max(scale, 0.4)
    (w, h), _ = cv2.getTextSize(text, font, size, 1)
    origin = (centre[0] - w // 2, centre[1] + h // 2)
    cv2.putText(out, text, origin, font, size, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(out, text, origin, font, size, (0, 0, 0), 1, cv2.LINE_AA)
