"""The `seedqa` command line, run in-process on simulated samples and image files.

Every run checks that the exit status says what happened and that no traceback
reaches the user, neither on stderr nor through the log. Full captures take several
seconds each, so the file runs two of them, and shares one simulated sample and one
calibration between the tests that only read them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.imageio import write_png
from appliance.report import SCHEMA_VERSION
from appliance.settings import Settings
from appliance.store import Database, latest_calibration, list_samples

SUBCOMMANDS = ("simulate", "segment", "calibrate", "capture", "inspect")


@dataclass(frozen=True)
class Run:
    """What one `seedqa` run returned and printed."""

    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def message(self) -> str:
        """The one line the CLI prints to stderr for a user's mistake."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {self.err!r}"
        assert lines[0].startswith("seedqa: ")
        return lines[0]


def _run_outside_a_test(argv: list[str]) -> Run:
    """Run the CLI in a module fixture, where capsys is not available."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return Run(status, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., Run]:
    """Run ``seedqa ARGV...`` in-process; fail on any traceback shown or logged."""

    def run(*argv: str | Path) -> Run:
        caplog.clear()
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        logged = [
            logging.Formatter().formatException(r.exc_info)
            for r in caplog.records
            if r.exc_info and r.levelno >= logging.ERROR
        ]
        assert not logged, f"seedqa exited {status} and logged {logged[0]}"
        return Run(status, out, err)

    return run


@dataclass(frozen=True)
class Simulated:
    run: Run
    out: Path


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """`seedqa simulate --seeds 40 --seed 3`, run once for the module."""
    out = tmp_path_factory.mktemp("simulated") / "sample"
    run = _run_outside_a_test(
        ["simulate", "--out", str(out), "--seeds", "40", "--seed", "3"]
    )
    return Simulated(run, out)


@dataclass(frozen=True)
class Calibrated:
    run: Run
    data_dir: Path

    @property
    def record_file(self) -> Path:
        return self.data_dir / "calibrations" / "simulated" / "v1" / "calibration.json"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calibrated]:
    """`seedqa calibrate --json` on the simulated rig, run once for the module."""
    data_dir = tmp_path_factory.mktemp("calibrated") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEEDQA_DATA_DIR", str(data_dir))
        run = _run_outside_a_test(["calibrate", "--json"])
    yield Calibrated(run, data_dir)


def _read_unchanged(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} cannot be read back"
    return image


def _visible_kernels(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.unique(labels)))


# simulate


def test_simulate_writes_images_labels_and_truth(simulated: Simulated) -> None:
    assert simulated.run.status == 0
    assert "Traceback" not in simulated.run.err
    assert str(simulated.out) in simulated.run.out

    for view in ("top", "bottom"):
        image = _read_unchanged(simulated.out / f"{view}.png")
        labels = _read_unchanged(simulated.out / f"{view}_labels.png")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert labels.dtype == np.uint16
        assert labels.shape == image.shape[:2]
        assert 36 <= int(labels.max()) <= 40
        assert 36 <= _visible_kernels(labels) <= 40

    truth = json.loads((simulated.out / "truth.json").read_text())
    assert 36 <= len(truth["kernels"]) <= 40
    assert truth["geometry"]["image_size"] == [image.shape[1], image.shape[0]]


def test_simulate_refuses_zero_seeds(cli: Callable[..., Run], tmp_path: Path) -> None:
    run = cli("simulate", "--out", tmp_path / "none", "--seeds", "0")

    assert run.status == 2
    assert "--seeds" in run.message()
    assert not (tmp_path / "none").exists()


# segment


def test_segment_finds_the_simulated_kernels(
    cli: Callable[..., Run], simulated: Simulated, tmp_path: Path
) -> None:
    image_path = simulated.out / "top.png"
    labels_path, overlay_path = tmp_path / "labels.png", tmp_path / "overlay.png"

    run = cli(
        "segment",
        image_path,
        "--json",
        "--labels",
        labels_path,
        "--overlay",
        overlay_path,
    )

    assert run.status == 0
    result = run.json()
    truth = _read_unchanged(simulated.out / "top_labels.png")
    assert abs(result["n_seeds"] - _visible_kernels(truth)) <= 1
    assert (result["height"], result["width"]) == truth.shape
    assert result["frame_flags"] == []

    labels = _read_unchanged(labels_path)
    assert labels.dtype == np.uint16
    assert labels.shape == truth.shape
    counts = np.bincount(labels.ravel())
    assert counts[0] > labels.size / 2  # the plate is the background, 0
    regions = {r["label"]: r for r in result["regions"]}
    assert set(np.flatnonzero(counts[1:]) + 1) == set(regions)
    assert all(counts[label] == r["area_px"] for label, r in regions.items())

    image = _read_unchanged(image_path)
    overlay = _read_unchanged(overlay_path)
    assert overlay.dtype == np.uint8
    assert overlay.shape == image.shape
    assert not np.array_equal(overlay, image)


def _random_bytes(path: Path) -> None:
    path.write_bytes(
        np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes()
    )


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _white(path: Path) -> None:
    write_png(path, np.full((480, 640, 3), 255, np.uint8))


def _black(path: Path) -> None:
    write_png(path, np.zeros((480, 640, 3), np.uint8))


def _saturated(path: Path) -> None:
    """About 95% of the frame at 255, with a dozen dark kernels on it."""
    image = np.full((480, 640, 3), 255, np.uint8)
    for i in range(12):
        centre = (50 + 108 * (i % 6), 140 + 200 * (i // 6))
        cv2.circle(image, centre, 20, (40, 35, 30), thickness=-1)
    assert 0.94 < np.mean(image[..., 0] == 255) < 0.96
    write_png(path, image)


def _tiny(path: Path) -> None:
    write_png(path, np.full((4, 4, 3), 128, np.uint8))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(None, "no image file", id="missing"),
        pytest.param(_random_bytes, "not a readable image", id="corrupt"),
        pytest.param(_empty, "empty", id="empty"),
        pytest.param(_white, "overexposed", id="all-white"),
        pytest.param(_black, "underexposed", id="all-black"),
        pytest.param(_saturated, "overexposed", id="saturated"),
        pytest.param(_tiny, "too small", id="4x4"),
    ],
)
def test_segment_bad_image_exits_2_naming_the_file(
    cli: Callable[..., Run],
    tmp_path: Path,
    make: Callable[[Path], None] | None,
    expected: str,
) -> None:
    path = tmp_path / "plate.png"
    if make is not None:
        make(path)

    run = cli("segment", path, "--json")

    assert run.status == 2
    message = run.message()
    assert str(path) in message
    assert expected in message


# capture


def test_capture_calibrates_measures_and_stores_the_sample(
    cli: Callable[..., Run], data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    first = cli(
        "capture",
        "--lot",
        "L1",
        "--sample",
        "S1",
        "--operator",
        "Ann Lee",
        "--out",
        out,
        "--json",
    )

    assert first.status == 0
    report = first.json()
    assert report["schema_version"] == SCHEMA_VERSION
    sample = report["sample"]
    assert isinstance(sample["id"], int)
    assert (sample["lot"], sample["code"], sample["operator"]) == (
        "L1",
        "S1",
        "Ann Lee",
    )
    seeds = report["seeds"]
    assert 180 <= len(seeds) <= 220
    assert all({"top", "bottom", "flags"} <= seed.keys() for seed in seeds)
    assert report["summary"]["n_seeds"] == len(seeds)

    assert json.loads((out / "report.json").read_text()) == report
    overlay = _read_unchanged(out / "top_overlay.png")
    assert overlay.ndim == 3 and overlay.shape[2] == 3
    assert (
        data_dir / "calibrations" / "simulated" / "v1" / "calibration.json"
    ).is_file()

    second = cli(
        "capture",
        "--lot",
        "L1",
        "--sample",
        "S2",
        "--operator",
        "Ann Lee",
        "--seed",
        "1",
        "--json",
    )

    assert second.status == 0
    assert second.json()["sample"]["id"] != sample["id"]
    settings = Settings.load()
    assert (data_dir / "seedqa.db").is_file()
    with Database.open(settings.database_url) as db:
        stored = list_samples(db)
        calibration = latest_calibration(db, "simulated")
    assert sorted(s.code for s in stored) == ["S1", "S2"]
    assert {s.id for s in stored} == {sample["id"], second.json()["sample"]["id"]}
    assert next(s for s in stored if s.code == "S1").seed_count == len(seeds)
    assert calibration is not None and calibration.version == 1  # not recalibrated


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        pytest.param("--lot", "../etc", "lot code", id="lot-parent-dir"),
        pytest.param("--lot", "", "lot code", id="lot-empty"),
        pytest.param("--lot", "lot with spaces", "lot code", id="lot-spaces"),
        pytest.param("--sample", "S/../1", "sample code", id="sample-double-dot"),
        pytest.param("--operator", "123", "operator name", id="operator-digits"),
    ],
)
def test_capture_with_a_bad_code_exits_2_and_stores_nothing(
    cli: Callable[..., Run], data_dir: Path, option: str, value: str, field: str
) -> None:
    fields = {"--lot": "L1", "--sample": "S1", "--operator": "Ann Lee", option: value}
    argv = [part for item in fields.items() for part in item]

    run = cli("capture", *argv, "--json")

    assert run.status == 2
    assert field in run.message()
    assert run.out == ""
    settings = Settings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Database.open(settings.database_url) as db:
        assert list_samples(db) == []
    assert not settings.images_dir.exists() or not any(settings.images_dir.rglob("*.*"))


# calibrate and inspect


def test_calibrate_prints_a_record_with_subpixel_residual(
    calibrated: Calibrated,
) -> None:
    assert calibrated.run.status == 0
    assert "Traceback" not in calibrated.run.err
    record = calibrated.run.json()
    assert record["rig"] == "simulated"
    assert record["version"] == 1
    assert 0 <= record["residual_px"] < 1
    assert json.loads(calibrated.record_file.read_text())[
        "residual_px"
    ] == pytest.approx(record["residual_px"])


def test_inspect_counts_the_seeds_of_a_simulated_pair(
    cli: Callable[..., Run], calibrated: Calibrated, data_dir: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "sample"
    assert cli("simulate", "--out", sample, "--seed", "3").status == 0
    n_truth = len(json.loads((sample / "truth.json").read_text())["kernels"])

    run = cli(
        "inspect",
        "--top",
        sample / "top.png",
        "--bottom",
        sample / "bottom.png",
        "--calibration",
        calibrated.record_file,
        "--json",
    )

    assert run.status == 0
    report = run.json()
    assert abs(report["summary"]["n_seeds"] - n_truth) <= 0.02 * n_truth
    assert report["summary"]["n_seeds"] == len(report["seeds"])
    assert report["sample"]["id"] is None
    assert report["sample"]["rig"] == "replay"
    assert not (data_dir / "seedqa.db").exists()  # nothing is stored


def test_inspect_with_a_missing_calibration_file_exits_2(
    cli: Callable[..., Run], simulated: Simulated, data_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "calibration.json"

    run = cli(
        "inspect",
        "--top",
        simulated.out / "top.png",
        "--bottom",
        simulated.out / "bottom.png",
        "--calibration",
        missing,
    )

    assert run.status == 2
    assert str(missing) in run.message()
    assert run.out == ""


def test_inspect_without_any_calibration_exits_2(
    cli: Callable[..., Run], simulated: Simulated, data_dir: Path
) -> None:
    run = cli(
        "inspect",
        "--top",
        simulated.out / "top.png",
        "--bottom",
        simulated.out / "bottom.png",
    )

    assert run.status == 2
    assert "calibrate" in run.message()


def test_inspect_with_a_missing_image_exits_2(
    cli: Callable[..., Run], calibrated: Calibrated, data_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "bottom.png"
    write_png(tmp_path / "top.png", np.full((64, 64, 3), 200, np.uint8))

    run = cli(
        "inspect",
        "--top",
        tmp_path / "top.png",
        "--bottom",
        missing,
        "--calibration",
        calibrated.record_file,
    )

    assert run.status == 2
    assert str(missing) in run.message()


def test_inspect_images_of_another_size_than_the_calibration_exit_2(
    cli: Callable[..., Run], calibrated: Calibrated, data_dir: Path, tmp_path: Path
) -> None:
    top, bottom = tmp_path / "top.png", tmp_path / "bottom.png"
    image = np.full((480, 640, 3), 210, np.uint8)
    cv2.circle(image, (320, 240), 30, (90, 70, 40), thickness=-1)
    write_png(top, image)
    write_png(bottom, image)

    run = cli(
        "inspect",
        "--top",
        top,
        "--bottom",
        bottom,
        "--calibration",
        calibrated.record_file,
    )

    assert run.status == 2
    assert "640x480" in run.message()


def test_inspect_images_smaller_than_a_camera_frame_exit_2(
    cli: Callable[..., Run], calibrated: Calibrated, data_dir: Path, tmp_path: Path
) -> None:
    top, bottom = tmp_path / "top.png", tmp_path / "bottom.png"
    write_png(top, np.full((9, 12, 3), 200, np.uint8))
    write_png(bottom, np.full((9, 12, 3), 200, np.uint8))

    run = cli(
        "inspect",
        "--top",
        top,
        "--bottom",
        bottom,
        "--calibration",
        calibrated.record_file,
    )

    assert run.status == 2
    assert "too small" in run.message()


# the installed console script


def _console_script() -> str:
    beside = Path(sys.executable).parent / "seedqa"
    found = str(beside) if beside.is_file() else shutil.which("seedqa")
    assert found is not None, "the seedqa console script is not installed"
    return found


def test_console_script_help_lists_the_subcommands(tmp_path: Path) -> None:
    done = subprocess.run(
        [_console_script(), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "SEEDQA_DATA_DIR": str(tmp_path / "data")},
    )

    assert done.returncode == 0, done.stderr
    for name in SUBCOMMANDS:
        assert name in done.stdout


def test_console_script_reports_a_user_error_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"

    done = subprocess.run(
        [_console_script(), "segment", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "SEEDQA_DATA_DIR": str(tmp_path / "data")},
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"seedqa: no image file at {missing}"]
