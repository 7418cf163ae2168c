import cv2
import numpy as np

from appliance.crops import cut_crop, ready_crop
from appliance.segmentation import segment


def _seed_on_black(axes, angle):
    img = np.zeros((200, 200, 3), np.uint8)
    cv2.ellipse(img, (100, 100), axes, angle, 0, 360, (200, 160, 60), -1)
    return img


def test_crops_stand_the_seed_upright():
    crop = ready_crop(_seed_on_black((60, 25), 30), size=64)
    ys, xs = np.nonzero(crop.max(axis=2))
    assert np.ptp(ys) > 2 * np.ptp(xs)  # long axis vertical


def test_fixed_side_ready_crops_keep_seed_size():
    small = ready_crop(_seed_on_black((30, 12), 0), size=64, side_px=150)
    large = ready_crop(_seed_on_black((60, 24), 0), size=64, side_px=150)
    ratio = (large.max(axis=2) > 0).sum() / (small.max(axis=2) > 0).sum()
    assert 3.2 < ratio < 4.8  # twice the length, four times the area
    scaled_small = ready_crop(_seed_on_black((30, 12), 0), size=64)
    scaled_large = ready_crop(_seed_on_black((60, 24), 0), size=64)
    assert (
        abs((scaled_small.max(axis=2) > 0).sum() - (scaled_large.max(axis=2) > 0).sum())
        < 150
    )


def test_production_crops_black_out_neighbours(samples):
    rgb = samples[0].images["top"]
    seg = segment(rgb)
    region = max(seg.seeds, key=lambda r: r.area_px)
    crop = cut_crop(rgb, region, size=64)
    assert crop.shape == (64, 64, 3)
    covered = (crop.max(axis=2) > 0).mean()
    assert 0.2 < covered < 0.8  # the seed, on black; no plate, no neighbour
    assert crop[0, 0].max() == 0 and crop[-1, -1].max() == 0
