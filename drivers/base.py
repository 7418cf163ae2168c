"""The camera contract every driver meets: `Frame`, `Camera` and `DualRig`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

View = Literal["top", "bottom"]
VIEWS: tuple[View, View] = ("top", "bottom")


class CameraError(RuntimeError):
    """A camera could not deliver what was asked of it."""


class CameraTimeout(CameraError):
    """No frame arrived before the deadline."""


class FrameFormatError(CameraError):
    """A frame's pixels are not the size, dtype or layout expected."""


class CameraSetupError(CameraError):
    """The camera setup is wrong: a missing driver file, a bad ID or setting."""


class CameraNotFound(CameraSetupError):
    """No connected camera answers to the identifier given."""


class CameraLost(CameraError):
    """A camera stopped answering while it was in use."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One image from one camera.

    Attributes
    ----------
    pixels : (H, W, 3) uint8 ndarray
        RGB pixels, row 0 at the top of the image.
    serial : str
        Serial number of the camera that took it.
    view : {"top", "bottom"}
        Which side of the plate the camera looks at.
    timestamp : datetime
        When the exposure happened (timezone-aware, UTC).
    exposure_us : float
        Exposure time in microseconds.
    """

    pixels: NDArray[np.uint8]
    serial: str
    view: View
    timestamp: datetime
    exposure_us: float
    metadata: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_rgb8(self.pixels, what=f"frame from camera {self.serial}")

    @property
    def shape(self) -> tuple[int, int]:
        """Image size as (height, width) in pixels."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def check_rgb8(pixels: NDArray[np.generic], *, what: str) -> None:
    """Raise `FrameFormatError` unless `pixels` is an (H, W, 3) uint8 array."""
    if not isinstance(pixels, np.ndarray):
        raise FrameFormatError(f"{what}: expected a numpy array, got {type(pixels)}")
    if pixels.dtype != np.uint8:
        raise FrameFormatError(f"{what}: expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise FrameFormatError(
            f"{what}: expected an (H, W, 3) RGB array, got shape {pixels.shape}"
        )
    if pixels.shape[0] < 16 or pixels.shape[1] < 16:
        raise FrameFormatError(f"{what}: image {pixels.shape[:2]} is too small")


@runtime_checkable
class Camera(Protocol):
    """A camera that delivers RGB frames on request."""

    @property
    def serial(self) -> str:
        """Serial number (or another stable identifier) of the device."""
        ...

    @property
    def view(self) -> View:
        """Which side of the plate this camera sees."""
        ...

    def open(self) -> None:
        """Connect to the device and make it ready to grab."""
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...

    def grab(self, *, timeout_s: float = 5.0) -> Frame:
        """Return the next frame, or raise `CameraTimeout` after `timeout_s`."""
        ...


@dataclass(frozen=True)
class RigCapture:
    """The top and bottom frames of one capture request."""

    top: Frame
    bottom: Frame

    def frame(self, view: View) -> Frame:
        """Return the frame of `view`."""
        return self.top if view == "top" else self.bottom


class DualRig:
    """A top and a bottom camera used together.

    Parameters
    ----------
    top, bottom : Camera
        The camera above and the camera below the plate.
    name : str
        A name for the rig, used in logs and stored with samples.
    """

    def __init__(self, top: Camera, bottom: Camera, *, name: str = "rig") -> None:
        if top.view != "top" or bottom.view != "bottom":
            raise ValueError(
                f"rig {name!r}: cameras must be (top, bottom), got "
                f"({top.view}, {bottom.view})"
            )
        self.top = top
        self.bottom = bottom
        self.name = name

    def __enter__(self) -> DualRig:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open both cameras; if the second fails, close the first."""
        self.top.open()
        try:
            self.bottom.open()
        except Exception:
            self.top.close()
            raise
        log.info(
            "rig %s open: top %s, bottom %s",
            self.name,
            self.top.serial,
            self.bottom.serial,
        )

    def close(self) -> None:
        """Close both cameras."""
        self.top.close()
        self.bottom.close()

    def capture(self, *, timeout_s: float = 5.0) -> RigCapture:
        """Grab one frame from each camera, top first."""
        top = self.top.grab(timeout_s=timeout_s)
        bottom = self.bottom.grab(timeout_s=timeout_s)
        return RigCapture(top=top, bottom=bottom)
