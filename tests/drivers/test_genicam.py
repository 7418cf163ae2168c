"""GenICam cameras through Harvesters, against the real producer viky.cti.

viky offers three simulated devices (serials 0, 1, 2) streaming RGBa8 or Mono8
images of 100 to 800 pixels a side at up to 200 frames per second. The one
stand-in is `UnpluggableAcquirer`, for a cable pulled out, which viky cannot do.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("harvesters")
gentl = pytest.importorskip("genicam.gentl")

from drivers.base import (  # noqa: E402
    Camera,
    CameraError,
    CameraLost,
    CameraNotFound,
    CameraSetupError,
    CameraTimeout,
    FrameFormatError,
)
from drivers.genicam import (  # noqa: E402
    CameraConfig,
    DeviceInfo,
    GenTLSession,
    open_session,
)
from drivers.genicam_rig import GenICamRig, genicam_rig  # noqa: E402
from drivers.producers import (  # noqa: E402
    ProducerNotFound,
    bundled_producer,
    find_producers,
)
from drivers.streaming import Acquirer, GenICamCamera, StreamTuning  # noqa: E402

if bundled_producer() is None:
    pytest.skip("the genicam package has no viky.cti", allow_module_level=True)

#: Small, fast frames keep the long tests short.
FAST = CameraConfig(width=100, height=100, frame_rate_hz=200.0)
QUICK_STALL = StreamTuning(stall_s=0.5, backoff_first_s=0.05, backoff_max_s=0.2)


@pytest.fixture(scope="module")
def session() -> Iterator[GenTLSession]:
    session = open_session()
    yield session
    session.release()


@pytest.fixture
def camera(session: GenTLSession) -> Iterator[GenICamCamera]:
    camera = GenICamCamera(session, "0", "top", config=FAST, tuning=QUICK_STALL)
    camera.open()
    yield camera
    camera.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# --- Producers and devices ---------------------------------------------------------


def test_bundled_viky_is_the_last_resort(tmp_path: Path) -> None:
    producers = find_producers(environ={})

    assert [p.source for p in producers] == ["bundled"]
    assert producers[0].path.name == "viky.cti"


def test_environment_producers_come_before_the_bundled_one(tmp_path: Path) -> None:
    (tmp_path / "vendor.cti").write_bytes(b"")

    producers = find_producers(environ={"GENICAM_GENTL64_PATH": str(tmp_path)})

    assert [(p.path.name, p.source) for p in producers] == [
        ("vendor.cti", "environment")
    ]


def test_a_producer_setting_naming_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProducerNotFound, match="not a .cti file"):
        find_producers(tmp_path / "missing.cti", environ={})


def test_viky_lists_three_devices(session: GenTLSession) -> None:
    devices = session.devices

    assert sorted(d.serial for d in devices) == ["0", "1", "2"]
    assert all(d.model == "Viky" and d.accessible for d in devices)
    assert all(d.user_name is None for d in devices)  # viky keeps no names


@pytest.mark.parametrize("ident", ["1", "VikyTL_DEV_green"], ids=["serial", "id"])
def test_camera_opens_by_serial_or_device_id(session: GenTLSession, ident: str) -> None:
    camera = GenICamCamera(session, ident, "bottom", config=FAST)

    camera.open()
    try:
        frame = camera.grab(timeout_s=2.0)
    finally:
        camera.close()

    assert isinstance(camera, Camera)
    assert camera.serial == "1"
    assert frame.serial == "1" and frame.view == "bottom"
    assert frame.pixels.shape == (100, 100, 3) and frame.pixels.dtype == np.uint8


def test_unknown_camera_names_the_connected_ones(session: GenTLSession) -> None:
    camera = GenICamCamera(session, "SN-404", "top")

    with pytest.raises(CameraNotFound, match=r"'SN-404'.*serial 0.*serial 2"):
        camera.open()


def test_the_same_device_twice_is_not_a_rig(session: GenTLSession) -> None:
    with pytest.raises(CameraNotFound, match="same device"):
        genicam_rig("0", "VikyTL_DEV_red", config=FAST)


# --- Configuration -----------------------------------------------------------------


def test_configuration_is_applied_and_read_back(
    session: GenTLSession, caplog: pytest.LogCaptureFixture
) -> None:
    config = CameraConfig(
        pixel_format="Mono8", width=160, height=120, frame_rate_hz=50.0, exposure_us=800
    )
    camera = GenICamCamera(session, "2", "top", config=config)

    with caplog.at_level(logging.WARNING):
        camera.open()
    try:
        frame = camera.grab(timeout_s=2.0)
    finally:
        camera.close()

    applied = camera.applied
    assert applied is not None
    assert (applied.pixel_format, applied.width, applied.height) == ("Mono8", 160, 120)
    assert applied.frame_rate_hz == pytest.approx(50.0)
    assert applied.exposure_us is None and applied.missing == ("exposure",)
    assert "camera 2 has no exposure feature" in caplog.text
    assert frame.pixels.shape == (120, 160, 3)
    assert np.array_equal(frame.pixels[..., 0], frame.pixels[..., 2])  # grey


def test_a_refused_value_says_what_is_allowed(session: GenTLSession) -> None:
    camera = GenICamCamera(session, "0", "top", config=CameraConfig(width=64))

    with pytest.raises(CameraSetupError, match=r"Width to 64 \(allowed 100 to 800\)"):
        camera.open()


def test_device_settings_are_saved_and_loaded(camera: GenICamCamera) -> None:
    saved = camera.device_settings()
    camera.configure(CameraConfig(width=300, height=200))

    skipped = camera.load_device_settings(saved)
    frame = camera.grab(timeout_s=2.0)

    assert saved["Width"] == 100 and saved["PixelFormat"] == "RGBa8"
    assert skipped == []
    assert frame.shape == (100, 100)


# --- Streaming ---------------------------------------------------------------------


def test_two_cameras_stream_together() -> None:
    rig = genicam_rig("0", "1", config=FAST)
    try:
        captures = [rig.capture(timeout_s=2.0) for _ in range(5)]
    finally:
        rig.close()

    assert rig.name == "genicam-0-1"
    for capture in captures:
        assert (capture.top.serial, capture.bottom.serial) == ("0", "1")
        assert capture.top.pixels.shape == capture.bottom.pixels.shape == (100, 100, 3)
        assert capture.top.metadata["pair_skew_ms"] < 1000
    times = [c.top.timestamp for c in captures]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_a_fetch_deadline_is_honoured(session: GenTLSession) -> None:
    config = CameraConfig(width=100, height=100, frame_rate_hz=1.0)
    camera = GenICamCamera(session, "0", "top", config=config)
    camera.open()
    try:
        camera.grab(timeout_s=3.0)  # the next frame is a second away now
        start = time.monotonic()
        with pytest.raises(CameraTimeout, match=r"camera 0 \(top\) delivered no"):
            camera.grab(timeout_s=0.1)
        waited = time.monotonic() - start
    finally:
        camera.close()

    assert waited < 0.6


class HangingAcquirer:
    """An acquirer whose fetch overruns its timeout, as producers sometimes do."""

    def __init__(self, real: Acquirer, release: threading.Event) -> None:
        self._real = real
        self._release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def try_fetch(self, *, timeout: float) -> Any:
        self._release.wait(5.0)
        return self._real.try_fetch(timeout=timeout)


def test_a_fetch_that_hangs_does_not_hang_the_caller(session: GenTLSession) -> None:
    release = threading.Event()
    camera = GenICamCamera(
        session,
        "0",
        "top",
        config=FAST,
        open_acquirer=lambda d: HangingAcquirer(session.open_acquirer(d), release),
    )
    camera.open()
    try:
        start = time.monotonic()
        with pytest.raises(CameraTimeout):
            camera.grab(timeout_s=0.2)
        waited = time.monotonic() - start
    finally:
        release.set()
        camera.close()

    assert waited < 1.0


def test_a_starved_stream_is_detected_and_recovered(
    camera: GenICamCamera, caplog: pytest.LogCaptureFixture
) -> None:
    held: list[Any] = []

    def hold_every_buffer(acquirer: Acquirer) -> int:
        while (buffer := acquirer.try_fetch(timeout=0.2)) is not None:
            held.append(buffer)
        return len(held)

    with caplog.at_level(logging.INFO, logger="drivers"):
        n_held = camera.run_on_acquirer(hold_every_buffer)
        frame = camera.grab(timeout_s=5.0)
    held.clear()

    assert n_held == FAST.num_buffers
    assert "stream starved" in caplog.text
    assert "reopening it by serial" in caplog.text
    assert "camera 0 recovered after 1 attempt(s)" in caplog.text
    assert camera.stats.rebuilds == 1 and camera.fault is None
    assert frame.shape == (100, 100)


def test_an_acquirer_made_obsolete_by_update_is_rebuilt(
    camera: GenICamCamera, session: GenTLSession, caplog: pytest.LogCaptureFixture
) -> None:
    camera.grab(timeout_s=2.0)

    with caplog.at_level(logging.WARNING, logger="drivers"):
        session.rediscover()
        frame = camera.grab(timeout_s=5.0)

    assert "made obsolete by a device rediscovery" in caplog.text
    assert camera.stats.rebuilds == 1
    assert camera.applied is not None and camera.applied.width == 100
    assert frame.shape == (100, 100)


def test_a_format_change_mid_stream_is_rejected(camera: GenICamCamera) -> None:
    def change_format(acquirer: Acquirer) -> None:
        acquirer.remote_device.node_map.PixelFormat.value = "Mono8"

    camera.grab(timeout_s=2.0)
    camera.run_on_acquirer(change_format)

    with pytest.raises(FrameFormatError, match=r"sent a Mono8 100x100 frame.*RGBa8"):
        for _ in range(10):  # buffers filled before the change are still RGBa8
            camera.grab(timeout_s=2.0)
    assert camera.stats.rejected == 1

    camera.close()
    camera.open()
    assert camera.grab(timeout_s=2.0).shape == (100, 100)


def test_two_hundred_start_stop_cycles(camera: GenICamCamera) -> None:
    camera.grab(timeout_s=2.0)
    gc.collect()
    rss_before = _rss_mb()

    for _ in range(200):
        camera.stop()
        camera.start()
        frame = camera.grab(timeout_s=2.0)
    gc.collect()

    assert frame.shape == (100, 100)
    assert camera.stats.rebuilds == 0 and camera.stats.delivered == 201
    assert _rss_mb() - rss_before < 20


def test_a_stopped_camera_refuses_to_grab(camera: GenICamCamera) -> None:
    camera.stop()

    with pytest.raises(CameraError, match="camera 0 is stopped; call start"):
        camera.grab(timeout_s=0.5)


def test_open_close_cycles_leave_no_threads_behind(session: GenTLSession) -> None:
    camera = GenICamCamera(session, "2", "top", config=FAST)
    threads_before = threading.active_count()

    for _ in range(10):
        camera.open()
        frame = camera.grab(timeout_s=2.0)
        camera.close()

    assert frame.shape == (100, 100)
    assert threading.active_count() == threads_before
    assert len(session.devices) == 3


def test_a_thousand_frame_soak_keeps_memory_flat() -> None:
    rig = genicam_rig("0", "1", config=FAST)
    try:
        for _ in range(25):  # warm the allocator before measuring
            rig.capture(timeout_s=2.0)
        gc.collect()
        rss_before = _rss_mb()
        for _ in range(500):  # 1,000 frames: 500 from each camera
            rig.capture(timeout_s=2.0)
        gc.collect()
        growth = _rss_mb() - rss_before
        stats = [camera.stats for camera in (rig.top_camera, rig.bottom_camera)]
    finally:
        rig.close()

    assert growth < 20, f"resident memory grew {growth:.1f} MB"
    for s in stats:
        assert s.delivered == 525 and s.rejected == 0 and s.rebuilds == 0


# --- A pulled cable, through a stand-in --------------------------------------------


class Cable:
    """Whether the stand-in's camera is connected."""

    def __init__(self) -> None:
        self.plugged = True


