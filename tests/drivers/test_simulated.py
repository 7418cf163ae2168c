import numpy as np
import pytest

from drivers.base import Camera, CameraError, DualRig
from drivers.kernels import CONDITIONS
from drivers.scene import PlacementError, SampleSpec, default_geometry
from drivers.simulated import SimulatedBench, SimulatedCamera, simulated_rig


def _centroids(labels):
    out = {}
    for k in np.unique(labels):
        if k:
            ys, xs = np.nonzero(labels == k)
            out[int(k)] = (xs.mean(), ys.mean(), ys.min(), xs.min(), ys.max(), xs.max())
    return out


def _apply(h, pts):
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def test_renders_have_the_sensor_size_and_about_ten_pixels_per_mm(samples):
    scene = samples[0]
    for view in ("top", "bottom"):
        assert scene.images[view].shape == (2048, 2448, 3)
        assert scene.images[view].dtype == np.uint8
    labels = scene.truth.labels["top"]
    lengths = []
    for _x, _y, r0, c0, r1, c1 in _centroids(labels).values():
        lengths.append(max(r1 - r0, c1 - c0))
    assert 85 <= np.median(lengths) <= 130  # a maize kernel is about 10-12 mm long


def test_bottom_view_is_the_top_view_mirrored_through_the_rig_homography(samples):
    scene = samples[0]
    geometry = scene.truth.geometry
    h = geometry.top_to_bottom
    assert np.linalg.det(h[:2, :2]) < 0  # mirrored
    top, bottom = (_centroids(scene.truth.labels[v]) for v in ("top", "bottom"))
    errors = []
    for k in scene.truth.kernels:
        lab = k.index + 1
        if lab in top and lab in bottom and not k.touching:
            mapped = _apply(h, np.array([top[lab][:2]]))[0]
            errors.append(np.hypot(*(mapped - bottom[lab][:2])))
    assert len(errors) > 150
    assert np.median(errors) < 1.0


def test_samples_hold_touching_and_edge_kernels_in_the_asked_shares(samples):
    for scene in samples:
        kernels = scene.truth.kernels
        assert len(kernels) == 200
        touching = np.mean([k.touching for k in kernels])
        assert 0.08 <= touching <= 0.12
        h, w = scene.truth.labels["top"].shape
        cut = [
            k
            for k, c in _centroids(scene.truth.labels["top"]).items()
            if c[2] == 0 or c[3] == 0 or c[4] == h - 1 or c[5] == w - 1
        ]
        assert len(cut) >= 2


def test_every_condition_occurs_and_some_defects_show_on_one_side_only(samples):
    kernels = [k for s in samples for k in s.truth.kernels]
    assert {k.condition for k in kernels} == set(CONDITIONS)
    defective = [k for k in kernels if k.condition != "pure"]
    assert all(k.shows_top or k.shows_bottom for k in defective)
    assert any(k.shows_top != k.shows_bottom for k in defective)
    assert not any(
        k.shows_top or k.shows_bottom for k in kernels if k.condition == "pure"
    )


def test_defects_change_how_a_kernel_looks(samples):
    scene = samples[0]
    img, labels = scene.images["top"], scene.truth.labels["top"]
    dark, pale = {}, {}
    for k in scene.truth.kernels:
        mask = labels == k.index + 1
        if mask.sum() > 3000 and not k.touching:
            luma = img[mask].astype(float).mean(axis=1)
            key = (k.condition, k.shows_top)
            dark.setdefault(key, []).append(np.percentile(luma, 5) / np.median(luma))
            pale.setdefault(key, []).append(np.percentile(luma, 99) / np.median(luma))
    # Brown patches darken part of the face; exposed endosperm brightens it.
    assert np.mean(dark[("discolored", True)]) < np.mean(dark[("pure", False)]) - 0.1
    assert np.mean(pale[("broken", True)]) > np.mean(pale[("pure", False)]) + 0.05


def test_the_same_seed_renders_the_same_sample():
    a = SimulatedBench().lay_sample(SampleSpec(n_kernels=20), seed=5)
    b = SimulatedBench().lay_sample(SampleSpec(n_kernels=20), seed=5)
    c = SimulatedBench().lay_sample(SampleSpec(n_kernels=20), seed=6)
    assert np.array_equal(a.images["top"], b.images["top"])
    assert not np.array_equal(a.images["top"], c.images["top"])


def test_a_crowded_plate_is_refused_with_advice():
    with pytest.raises(PlacementError, match="fewer"):
        SimulatedBench().lay_sample(SampleSpec(n_kernels=2000), seed=1)


def test_simulated_cameras_meet_the_camera_protocol():
    rig, bench = simulated_rig(spec=SampleSpec(n_kernels=10))
    assert isinstance(rig.top, Camera) and isinstance(rig.bottom, Camera)
    with pytest.raises(CameraError, match="not open"):
        rig.top.grab()
    with rig:
        bench.lay_target()
        capture = rig.capture()
    assert capture.top.view == "top" and capture.bottom.view == "bottom"
    assert capture.top.serial != capture.bottom.serial
    assert capture.top.metadata["scene"] == "target"
    assert capture.top.timestamp.tzinfo is not None


def test_a_rig_refuses_cameras_in_the_wrong_places():
    bench = SimulatedBench()
    with pytest.raises(ValueError, match="top, bottom"):
        DualRig(SimulatedCamera(bench, "bottom"), SimulatedCamera(bench, "top"))


def test_geometry_field_of_view_is_about_245_by_205_mm():
    w, h = default_geometry().field_mm
    assert w == pytest.approx(244.8, rel=0.03)
    assert h == pytest.approx(204.8, rel=0.03)
