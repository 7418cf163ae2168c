"""Reading and writing image files with errors a user can act on."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.segmentation import InvalidImage, as_rgb8
from appliance.store.images import encode_png

log = logging.getLogger(__name__)


class ImageFileError(ValueError):
    """An image file is missing, unreadable or not an image."""


def read_rgb(path: Path) -> NDArray[np.uint8]:
    """Read an image file as (H, W, 3) uint8 RGB.

    8- and 16-bit PNG, JPEG, TIFF and BMP are read; 16-bit images are scaled down.

    Raises
    ------
    ImageFileError
        If the file is missing, empty, corrupt or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"no image file at {path}")
    data = np.fromfile(path, np.uint8)
    if data.size == 0:
        raise ImageFileError(f"{path} is empty")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageFileError(
            f"{path} is not a readable image (corrupt or unknown format)"
        )
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    try:
        return as_rgb8(image)
    except InvalidImage as exc:
        raise ImageFileError(f"{path}: {exc}") from exc


def write_png(path: Path, image: NDArray[np.uint8] | NDArray[np.uint16]) -> None:
    """Write an (H, W, 3) uint8 RGB or (H, W) uint8/uint16 array as a PNG file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))
    log.debug("wrote %s", path)
