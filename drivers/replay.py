"""Cameras that replay image files: top/bottom pairs captured earlier, or elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.base import CameraError, DualRig, Frame, FrameFormatError, View

log = logging.getLogger(__name__)


class ReplayCamera:
    """A camera whose frames are image files, returned in order, then again.

    Parameters
    ----------
    paths : sequence of Path
        Image files (PNG, JPEG, TIFF, BMP), read when grabbed.
    view : {"top", "bottom"}
        Which side of the plate the images show.
    serial : str, optional
        Reported serial; by default ``REPLAY-TOP`` or ``REPLAY-BOTTOM``.
    """

    def __init__(
        self, paths: Sequence[Path], view: View, *, serial: str | None = None
    ) -> None:
        if not paths:
            raise ValueError("a replay camera needs at least one image file")
        self._paths = [Path(p) for p in paths]
        self._view: View = view
        self._serial = serial or f"REPLAY-{view.upper()}"
        self._next = 0

    @property
    def serial(self) -> str:
        """Reported serial."""
        return self._serial

    @property
    def view(self) -> View:
        """Which side of the plate the images show."""
        return self._view

    def open(self) -> None:
        """Check that every file exists."""
        missing = [str(p) for p in self._paths if not p.is_file()]
        if missing:
            raise CameraError(
                f"replay camera {self._serial}: no such file {missing[0]}"
            )

    def close(self) -> None:
        """Nothing to release."""

    def grab(self, *, timeout_s: float = 5.0) -> Frame:
        """Read the next file as a frame."""
        path = self._paths[self._next % len(self._paths)]
        self._next += 1
        try:
            data = np.fromfile(path, np.uint8)
        except OSError as exc:
            raise CameraError(
                f"replay camera {self._serial}: cannot read {path}: {exc}"
            ) from exc
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise FrameFormatError(f"{path} is not a readable image (corrupt or empty)")
        log.debug("replay camera %s: %s", self._serial, path)
        rgb = cast(NDArray[np.uint8], cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return Frame(
            pixels=rgb,
            serial=self._serial,
            view=self._view,
            timestamp=datetime.fromtimestamp(path.stat().st_mtime, UTC),
            exposure_us=0.0,
            metadata={"path": str(path)},
        )


def replay_rig(top: Sequence[Path], bottom: Sequence[Path]) -> DualRig:
    """Make a `DualRig` that replays pairs of image files."""
    return DualRig(
        ReplayCamera(top, "top"), ReplayCamera(bottom, "bottom"), name="replay"
    )
