"""Replay cameras: image files delivered as frames, in order, as RGB."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.base import Camera, CameraError, DualRig, FrameFormatError
from drivers.replay import ReplayCamera, replay_rig

SHAPE = (20, 24)


def _grey_png(path: Path, level: int) -> Path:
    assert cv2.imwrite(str(path), np.full(SHAPE, level, np.uint8))
    return path


def test_replay_camera_meets_the_camera_protocol(tmp_path: Path) -> None:
    camera = ReplayCamera([_grey_png(tmp_path / "a.png", 10)], "top")

    assert isinstance(camera, Camera)
    assert camera.serial == "REPLAY-TOP"
    assert camera.view == "top"


def test_frames_come_from_the_files_in_order_then_cycle(tmp_path: Path) -> None:
    levels = [10, 100, 200]
    paths = [_grey_png(tmp_path / f"{i}.png", v) for i, v in enumerate(levels)]
    camera = ReplayCamera(paths, "bottom", serial="B-1")
    camera.open()

    frames = [camera.grab() for _ in range(5)]

    assert [int(f.pixels[0, 0, 0]) for f in frames] == [10, 100, 200, 10, 100]
    assert [f.metadata["path"] for f in frames] == [str(p) for p in paths + paths[:2]]
    assert all(f.serial == "B-1" and f.view == "bottom" for f in frames)
    assert all(f.pixels.shape == (*SHAPE, 3) for f in frames)


def test_pixels_are_delivered_in_rgb_order(tmp_path: Path) -> None:
    bgr = np.full((*SHAPE, 3), 128, np.uint8)
    bgr[3, 5] = (0, 0, 255)  # red, in OpenCV's BGR order
    bgr[7, 2] = (255, 0, 0)  # blue
    path = tmp_path / "colour.png"
    assert cv2.imwrite(str(path), bgr)

    frame = ReplayCamera([path], "top").grab()

    assert frame.pixels.dtype == np.uint8
    assert frame.pixels[3, 5].tolist() == [255, 0, 0]
    assert frame.pixels[7, 2].tolist() == [0, 0, 255]
    assert frame.pixels[0, 0].tolist() == [128, 128, 128]


def test_frame_timestamp_is_the_file_time_in_utc(tmp_path: Path) -> None:
    path = _grey_png(tmp_path / "a.png", 50)
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    os.utime(path, (when.timestamp(), when.timestamp()))

    frame = ReplayCamera([path], "top").grab()

    assert frame.timestamp == when
    assert frame.timestamp.tzinfo is not None
    assert frame.exposure_us == 0.0


def test_a_camera_needs_at_least_one_file() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReplayCamera([], "top")


def test_open_raises_camera_error_for_a_missing_file(tmp_path: Path) -> None:
    present = _grey_png(tmp_path / "a.png", 10)
    camera = ReplayCamera([present, tmp_path / "gone.png"], "top")

    with pytest.raises(CameraError, match="gone.png"):
        camera.open()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            np.random.default_rng(5).integers(0, 256, 2048, np.uint8).tobytes(),
            id="random-bytes",
        ),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, id="truncated-png"),
    ],
)
def test_grab_raises_frame_format_error_for_an_unreadable_file(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    camera = ReplayCamera([path], "top")
    camera.open()

    with pytest.raises(FrameFormatError, match="broken.png"):
        camera.grab()


def test_grab_raises_frame_format_error_for_a_too_small_image(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    assert cv2.imwrite(str(path), np.full((8, 8), 90, np.uint8))

    with pytest.raises(FrameFormatError, match="too small"):
        ReplayCamera([path], "top").grab()


def test_grab_raises_camera_error_for_a_file_removed_after_open(
    tmp_path: Path,
) -> None:
    path = _grey_png(tmp_path / "a.png", 10)
    camera = ReplayCamera([path], "top")
    camera.open()
    path.unlink()

    with pytest.raises(CameraError, match="a.png"):
        camera.grab()


def test_replay_rig_captures_the_top_and_bottom_files(tmp_path: Path) -> None:
    top = _grey_png(tmp_path / "top.png", 60)
    bottom = _grey_png(tmp_path / "bottom.png", 180)

    rig = replay_rig([top], [bottom])
    with rig:
        capture = rig.capture()

    assert isinstance(rig, DualRig)
    assert rig.name == "replay"
    assert capture.top.view == "top"
    assert capture.bottom.view == "bottom"
    assert capture.frame("top") is capture.top
    assert (capture.top.serial, capture.bottom.serial) == (
        "REPLAY-TOP",
        "REPLAY-BOTTOM",
    )
    assert int(capture.top.pixels[0, 0, 0]) == 60
    assert int(capture.bottom.pixels[0, 0, 0]) == 180


def test_replay_rig_open_fails_when_the_bottom_file_is_missing(tmp_path: Path) -> None:
    rig = replay_rig([_grey_png(tmp_path / "top.png", 60)], [tmp_path / "none.png"])

    with pytest.raises(CameraError, match="none.png"):
        rig.open()
