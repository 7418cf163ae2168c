"""Opening the rig the settings name: the simulated bench or two GenICam cameras."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from appliance.rigs import open_rig
from appliance.settings import Settings
from drivers.base import CameraSetupError


def _settings(tmp_path: Path, **fields: object) -> Settings:
    base = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/s.db")
    return replace(base, **fields)  # type: ignore[arg-type]


def test_the_configured_genicam_rig_opens_and_asks_the_operator(
    tmp_path: Path,
) -> None:
    pytest.importorskip("harvesters")
    pytest.importorskip("genicam")
    settings = _settings(tmp_path, rig="genicam", top_camera="0", bottom_camera="2")
    asked: list[str] = []

    handle = open_rig(settings.rig, settings=settings)
    try:
        handle.prepare("sample", asked.append)
        capture = handle.rig.capture(timeout_s=5.0)
    finally:
        handle.close()

    assert handle.kind == "genicam" and handle.rig.name == "genicam-0-2"
    assert asked and asked[0].startswith("Spread the sample on the plate")
    assert (capture.top.serial, capture.bottom.serial) == ("0", "2")


def test_arguments_override_the_settings_cameras(tmp_path: Path) -> None:
    pytest.importorskip("harvesters")
    pytest.importorskip("genicam")
    settings = _settings(tmp_path, top_camera="0", bottom_camera="2")

    handle = open_rig("genicam", settings=settings, bottom="VikyTL_DEV_green")
    handle.close()

    assert handle.rig.name == "genicam-0-1"


def test_a_genicam_rig_without_cameras_named_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CameraSetupError, match="needs its top camera"):
        open_rig("genicam", settings=_settings(tmp_path))