class UnpluggableAcquirer:
    """A real acquirer whose fetches fail like a GigE camera's pulled cable."""

    def __init__(self, real: Acquirer, cable: Cable) -> None:
        self._real = real
        self._cable = cable

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def try_fetch(self, *, timeout: float) -> Any:
        if not self._cable.plugged:
            raise gentl.IoException("the device does not answer")
        return self._real.try_fetch(timeout=timeout)


def _through(cable: Cable, session: GenTLSession) -> Any:
    def open_acquirer(device: DeviceInfo) -> Acquirer:
        if not cable.plugged:
            raise CameraNotFound(f"camera {device.serial} is not connected")
        return UnpluggableAcquirer(session.open_acquirer(device), cable)

    return open_acquirer


def _wait_for_fault(camera: GenICamCamera) -> None:
    deadline = time.monotonic() + 3.0
    while camera.fault is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert camera.fault is not None


def test_an_unplugged_camera_is_reported_lost_then_recovers(
    session: GenTLSession, caplog: pytest.LogCaptureFixture
) -> None:
    cable = Cable()
    camera = GenICamCamera(
        session,
        "0",
        "top",
        config=FAST,
        tuning=QUICK_STALL,
        open_acquirer=_through(cable, session),
    )
    camera.open()
    try:
        camera.grab(timeout_s=2.0)
        cable.plugged = False
        _wait_for_fault(camera)
        with (
            caplog.at_level(logging.WARNING, logger="drivers"),
            pytest.raises(CameraLost, match=r"camera 0 \(top\) is lost: IoException"),
        ):
            camera.grab(timeout_s=1.0)
        cable.plugged = True
        frame = camera.grab(timeout_s=5.0)
    finally:
        camera.close()

    attempts = [r for r in caplog.records if "reconnection attempt" in r.message]
    assert len(attempts) >= 2
    assert "not connected" in attempts[0].message
    assert frame.shape == (100, 100) and camera.stats.rebuilds == 1


