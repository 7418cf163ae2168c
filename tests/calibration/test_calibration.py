import json

import numpy as np
import pytest

from appliance.calibrations import write_record
from calibration import (
    BlankPlateError,
    CalibrationError,
    CalibrationMissing,
    TargetNotFound,
    calibrate,
    estimate_flat_field,
    fit_target,
    load_record,
)
from drivers.simulated import SimulatedBench, simulated_rig
from drivers.target import DotTarget


def _apply(h, pts):
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def test_residual_is_under_one_pixel(calibration):
    assert calibration.residual_px < 1.0
    assert all(r < 1.0 for r in calibration.view_residual_px.values())


def test_top_to_bottom_mapping_matches_the_rig(calibration):
    truth = SimulatedBench().geometry
    grid = np.array([[x, y] for x in (0, 1224, 2447) for y in (0, 1024, 2047)], float)
    error = _apply(calibration.top_to_bottom, grid) - _apply(truth.top_to_bottom, grid)
    assert np.abs(error).max() < 0.5


def test_scale_is_measured_in_mm_per_pixel(calibration):
    truth = SimulatedBench().geometry
    for view in ("top", "bottom"):
        h = truth.plate_to(view)
        centre = _apply(np.linalg.inv(h), np.array([[1224.0, 1024.0]]))[0]
        a, b, c = _apply(h, np.array([centre, centre + (1, 0), centre + (0, 1)]))
        (ux, uy), (vx, vy) = b - a, c - a
        px2_per_mm2 = abs(ux * vy - uy * vx)
        assert calibration.mm_per_px[view] == pytest.approx(
            px2_per_mm2**-0.5, rel=0.005
        )


def test_flat_field_makes_the_blank_plate_flat_and_neutral(calibration):
    blank = SimulatedBench().clear(seed=9).images["top"]
    raw_spread = np.ptp(blank[::64, ::64].mean(axis=2))
    corrected = calibration.flat_fields["top"].apply(blank).astype(float)
    blocks = corrected[: 2048 // 64 * 64, : 2448 // 64 * 64].reshape(32, 64, 38, 64, 3)
    means = blocks.mean(axis=(1, 3))
    assert np.ptp(means[..., 1]) < 4 < raw_spread
    channel_means = means.reshape(-1, 3).mean(axis=0)
    assert np.ptp(channel_means) < 2  # white balanced


def test_a_record_survives_a_round_trip(calibration, tmp_path):
    path = write_record(calibration, tmp_path)
    loaded = load_record(path)
    assert np.allclose(loaded.top_to_bottom, calibration.top_to_bottom)
    assert loaded.mm_per_px == calibration.mm_per_px
    assert np.array_equal(
        loaded.flat_fields["bottom"].gain, calibration.flat_fields["bottom"].gain
    )


def test_a_changed_flat_field_file_is_refused(calibration, tmp_path):
    path = write_record(calibration, tmp_path)
    archive = next(tmp_path.glob("flat-*.npz"))
    archive.write_bytes(archive.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CalibrationError, match="SHA-256"):
        load_record(path)


def test_a_record_of_another_schema_is_refused(calibration, tmp_path):
    path = write_record(calibration, tmp_path)
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="schema"):
        load_record(path)


def test_a_missing_record_says_to_calibrate(tmp_path):
    with pytest.raises(CalibrationMissing, match="seedqa calibrate"):
        load_record(tmp_path / "calibration.json")


def test_a_plate_with_seeds_is_not_a_blank(samples):
    with pytest.raises(BlankPlateError, match="not empty"):
        estimate_flat_field(samples[0].images["top"])


def test_a_saturated_blank_is_refused():
    with pytest.raises(BlankPlateError, match="saturated"):
        estimate_flat_field(np.full((512, 512, 3), 255, np.uint8))


def test_no_target_in_view_is_reported():
    blank = SimulatedBench().clear().images["top"]
    with pytest.raises(TargetNotFound, match="dots"):
        fit_target(blank, DotTarget())


def test_calibrate_names_the_camera_whose_capture_failed():
    rig, bench = simulated_rig()
    with rig:
        bench.clear()
        blank = rig.capture()
        target = rig.capture()  # the operator forgot to lay the target
    with pytest.raises(CalibrationError, match="top camera"):
        calibrate(blank, target, rig=rig.name)
