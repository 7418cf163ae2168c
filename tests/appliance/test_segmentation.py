import cv2
import numpy as np
import pytest

from appliance.segmentation import (
    BORDER,
    CLUMP,
    EMPTY,
    LOW_CONTRAST,
    OVEREXPOSED,
    SPECK,
    UNDEREXPOSED,
    InvalidImage,
    segment,
)
from drivers.scene import SampleSpec
from drivers.simulated import SimulatedBench
from tests.conftest import gt_kernel_of


def _ious(seg, gt):
    """Best IoU of every ground-truth kernel against the predicted regions."""
    pred = seg.labels.astype(np.int64)
    pairs, counts = np.unique((gt.astype(np.int64) << 16) | pred, return_counts=True)
    g, p = pairs >> 16, pairs & 0xFFFF
    area_g = np.bincount(gt.ravel())
    area_p = np.bincount(seg.labels.ravel())
    best: dict[int, float] = {}
    for gi, pi, c in zip(g, p, counts, strict=True):
        if gi and pi:
            best[gi] = max(best.get(gi, 0.0), c / (area_g[gi] + area_p[pi] - c))
    return {int(k): best.get(int(k), 0.0) for k in np.unique(gt) if k}


@pytest.mark.parametrize("view", ["top", "bottom"])
def test_simulated_samples_are_counted_within_one_percent(samples, view):
    for scene in samples:
        seg = segment(scene.images[view])
        n_true = len(np.unique(scene.truth.labels[view])) - 1
        assert abs(len(seg.seeds) - n_true) <= 0.01 * n_true, scene.seed


@pytest.mark.parametrize("view", ["top", "bottom"])
def test_seed_masks_match_ground_truth(samples, view):
    for scene in samples:
        ious = _ious(segment(scene.images[view]), scene.truth.labels[view])
        assert np.median(list(ious.values())) >= 0.9


def test_touching_seeds_are_split(samples):
    split = total = 0
    for scene in samples:
        seg = segment(scene.images["top"])
        ious = _ious(seg, scene.truth.labels["top"])
        for k in scene.truth.kernels:
            if k.touching and k.in_top:
                total += 1
                split += ious.get(k.index + 1, 0.0) >= 0.8
    assert total >= 30
    assert split / total >= 0.95


def test_seed_size_is_estimated_from_the_image_at_any_scale():
    # Kernels at half the size on a half-size image: a quarter of the pixels each.
    bench = SimulatedBench(seed=7)
    scene = bench.lay_sample(SampleSpec(n_kernels=120, size_scale=0.5))
    small = cv2.resize(
        scene.images["top"], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA
    )
    full = segment(scene.images["top"])
    half = segment(small)
    assert abs(len(half.seeds) - len(full.seeds)) <= 2
    assert half.seed_area_px == pytest.approx(full.seed_area_px / 4, rel=0.1)


def test_regions_cut_by_the_border_are_flagged(samples):
    seg = segment(samples[0].images["top"])
    h, w = seg.labels.shape
    for r in seg.regions:
        r0, c0, r1, c1 = r.bbox
        at_edge = r0 == 0 or c0 == 0 or r1 == h or c1 == w
        assert (BORDER in r.flags) == at_edge
    assert any(BORDER in r.flags for r in seg.regions)


def _plate_with_discs(extra):
    """A light plate with 30 dark discs of radius 20 px and extra shapes drawn."""
    img = np.full((800, 1000, 3), 225, np.uint8)
    rng = np.random.default_rng(0)
    for i in range(30):
        y, x = 60 + (i // 6) * 110, 60 + (i % 6) * 110
        cv2.circle(img, (x + int(rng.integers(-5, 5)), y), 20, (200, 150, 40), -1)
    extra(img)
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def test_specks_and_clumps_are_flagged():
    def extra(img):
        cv2.circle(img, (850, 100), 6, (120, 90, 30), -1)  # dust
        cv2.ellipse(img, (850, 500), (75, 45), 30, 0, 360, (200, 150, 40), -1)

    seg = segment(_plate_with_discs(extra))
    flags = {tuple(sorted(r.flags)) for r in seg.regions}
    assert (SPECK,) in flags
    assert (CLUMP,) in flags
    assert len(seg.seeds) == 31  # the 30 discs and the clump; the speck is not a seed


def test_region_labels_agree_with_the_label_image(samples):
    seg = segment(samples[1].images["bottom"])
    assert seg.labels.dtype == np.uint16
    for r in seg.regions:
        r0, c0, r1, c1 = r.bbox
        assert np.array_equal(seg.labels[r0:r1, c0:c1] == r.label, r.mask)
        assert r.area_px == int(r.mask.sum())
    assert len(np.unique(seg.labels)) - 1 == len(seg.regions)


def test_an_empty_plate_is_flagged_empty():
    bench = SimulatedBench()
    seg = segment(bench.clear().images["top"])
    assert seg.frame_flags == (EMPTY,)
    assert seg.usable and seg.seeds == []


@pytest.mark.parametrize(
    ("value", "flag"), [(255, OVEREXPOSED), (0, UNDEREXPOSED), (128, LOW_CONTRAST)]
)
def test_unusable_frames_are_flagged(value, flag):
    seg = segment(np.full((600, 800, 3), value, np.uint8))
    assert flag in seg.frame_flags
    assert not seg.usable
    assert seg.regions == []


def test_a_mostly_saturated_frame_is_overexposed(samples):
    img = np.clip(samples[0].images["top"].astype(np.int32) * 3, 0, 255).astype(
        np.uint8
    )
    assert OVEREXPOSED in segment(img).frame_flags


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((100, 100, 2), np.uint8),
        np.zeros((100, 100), np.int64),
        np.zeros((4, 4, 3), np.uint8),
        np.full((100, 100, 3), np.nan, np.float32),
        [[1, 2], [3, 4]],
    ],
    ids=["two-channels", "int64", "tiny", "nan", "list"],
)
def test_bad_arrays_are_refused_with_a_clear_message(bad):
    with pytest.raises(InvalidImage, match="expected|too small|NaN"):
        segment(bad)


def test_grey_and_16_bit_images_are_accepted(samples):
    rgb = samples[0].images["top"]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    deep = rgb.astype(np.uint16) * 257
    n = len(segment(rgb).seeds)
    assert abs(len(segment(deep).seeds) - n) <= 1
    assert abs(len(segment(grey).seeds) - n) <= 0.03 * n


def test_each_region_covers_one_kernel(samples):
    scene = samples[2]
    seg = segment(scene.images["top"])
    kernels = [
        gt_kernel_of(r.mask, r.bbox, scene.truth.labels["top"]) for r in seg.seeds
    ]
    assert 0 not in kernels
    assert len(set(kernels)) >= 0.99 * len(kernels)
