"""Find the dot target in an image and fit the homography from target to image."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.target import DotTarget

log = logging.getLogger(__name__)


class TargetNotFound(ValueError):
    """The image does not show the calibration target well enough to fit it."""


@dataclass(frozen=True, eq=False)
class TargetFit:
    """The target found in one view.

    Attributes
    ----------
    target_to_image : (3, 3) float ndarray
        Homography from target millimetres to image pixels.
    grid : (N, 2) int ndarray
        Grid position (column, row) of each dot found.
    centres_px : (N, 2) float ndarray
        Measured dot centres (x, y) in pixels.
    residual_px : float
        RMS distance between measured centres and the fitted homography's.
    """

    target_to_image: NDArray[np.float64]
    grid: NDArray[np.int64]
    centres_px: NDArray[np.float64]
    residual_px: float


def find_dots(
    rgb: NDArray[np.uint8],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centres (x, y) and areas of the dark dots on a light background.

    Centres are darkness-weighted centroids, accurate to a small fraction of a
    pixel on a blurred, anti-aliased dot.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    background = cv2.GaussianBlur(grey, (0, 0), 25.0)
    ink = np.clip(1.0 - grey / np.maximum(background, 1.0), 0, 1)
    level, _ = cv2.threshold(
        (ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    binary = (ink * 255 > max(level, 40)).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)

    h, w = grey.shape
    centres, areas = [], []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 12 or x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        pad = max(bw, bh) // 3 + 2
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        patch = ink[y0 : y + bh + pad, x0 : x + bw + pad]
        weight = np.clip(patch - 0.05, 0, None)
        total = float(weight.sum())
        yy, xx = np.mgrid[0 : patch.shape[0], 0 : patch.shape[1]]
        centres.append(
            (x0 + (weight * xx).sum() / total, y0 + (weight * yy).sum() / total)
        )
        areas.append(area)
    return np.array(centres, np.float64).reshape(-1, 2), np.array(areas, np.float64)


def fit_target(rgb: NDArray[np.uint8], target: DotTarget) -> TargetFit:
    """Locate `target` in an image and fit its homography.

    Raises
    ------
    TargetNotFound
        If the three marker dots or enough grid dots cannot be identified.
    """
    centres, areas = find_dots(rgb)
    if len(centres) < 10:
        raise TargetNotFound(
            f"found {len(centres)} dots, expected about {target.columns * target.rows}"
            "; lay the calibration target flat in the middle of the plate"
        )
    ratio = (target.marker_radius_mm / target.dot_radius_mm) ** 2
    cut = np.median(areas) * (1 + ratio) / 2
    marks = centres[areas > cut]
    if len(marks) != 3:
        raise TargetNotFound(
            f"found {len(marks)} marker dots, expected 3; is the whole target in view?"
        )
    a, b, c = _order_markers(marks)

    # Three markers fix an affine map; it assigns every dot its grid position,
    # which a homography fitted on all dots then refines.
    grid_marks = np.array(target.markers, np.float32)
    affine = cv2.getAffineTransform(grid_marks, np.array([a, b, c], np.float32))
    hom = np.vstack([affine, [0, 0, 1]])
    for _ in range(2):
        grid_f = apply_homography(np.linalg.inv(hom), centres)
        grid = np.round(grid_f).astype(np.int64)
        ok = (
            (np.abs(grid_f - grid).max(axis=1) < 0.3)
            & (grid[:, 0] >= 0)
            & (grid[:, 0] < target.columns)
            & (grid[:, 1] >= 0)
            & (grid[:, 1] < target.rows)
        )
        if ok.sum() < 8:
            raise TargetNotFound(
                f"only {int(ok.sum())} dots fit the target's grid; is it the "
                f"{target.columns}x{target.rows} dot target?"
            )
        hom, _ = cv2.findHomography(grid[ok].astype(np.float64), centres[ok], 0)

    grid, found = grid[ok], centres[ok]
    to_image, _ = cv2.findHomography(grid * target.pitch_mm, found, 0)
    error = apply_homography(to_image, grid * target.pitch_mm) - found
    residual = float(np.sqrt(np.mean(np.sum(error**2, axis=1))))
    log.debug("target fitted on %d dots, residual %.3f px", len(found), residual)
    return TargetFit(to_image / to_image[2, 2], grid, found, residual)


def _order_markers(
    marks: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Name the markers (0, 0), (1, 0), (0, 2) from their distances alone."""
    d = np.linalg.norm(marks[:, None] - marks[None], axis=2)
    a = int(np.argmin(d.sum(axis=1)))
    others = [i for i in range(3) if i != a]
    b, c = sorted(others, key=lambda i: d[a, i])
    return marks[a], marks[b], marks[c]


def apply_homography(
    h: NDArray[np.float64], pts: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Map (N, 2) points through a (3, 3) homography."""
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(h, np.float64).T
    return p[:, :2] / p[:, 2:3]
