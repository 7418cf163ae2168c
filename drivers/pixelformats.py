"""GenICam pixel formats turned into the pipeline's colour format, RGB8.

Every function here copies: the array it returns owns its pixels, so the buffer
it was read from can go back to the camera as soon as the call returns.
"""

from __future__ import annotations

import logging
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.base import FrameFormatError

log = logging.getLogger(__name__)

#: Bytes per pixel of each supported pixel format (names as the SFNC spells them).
BYTES_PER_PIXEL: dict[str, int] = {
    "Mono8": 1,
    "RGB8": 3,
    "BGR8": 3,
    "RGBa8": 4,
    "BGRa8": 4,
    "BayerRG8": 1,
    "BayerGR8": 1,
    "BayerGB8": 1,
    "BayerBG8": 1,
}

# OpenCV names a Bayer pattern by the second row's two middle pixels, so its codes
# are shifted one step against GenICam's names, which give the first row's first two.
_DEMOSAIC = {
    "BayerRG8": cv2.COLOR_BayerBG2RGB,
    "BayerGR8": cv2.COLOR_BayerGB2RGB,
    "BayerGB8": cv2.COLOR_BayerGR2RGB,
    "BayerBG8": cv2.COLOR_BayerRG2RGB,
}

_INTERLEAVED = {
    "BGR8": cv2.COLOR_BGR2RGB,
    "RGBa8": cv2.COLOR_RGBA2RGB,
    "BGRa8": cv2.COLOR_BGRA2RGB,
}

SUPPORTED_FORMATS: tuple[str, ...] = tuple(BYTES_PER_PIXEL)


def to_rgb8(
    data: NDArray[np.uint8], *, width: int, height: int, pixel_format: str
) -> NDArray[np.uint8]:
    """Convert one buffer's pixels to a new (H, W, 3) RGB8 array.

    Parameters
    ----------
    data : (N,) uint8 ndarray
        The buffer's image data, row by row without padding; it is only read.
    width, height : int
        Image size in pixels, as the buffer reports it.
    pixel_format : str
        The buffer's pixel format, one of `SUPPORTED_FORMATS`.

    Returns
    -------
    (height, width, 3) uint8 ndarray
        RGB pixels in memory of their own.

    Raises
    ------
    FrameFormatError
        If the format is not supported or the data does not hold
        ``width * height`` pixels of it.
    """
    if pixel_format not in BYTES_PER_PIXEL:
        raise FrameFormatError(
            f"pixel format {pixel_format} is not supported; set the camera to one "
            f"of {', '.join(SUPPORTED_FORMATS)}"
        )
    channels = BYTES_PER_PIXEL[pixel_format]
    expected = width * height * channels
    if data.dtype != np.uint8 or data.size != expected:
        raise FrameFormatError(
            f"a {width}x{height} {pixel_format} buffer should hold {expected} bytes, "
            f"got {data.size} of {data.dtype}"
        )

    if channels == 1:
        plane = data.reshape(height, width)
        if pixel_format == "Mono8":
            return cast(NDArray[np.uint8], cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB))
        return cast(NDArray[np.uint8], cv2.cvtColor(plane, _DEMOSAIC[pixel_format]))
    pixels = data.reshape(height, width, channels)
    if pixel_format == "RGB8":
        return pixels.copy()
    # OpenCV's vectorised conversions: a strided numpy copy that drops or swaps
    # channels is about ten times slower (bench/acquisition.py).
    return cast(NDArray[np.uint8], cv2.cvtColor(pixels, _INTERLEAVED[pixel_format]))
