"""`seedqa doctor` on a healthy appliance and on broken ones, one problem each.

A healthy data folder (the maize bundle, a calibrated simulated rig, a backup) is
built once; each test works on its own copy.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.backup import take_backup
from appliance.calibrations import calibrate_rig
from appliance.cli import main
from appliance.doctor import Health, diagnose, problems
from appliance.rigs import open_rig
from appliance.settings import Settings
from appliance.store import Database, ImageStore, sqlite_url

BUNDLE = "maize-sim.safetensors"


@pytest.fixture(scope="module")
def healthy_template(tmp_path_factory, untrained_bundle) -> Path:
    root = tmp_path_factory.mktemp("doctor") / "data"
    (root / "models").mkdir(parents=True)
    shutil.copy(untrained_bundle, root / "models" / BUNDLE)
    settings = Settings(data_dir=root, database_url=sqlite_url(root / "seedqa.db"))
    images = ImageStore(settings.images_dir)
    handle = open_rig("simulated")
    try:
        with Database.open(settings.database_url) as db:
            calibrate_rig(handle, db, images, settings)
    finally:
        handle.close()
    take_backup(settings.database_url, images.root, settings.backups_dir, keep=3)
    return root


@pytest.fixture
def appliance_dir(healthy_template, tmp_path, monkeypatch) -> Path:
    """A copy of the healthy data folder, named by SEEDQA_DATA_DIR."""
    root = tmp_path / "data"
    shutil.copytree(healthy_template, root)
    monkeypatch.setenv("SEEDQA_DATA_DIR", str(root))
    monkeypatch.setenv("SEEDQA_CONFIG", str(_no_config(tmp_path)))
    return root


def _no_config(tmp_path: Path) -> Path:
    """An empty settings file, so no file on the test machine is read."""
    path = tmp_path / "seedqa.toml"
    path.write_text("")
    return path


def _problem_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


def test_healthy_appliance_passes(appliance_dir, capsys):
    status = main(["doctor"])

    out = capsys.readouterr().out
    assert status == 0, out
    checks = {line.split()[1].rstrip(":") for line in out.splitlines()}
    assert checks == {"cameras", "database", "calibration", "model", "disk", "backup"}
    assert _problem_lines(out) == []
    assert "OK       model: recipe maize" in out
    # The wheat recipe has no bundle here: worth knowing, not a problem.
    assert "WARNING  model: recipe wheat has no model bundle" in out


def test_tampered_bundle_is_a_problem(appliance_dir, capsys):
    path = appliance_dir / "models" / BUNDLE
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a byte of the weights
    path.write_bytes(bytes(data))

    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    lines = _problem_lines(captured.out)
    assert len(lines) == 1
    assert lines[0].startswith("PROBLEM  model: recipe maize:")
    assert "weights do not match" in lines[0] and "reinstall the model" in lines[0]
    assert captured.err.strip() == "seedqa: 1 problem(s) found"


def test_missing_calibration_is_a_problem(appliance_dir, capsys):
    # As on a rig that was never calibrated.
    with contextlib.closing(sqlite3.connect(appliance_dir / "seedqa.db")) as raw:
        raw.execute("DELETE FROM calibrations")
        raw.commit()

    assert main(["doctor"]) == 1
    lines = _problem_lines(capsys.readouterr().out)
    assert lines == [
        "PROBLEM  calibration: rig 'simulated' has no calibration; run `seedqa "
        "calibrate` first"
    ]


def test_corrupted_database_is_a_problem(appliance_dir, capsys):
    path = appliance_dir / "seedqa.db"
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : 3 * page] = bytes(range(256)) * (2 * page // 256)
    path.write_bytes(bytes(data))

    assert main(["doctor"]) == 1
    lines = _problem_lines(capsys.readouterr().out)
    assert [line.split(":")[0] for line in lines] == [
        "PROBLEM  database",
        "PROBLEM  calibration",
    ]
    assert "fails its integrity check" in lines[0]
    assert "restore the newest backup" in lines[0]
    assert "missing or damaged" in lines[1]


def test_old_calibration_and_backup_are_problems(appliance_dir):
    settings = Settings.load()
    later = datetime.now(UTC) + timedelta(days=40)

    found = problems(diagnose(settings, now=later))

    assert [f.check for f in found] == ["calibration", "backup"]
    assert "older than 30 days; recalibrate" in found[0].message
    assert "older than 36 h" in found[1].message


def test_missing_backup_and_bundles_are_problems(appliance_dir, capsys):
    shutil.rmtree(appliance_dir / "backups")
    (appliance_dir / "models" / BUNDLE).unlink()

    assert main(["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is False
    found = {(f["check"], f["health"]) for f in report["findings"]}
    assert ("backup", "problem") in found
    assert ("model", "problem") in found
    assert ("cameras", "ok") in found


def test_unavailable_rig_is_a_problem(appliance_dir):
    found = diagnose(
        Settings.load(), rig="genicam", top="NO-SUCH-TOP", bottom="NO-SUCH-BOTTOM"
    )

    cameras = [f for f in found if f.check == "cameras"]
    assert cameras[0].health is Health.PROBLEM
    assert "NO-SUCH-TOP" in cameras[0].message
    calibration = [f for f in found if f.check == "calibration"]
    assert calibration[0].message == "not checked: the rig did not open"


def test_full_disk_is_a_problem(appliance_dir, monkeypatch):
    monkeypatch.setenv("SEEDQA_CONFIG", str(appliance_dir / "strict.toml"))
    (appliance_dir / "strict.toml").write_text("min_free_disk_mb = 1e12\n")

    found = problems(diagnose(Settings.load()))

    assert [f.check for f in found] == ["disk"]
    assert "less than" in found[0].message and "MiB" in found[0].message
