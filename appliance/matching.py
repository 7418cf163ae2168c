"""Pair each seed's top view with its bottom view through the rig's calibration.

The top region's outline is carried into the bottom image by the calibrated
homography, and each candidate pair is scored by how much of the smaller region
the two share. An optimal assignment (Hungarian algorithm) then picks one partner
per seed. Seeds with no partner are kept, flagged, never dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from appliance.segmentation import SeedRegion

log = logging.getLogger(__name__)

#: Pair flags.
TOP_ONLY = "top_only"  # seen from above only
BOTTOM_ONLY = "bottom_only"  # seen from below only

#: Least share of the smaller region two views must have in common to be paired.
MIN_OVERLAP = 0.3


@dataclass(frozen=True, eq=False)
class SeedPair:
    """The two views of one physical seed; one side may be missing.

    Attributes
    ----------
    top, bottom : SeedRegion or None
        The seed's region in each view.
    overlap : float
        Share of the smaller region covered by the other once mapped (0 if unpaired).
    flags : tuple of str
        `TOP_ONLY` or `BOTTOM_ONLY` for an unpaired seed.
    """

    top: SeedRegion | None
    bottom: SeedRegion | None
    overlap: float
    flags: tuple[str, ...] = ()


def match_views(
    top: list[SeedRegion],
    bottom: list[SeedRegion],
    top_to_bottom: NDArray[np.float64],
) -> list[SeedPair]:
    """Pair seeds seen from above with seeds seen from below.

    Parameters
    ----------
    top, bottom : list of SeedRegion
        Seeds found in each view.
    top_to_bottom : (3, 3) ndarray
        Homography from top-view to bottom-view pixels (from the calibration).

    Returns
    -------
    list of SeedPair
        Paired seeds first (in top order), then unpaired top, then unpaired bottom.
    """
    if not top or not bottom:
        return [SeedPair(t, None, 0.0, (TOP_ONLY,)) for t in top] + [
            SeedPair(None, b, 0.0, (BOTTOM_ONLY,)) for b in bottom
        ]

    mapped = [_map_outline(r, top_to_bottom) for r in top]
    centres_top = np.array([m.mean(axis=0) for m in mapped])
    centres_bottom = np.array([(r.centroid[1], r.centroid[0]) for r in bottom])
    reach = np.array([max(r.major_px, 1.0) for r in bottom])

    overlap = np.zeros((len(top), len(bottom)))
    distance = np.linalg.norm(centres_top[:, None] - centres_bottom[None], axis=2)
    for i, j in zip(*np.nonzero(distance < 1.5 * reach[None]), strict=True):
        overlap[i, j] = _overlap(mapped[i], top[i].area_px, bottom[j])

    rows, cols = linear_sum_assignment(-overlap)
    pairs, used_top, used_bottom = [], set(), set()
    for i, j in sorted(zip(rows.tolist(), cols.tolist(), strict=True)):
        if overlap[i, j] >= MIN_OVERLAP:
            pairs.append(SeedPair(top[i], bottom[j], float(overlap[i, j])))
            used_top.add(i)
            used_bottom.add(j)

    lone_top = [
        SeedPair(t, None, 0.0, (TOP_ONLY,))
        for i, t in enumerate(top)
        if i not in used_top
    ]
    lone_bottom = [
        SeedPair(None, b, 0.0, (BOTTOM_ONLY,))
        for j, b in enumerate(bottom)
        if j not in used_bottom
    ]
    if lone_top or lone_bottom:
        log.debug(
            "pairing: %d pairs, %d top only, %d bottom only",
            len(pairs),
            len(lone_top),
            len(lone_bottom),
        )
    return pairs + lone_top + lone_bottom


def _map_outline(region: SeedRegion, homography: NDArray[np.float64]) -> NDArray:
    """Map the region's outline into the other view: (P, 2) float (x, y) pixels."""
    contours, _ = cv2.findContours(
        region.mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    points = np.concatenate(contours).reshape(-1, 2).astype(np.float64)
    points += (region.bbox[1], region.bbox[0])
    mapped = cv2.perspectiveTransform(points[None], homography)[0]
    return mapped


def _overlap(outline: NDArray, area_px: int, other: SeedRegion) -> float:
    """Share of the smaller of two regions that they have in common."""
    r0, c0, r1, c1 = other.bbox
    canvas = np.zeros((r1 - r0, c1 - c0), np.uint8)
    cv2.fillPoly(canvas, [np.round(outline - (c0, r0)).astype(np.int32)], 1)
    common = int(np.count_nonzero(canvas.view(bool) & other.mask))
    return common / max(min(area_px, other.area_px), 1)
