"""`seedqa cameras` and `seedqa capture --rig genicam`, on the producer viky.cti."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("harvesters")
pytest.importorskip("genicam")

from appliance.cli import main  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.store import Database, list_samples  # noqa: E402

CAPTURE = ["--lot", "L-1", "--sample", "S-1", "--operator", "Ann", "--plate-ready"]


@pytest.fixture(autouse=True)
def no_vendor_producers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Use the bundled viky.cti and no settings file of the machine's."""
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    monkeypatch.setenv("SEEDQA_CONFIG", str(tmp_path / "seedqa.toml"))
    (tmp_path / "seedqa.toml").write_text("")


def test_cameras_lists_the_producer_and_three_devices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["cameras", "--json"])
    listing = json.loads(capsys.readouterr().out)

    assert status == 0
    assert [p["source"] for p in listing["producers"]] == ["bundled"]
    assert Path(listing["producers"][0]["path"]).name == "viky.cti"
    assert [d["serial"] for d in listing["devices"]] == ["0", "1", "2"]
    assert listing["devices"][1]["id"] == "VikyTL_DEV_green"


def test_cameras_marks_the_configured_top_and_bottom(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEDQA_TOP_CAMERA", "VikyTL_DEV_blue")
    monkeypatch.setenv("SEEDQA_BOTTOM_CAMERA", "0")

    status = main(["cameras"])
    out = capsys.readouterr().out

    assert status == 0
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert rows["2"].endswith("<- top") and rows["0"].endswith("<- bottom")
    assert "<-" not in rows["1"]


def test_cameras_with_a_missing_producer_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = main(["cameras", "--producer", str(tmp_path / "vendor.cti")])
    err = capsys.readouterr().err

    assert status == 2
    assert err.count("\n") == 1 and "vendor.cti" in err and "Traceback" not in err


def test_capture_on_viky_is_rejected_by_frame_qc_and_saves_nothing(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        status = main(
            ["capture", "--rig", "genicam", "--top", "0", "--bottom", "1"] + CAPTURE
        )
    err = capsys.readouterr().err

    assert status == 2
    assert err.startswith("seedqa: the top camera (0) delivered an unusable 400x400")
    assert "overexposed" in err and "nothing was saved" in err
    assert "has no calibration" in err
    assert "rig genicam-0-1 open" in caplog.text
    with Database.open(Settings.load().database_url) as db:
        assert list_samples(db) == []


def test_capture_with_an_unknown_camera_exits_2_listing_the_connected(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["capture", "--rig", "genicam", "--top", "0", "--bottom", "SN-9"] + CAPTURE
    )
    err = capsys.readouterr().err

    assert status == 2
    assert "no camera answers to 'SN-9'" in err and "serial 1" in err


def test_capture_on_genicam_without_cameras_named_exits_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["capture", "--rig", "genicam"] + CAPTURE)
    err = capsys.readouterr().err

    assert status == 2
    assert "needs its top camera: pass --top SERIAL" in err


def test_camera_settings_are_saved_to_a_file_and_loaded_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "camera-2.json"

    saved = main(["camera-settings", "save", "2", str(path)])
    document = json.loads(path.read_text())
    document["features"]["Width"] = 320
    path.write_text(json.dumps(document))
    loaded = main(["camera-settings", "load", "VikyTL_DEV_blue", str(path)])
    out = capsys.readouterr().out

    assert (saved, loaded) == (0, 0)
    assert document["device"]["serial"] == "2"
    assert "PixelFormat" in document["features"]
    assert f"of {len(document['features'])} features written to camera 2" in out
    assert "camera 2 now sends RGBa8 320x400" in out


def test_loading_a_file_that_is_not_camera_settings_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "notes.json"
    path.write_text("[1, 2]")

    status = main(["camera-settings", "load", "2", str(path)])

    assert status == 2
    assert "is not a camera settings file" in capsys.readouterr().err
