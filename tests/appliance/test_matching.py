import pytest

from appliance.matching import BOTTOM_ONLY, TOP_ONLY, match_views
from appliance.segmentation import segment
from tests.conftest import gt_kernel_of


@pytest.fixture(scope="module")
def segmented(samples, calibration):
    out = []
    for scene in samples:
        segs = {
            v: segment(calibration.flat_fields[v].apply(scene.images[v]))
            for v in ("top", "bottom")
        }
        out.append((scene, segs))
    return out


def test_top_and_bottom_views_of_each_seed_are_paired(segmented, calibration):
    correct = wrong = 0
    in_both = 0
    for scene, segs in segmented:
        pairs = match_views(
            segs["top"].seeds, segs["bottom"].seeds, calibration.top_to_bottom
        )
        for p in pairs:
            if p.top is None or p.bottom is None:
                continue
            k_top = gt_kernel_of(p.top.mask, p.top.bbox, scene.truth.labels["top"])
            k_bot = gt_kernel_of(
                p.bottom.mask, p.bottom.bbox, scene.truth.labels["bottom"]
            )
            correct += k_top == k_bot
            wrong += k_top != k_bot
        in_both += sum(k.in_top and k.in_bottom for k in scene.truth.kernels)
    assert wrong == 0
    assert correct >= 0.99 * in_both


def test_no_seed_is_dropped(segmented, calibration):
    scene, segs = segmented[0]
    pairs = match_views(
        segs["top"].seeds, segs["bottom"].seeds, calibration.top_to_bottom
    )
    tops = [p.top.label for p in pairs if p.top is not None]
    bottoms = [p.bottom.label for p in pairs if p.bottom is not None]
    assert sorted(tops) == sorted(r.label for r in segs["top"].seeds)
    assert sorted(bottoms) == sorted(r.label for r in segs["bottom"].seeds)


def test_a_seed_missing_from_one_view_is_flagged(segmented, calibration):
    _, segs = segmented[0]
    top, bottom = segs["top"].seeds, segs["bottom"].seeds
    pairs = match_views(top, bottom, calibration.top_to_bottom)
    paired = next(p for p in pairs if p.top is not None and p.bottom is not None)
    without = [r for r in bottom if r is not paired.bottom]
    again = match_views(top, without, calibration.top_to_bottom)
    lone = [p for p in again if p.top is paired.top]
    assert len(lone) == 1
    assert lone[0].bottom is None and lone[0].flags == (TOP_ONLY,)


def test_one_empty_view_leaves_every_seed_unpaired(segmented, calibration):
    _, segs = segmented[0]
    pairs = match_views([], segs["bottom"].seeds, calibration.top_to_bottom)
    assert len(pairs) == len(segs["bottom"].seeds)
    assert all(p.flags == (BOTTOM_ONLY,) and p.top is None for p in pairs)
