"""Every supported GenICam pixel format becomes the same RGB8 picture."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import FrameFormatError
from drivers.pixelformats import SUPPORTED_FORMATS, to_rgb8

#: Which colour each pixel of a 2x2 Bayer tile samples, as GenICam names them.
TILES = {
    "BayerRG8": "RGGB",
    "BayerGR8": "GRBG",
    "BayerGB8": "GBRG",
    "BayerBG8": "BGGR",
}


def _scene() -> np.ndarray:
    """A 32x48 picture of one flat orange."""
    rgb = np.empty((32, 48, 3), np.uint8)
    rgb[:, :] = (200, 120, 40)
    return rgb


def _encode(rgb: np.ndarray, pixel_format: str) -> np.ndarray:
    """Lay out `rgb` as a camera buffer of `pixel_format`, flat."""
    if pixel_format == "Mono8":
        return rgb[..., 1].copy().ravel()
    if pixel_format == "RGB8":
        return rgb.ravel().copy()
    if pixel_format == "BGR8":
        return rgb[..., ::-1].ravel().copy()
    if pixel_format in ("RGBa8", "BGRa8"):
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        colour = rgb if pixel_format == "RGBa8" else rgb[..., ::-1]
        return np.concatenate([colour, alpha], axis=2).ravel()
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for k, colour in enumerate(TILES[pixel_format]):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(colour)]
    return mosaic.ravel()


@pytest.mark.parametrize("pixel_format", SUPPORTED_FORMATS)
def test_each_format_decodes_to_the_scene(pixel_format: str) -> None:
    scene = _scene()
    data = _encode(scene, pixel_format)

    rgb = to_rgb8(data, width=48, height=32, pixel_format=pixel_format)

    expected = scene if pixel_format != "Mono8" else np.repeat(scene[..., 1:2], 3, 2)
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(rgb[inner].astype(int) - expected[inner]).max() <= 2


@pytest.mark.parametrize("pixel_format", SUPPORTED_FORMATS)
def test_the_result_owns_its_pixels(pixel_format: str) -> None:
    data = _encode(_scene(), pixel_format)

    rgb = to_rgb8(data, width=48, height=32, pixel_format=pixel_format)
    data[:] = 0  # the buffer goes back to the camera and is overwritten

    assert not np.shares_memory(rgb, data)
    assert rgb.max() > 0


def test_a_short_buffer_is_refused_with_its_size() -> None:
    with pytest.raises(FrameFormatError, match="should hold 6144 bytes, got 6000"):
        to_rgb8(np.zeros(6000, np.uint8), width=64, height=32, pixel_format="RGB8")


def test_an_unsupported_format_names_the_supported_ones() -> None:
    with pytest.raises(FrameFormatError, match="Mono12 is not supported.*Mono8"):
        to_rgb8(np.zeros(100, np.uint8), width=10, height=10, pixel_format="Mono12")
