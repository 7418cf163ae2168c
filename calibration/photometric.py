"""Flat-field and white-balance correction from a capture of the empty plate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: Grey level the empty plate is corrected to, in every channel.
PLATE_LEVEL = 235.0


class BlankPlateError(ValueError):
    """A flat-field capture is not an evenly lit, empty plate."""


@dataclass(frozen=True, eq=False)
class FlatField:
    """Per-pixel, per-channel gains that make the empty plate flat and neutral.

    Attributes
    ----------
    gain : (h, w, 3) float32 ndarray
        Gains at reduced resolution (1/8 of the image), interpolated on use.
    image_size : (width, height)
        Size of the images the gains apply to.
    """

    gain: NDArray[np.float32]
    image_size: tuple[int, int]

    def apply(self, rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Correct an (H, W, 3) uint8 image; returns a new uint8 image."""
        h, w = rgb.shape[:2]
        if (w, h) != self.image_size:
            raise ValueError(
                f"flat field is for {self.image_size[0]}x{self.image_size[1]} images, "
                f"got {w}x{h}; recalibrate after changing the camera's resolution"
            )
        gain = cv2.resize(self.gain, (w, h), interpolation=cv2.INTER_LINEAR)
        return cast(NDArray[np.uint8], cv2.multiply(rgb, gain, dtype=cv2.CV_8U))

    @property
    def falloff(self) -> float:
        """How uneven the light was: 1 - (dimmest / brightest), 0 for perfect."""
        inv = 1.0 / self.gain.mean(axis=2)
        return float(1.0 - inv.min() / inv.max())


def estimate_flat_field(blank: NDArray[np.uint8]) -> FlatField:
    """Gains from one capture of the empty, lit plate.

    Parameters
    ----------
    blank : (H, W, 3) uint8 ndarray
        The empty plate.

    Raises
    ------
    BlankPlateError
        If the plate is too dark, saturated, or not empty (dark objects on it).
    """
    h, w = blank.shape[:2]
    small = cv2.resize(blank, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    grey = small.mean(axis=2)
    if np.mean(small.max(axis=2) >= 254) > 0.01:
        raise BlankPlateError(
            "the blank plate is saturated; lower the exposure or the light and "
            "capture it again"
        )
    if np.median(grey) < 60:
        raise BlankPlateError(
            f"the blank plate is too dark (median grey {np.median(grey):.0f}); "
            "check the light and the exposure"
        )
    smooth = cv2.GaussianBlur(small, (0, 0), 4.0)
    local = grey / np.maximum(smooth.mean(axis=2), 1)
    if np.mean(local < 0.8) > 0.001:
        raise BlankPlateError(
            "the blank plate is not empty: dark objects were found on it; clear and "
            "clean the plate, then capture it again"
        )
    gain = (PLATE_LEVEL / np.maximum(smooth, 1.0)).astype(np.float32)
    field = FlatField(gain=gain, image_size=(w, h))
    log.debug("flat field estimated: falloff %.1f%%", 100 * field.falloff)
    return field
