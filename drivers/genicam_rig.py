"""A rig of two GenICam cameras over one GenTL session, captured together."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from drivers.base import CameraNotFound, DualRig, RigCapture
from drivers.genicam import CameraConfig, DeviceInfo, GenTLSession, open_session
from drivers.streaming import GenICamCamera, StreamTuning

log = logging.getLogger(__name__)


class GenICamRig(DualRig):
    """Two GenICam cameras over one GenTL session; the rig releases the session.

    `capture` asks both cameras at once, so the two frames are taken as close
    together as the devices allow: on a software trigger fired for both, or the
    next frame of each free-running stream after the request.
    """

    def __init__(
        self,
        top: GenICamCamera,
        bottom: GenICamCamera,
        session: GenTLSession,
        *,
        name: str,
    ) -> None:
        super().__init__(top, bottom, name=name)
        self.top_camera = top
        self.bottom_camera = bottom
        self._session: GenTLSession | None = session

    def close(self) -> None:
        """Close both cameras, then give the GenTL session back."""
        super().close()
        session, self._session = self._session, None
        if session is not None:
            session.release()

    def capture(self, *, timeout_s: float = 5.0) -> RigCapture:
        """Take one frame from each camera, requested together.

        Each frame's metadata holds ``latency_ms`` (request to frame) and
        ``pair_skew_ms`` (between the two frames' arrival).

        Raises
        ------
        CameraTimeout, CameraLost, FrameFormatError
            As `GenICamCamera.grab`; no frame of the pair is returned then.
        """
        deadline = time.monotonic() + timeout_s
        top_cam, bottom_cam = self.top_camera, self.bottom_camera
        requests = (top_cam.request(), bottom_cam.request())
        top = top_cam.wait(requests[0], deadline)
        bottom = bottom_cam.wait(requests[1], deadline)
        skew_ms = abs((top.timestamp - bottom.timestamp).total_seconds()) * 1000.0
        log.debug("rig %s captured, skew %.1f ms", self.name, skew_ms)
        return RigCapture(
            top=replace(top, metadata={**top.metadata, "pair_skew_ms": skew_ms}),
            bottom=replace(
                bottom, metadata={**bottom.metadata, "pair_skew_ms": skew_ms}
            ),
        )


def genicam_rig(
    top: str,
    bottom: str,
    *,
    producer: Path | None = None,
    config: CameraConfig | None = None,
    tuning: StreamTuning | None = None,
) -> GenICamRig:
    """Open a rig of two GenICam cameras, streaming, named after their serials.

    Parameters
    ----------
    top, bottom : str
        Serial number, device ID or user-defined name of each camera.
    producer : Path, optional
        GenTL producer file or folder; by default as `find_producers` chooses.
    config : CameraConfig, optional
        Features set on both cameras.
    tuning : StreamTuning, optional
        Fetch slice, stall and backoff times.

    Raises
    ------
    CameraNotFound
        If a camera is not connected, or both names are the same device.
    ProducerNotFound
        If no GenTL producer is found.
    """
    session = open_session(producer)
    try:
        top_device, bottom_device = session.find(top), session.find(bottom)
        if top_device.id == bottom_device.id:
            raise CameraNotFound(
                f"the top and the bottom camera are the same device "
                f"({top_device.describe()}); name two different cameras"
            )
        rig = GenICamRig(
            GenICamCamera(
                session, top_device.serial, "top", config=config, tuning=tuning
            ),
            GenICamCamera(
                session, bottom_device.serial, "bottom", config=config, tuning=tuning
            ),
            session,
            name=_rig_name(top_device, bottom_device),
        )
    except BaseException:
        session.release()
        raise
    try:
        rig.open()
    except BaseException:
        rig.close()
        raise
    return rig


def _rig_name(top: DeviceInfo, bottom: DeviceInfo) -> str:
    """Name a rig after its cameras, in characters safe for a folder name."""

    def safe(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)

    return f"genicam-{safe(top.serial or top.id)}-{safe(bottom.serial or bottom.id)}"
