"""Segmentation speed and accuracy on simulated 2448x2048 views.

Prints seconds per view for `appliance.segmentation.segment` and for a plain
full-frame scikit-image watershed (Otsu threshold, Euclidean distance transform,
peak_local_max markers, watershed) run on the same views in the same process, their
ratio, and both methods' seed-count error and median IoU against ground truth.

    .venv/bin/python bench/segmentation.py [--samples N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.color import rgb2gray
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_objects
from skimage.segmentation import watershed

from appliance.segmentation import segment
from drivers.simulated import SimulatedBench


def baseline(rgb: np.ndarray) -> np.ndarray:
    """Textbook watershed over the whole frame: the reference to beat.

    Its two sizes (smallest object, least distance between markers) are tuned by
    hand to these maize kernels at 10 px/mm, which `segment` has to estimate.
    """
    grey = rgb2gray(rgb)
    binary = ndi.binary_fill_holes(grey < threshold_otsu(grey))
    binary = remove_small_objects(binary, max_size=300)
    distance = ndi.distance_transform_edt(binary)
    peaks = peak_local_max(
        distance, min_distance=30, labels=ndi.label(binary)[0], exclude_border=False
    )
    markers = np.zeros(distance.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=binary)


def accuracy(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, float]:
    """(true count, found count, median best IoU of the true kernels)."""
    pred = pred.astype(np.int64)
    keys, counts = np.unique((truth.astype(np.int64) << 20) | pred, return_counts=True)
    area_t = np.bincount(truth.ravel())
    area_p = np.bincount(pred.ravel())
    best: dict[int, float] = {}
    for key, c in zip(keys, counts, strict=True):
        t, p = int(key >> 20), int(key & 0xFFFFF)
        if t and p:
            best[t] = max(best.get(t, 0.0), c / (area_t[t] + area_p[p] - c))
    kernels = [k for k in np.unique(truth) if k]
    found = len(np.unique(pred)) - 1
    return len(kernels), found, float(np.median([best.get(k, 0.0) for k in kernels]))


def timed(fn, *args):  # noqa: ANN001, ANN202
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()

    bench = SimulatedBench(seed=500)
    rows = {"seedqa": [], "baseline": []}
    for _ in range(args.samples):
        scene = bench.lay_sample()
        for view in ("top", "bottom"):
            img, truth = scene.images[view], scene.truth.labels[view]
            seg, t_ours = timed(segment, img)
            labels, t_base = timed(baseline, img)
            seeds = np.zeros_like(seg.labels)
            for r in seg.seeds:
                r0, c0, r1, c1 = r.bbox
                seeds[r0:r1, c0:c1][r.mask] = r.label
            rows["seedqa"].append((t_ours, *accuracy(seeds, truth)))
            rows["baseline"].append((t_base, *accuracy(labels, truth)))

    print(
        f"{args.samples} simulated samples of 200 kernels (10% touching), "
        f"{2 * args.samples} views of 2448x2048"
    )
    print(
        f"{'method':<10} {'s/view':>8} {'count err':>10} {'max err':>8} {'med IoU':>8}"
    )
    for name, data in rows.items():
        arr = np.array(data)
        err = np.abs(arr[:, 2] - arr[:, 1]) / arr[:, 1]
        print(
            f"{name:<10} {np.median(arr[:, 0]):8.3f} {100 * err.mean():9.2f}% "
            f"{100 * err.max():7.2f}% {np.median(arr[:, 3]):8.3f}"
        )
    ratio = np.median([b[0] for b in rows["baseline"]]) / np.median(
        [o[0] for o in rows["seedqa"]]
    )
    print(f"speed-up over the full-frame scikit-image watershed: {ratio:.1f}x")


if __name__ == "__main__":
    main()