def test_a_capture_loses_its_camera_and_nothing_is_saved(
    session: GenTLSession, tmp_path: Path
) -> None:
    from appliance.rigs import RigHandle
    from appliance.samples import SampleInfo, capture_sample
    from appliance.store import Database, ImageStore, list_samples

    cable = Cable()
    cameras = [
        GenICamCamera(session, serial, view, config=FAST, open_acquirer=opener)
        for serial, view, opener in (
            ("0", "top", session.open_acquirer),
            ("1", "bottom", _through(cable, session)),
        )
    ]
    acquired = GenTLSession.acquire(session.producers)  # the rig releases it
    rig = GenICamRig(cameras[0], cameras[1], acquired, name="genicam-0-1")
    rig.open()
    db = Database.open(f"sqlite:///{tmp_path / 'seedqa.db'}")
    images = ImageStore(tmp_path / "images")
    info = SampleInfo.create(lot="L-1", code="S-1", recipe="maize", operator="Ann")
    try:
        cable.plugged = False
        _wait_for_fault(cameras[1])
        with pytest.raises(CameraLost, match="camera 1 .bottom. is lost"):
            capture_sample(
                RigHandle("genicam", rig),
                (1, None),  # type: ignore[arg-type]  # never reached: no frames
                db,
                images,
                info,
                classifier=None,
                recipe=None,
                ask=lambda message: None,
            )
        n_samples = len(list_samples(db))
    finally:
        rig.close()
        db.close()

    assert n_samples == 0
    assert not any((tmp_path / "images").rglob("*.png"))
