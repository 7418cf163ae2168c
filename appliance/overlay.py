"""Overlay images: every seed outlined on the photograph, for people to check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.segmentation import BORDER, CLUMP, SPECK, Segmentation

if TYPE_CHECKING:
    from appliance.inspection import Inspection
    from drivers.base import View

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


#: Outline colours (RGB) of the usual classes; other classes take `PALETTE`.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "pure": (40, 170, 60),
    "grain": (40, 170, 60),
    "broken": (230, 30, 30),
    "grain_broken": (230, 30, 30),
    "discolored": (120, 60, 20),
    "damaged_grain": (120, 60, 20),
    "silkcut": (200, 0, 200),
    "foreign_particles": (0, 120, 230),
    "grain_covered": (240, 160, 0),
}
PALETTE = ((0, 160, 160), (100, 100, 255), (255, 120, 0), (0, 0, 0))


def class_colour(name: str, classes: tuple[str, ...]) -> tuple[int, int, int]:
    """Return the outline colour of a class."""
    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    return (
        PALETTE[classes.index(name) % len(PALETTE)] if name in classes else PALETTE[-1]
    )


def seed_overlay_styles(inspection: Inspection, view: View) -> dict[str, Any]:
    """Return `draw_overlay` keywords: seeds in class colours, numbered by index."""
    colours: dict[int, tuple[int, int, int]] = {}
    numbers: dict[int, int] = {}
    for seed in inspection.seeds:
        region = seed.pair.top if view == "top" else seed.pair.bottom
        if region is None:
            continue
        numbers[region.label] = seed.index
        name = inspection.fused_class(seed)
        if name is not None:
            colours[region.label] = class_colour(name, inspection.classes)
    return {"colours": colours, "numbers": numbers}


def _label_text(
    out: NDArray[np.uint8], text: str, centre: tuple[int, int], scale: float
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    size = 0.6 * max(scale, 0.4)
    (w, h), _ = cv2.getTextSize(text, font, size, 1)
    origin = (centre[0] - w // 2, centre[1] + h // 2)
    cv2.putText(out, text, origin, font, size, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(out, text, origin, font, size, (0, 0, 0), 1, cv2.LINE_AA)


def boxed_view(
    rgb: NDArray[Any],
    seeds: Sequence[Mapping[str, Any]],
    view: str,
    classes: tuple[str, ...],
    *,
    side_px: int = 1000,
) -> NDArray[np.uint8]:
    """Shrink a stored view and box each seed of a report in its class's colour.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The stored capture of `view`.
    seeds : sequence of dict
        The ``seeds`` of a stored report; an amended seed (one with a
        ``measured_class``) gets a thicker box.
    view : {"top", "bottom"}
        Which view `rgb` is.
    classes : tuple of str
        The model's classes, for the colours of classes without a fixed one.
    side_px : int
        Longer side of the returned image, pixels.
    """
    scale = side_px / max(rgb.shape[:2])
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for seed in seeds:
        region = seed.get(view)
        if not region or not seed.get("fused_class"):
            continue
        x, y, w, h = (int(round(v * scale)) for v in region["bbox"])
        colour = class_colour(seed["fused_class"], classes)
        thickness = 3 if "measured_class" in seed else 2
        cv2.rectangle(small, (x, y), (x + w, y + h), colour, thickness)
    return small.astype(np.uint8, copy=False)
