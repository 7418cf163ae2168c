"""One sample from capture to measured seeds: the steps chained, with progress.

Every step is a plain function elsewhere (`calibration`, `segmentation`,
`matching`); this module only runs them in order, reports progress and honours
cancellation between steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from appliance.matching import SeedPair, match_views
from appliance.segmentation import BORDER, Segmentation, segment
from calibration import CalibrationRecord
from drivers.base import VIEWS, Frame, RigCapture, View

log = logging.getLogger(__name__)

#: progress(step, fraction done in [0, 1])
Progress = Callable[[str, float], None]


class InspectionCancelled(RuntimeError):
    """The operator cancelled the inspection; nothing was saved."""


class FrameRejected(ValueError):
    """A captured frame cannot be measured (overexposed, black, no contrast...)."""


@dataclass(frozen=True, eq=False)
class ViewAnalysis:
    """One view of a sample: the frame, its corrected pixels, its seeds."""

    frame: Frame
    corrected: NDArray[np.uint8]
    segmentation: Segmentation


@dataclass(frozen=True, eq=False)
class SeedObservation:
    """One physical seed: its two views and what was measured of it.

    Attributes
    ----------
    index : int
        Position in the sample, from 1.
    pair : SeedPair
        Its region in each view.
    area_mm2 : float
        Projected area, from the views not cut by the image border.
    flags : tuple of str
        Region and pairing flags of both views.
    """

    index: int
    pair: SeedPair
    area_mm2: float
    flags: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Inspection:
    """Everything measured on one capture."""

    capture: RigCapture
    calibration: CalibrationRecord
    views: dict[View, ViewAnalysis]
    seeds: list[SeedObservation]


def analyse(
    capture: RigCapture,
    calibration: CalibrationRecord,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Inspection:
    """Correct, segment and pair both views of a capture.

    Raises
    ------
    FrameRejected
        If a view is overexposed, black or flat; the message names the camera.
    InspectionCancelled
        If `cancel` is set between two steps.
    """
    report = progress or (lambda step, fraction: None)
    views: dict[View, ViewAnalysis] = {}
    for i, view in enumerate(VIEWS):
        _check_cancel(cancel)
        report(f"segmenting the {view} view", 0.1 + 0.35 * i)
        frame = capture.frame(view)
        height, width = frame.shape
        if (width, height) != calibration.image_size:
            cw, ch = calibration.image_size
            raise FrameRejected(
                f"the {view} frame ({frame.serial}) is {width}x{height} px but the "
                f"calibration is for {cw}x{ch} px; recalibrate the rig after "
                "changing a camera's resolution"
            )
        corrected = calibration.flat_fields[view].apply(frame.pixels)
        seg = segment(corrected)
        if not seg.usable:
            raise FrameRejected(
                f"the {view} camera ({frame.serial}) delivered an unusable frame: "
                f"{', '.join(seg.frame_flags)}; check the light and the exposure, "
                "then capture again"
            )
        views[view] = ViewAnalysis(frame, corrected, seg)

    _check_cancel(cancel)
    report("pairing the top and bottom views", 0.8)
    pairs = match_views(
        views["top"].segmentation.seeds,
        views["bottom"].segmentation.seeds,
        calibration.top_to_bottom,
    )
    seeds = [
        SeedObservation(i, pair, _area_mm2(pair, calibration), _flags(pair))
        for i, pair in enumerate(pairs, start=1)
    ]
    report("measured", 1.0)
    log.info(
        "capture analysed: %d seeds (%d top only, %d bottom only)",
        len(seeds),
        sum(p.top is not None and p.bottom is None for p in pairs),
        sum(p.top is None for p in pairs),
    )
    return Inspection(capture, calibration, views, seeds)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise InspectionCancelled("inspection cancelled; nothing was saved")


def _area_mm2(pair: SeedPair, calibration: CalibrationRecord) -> float:
    """Projected area from the views that see the whole seed (else the largest)."""
    seen = [
        (region.area_px * calibration.mm_per_px[view] ** 2, BORDER in region.flags)
        for view, region in zip(VIEWS, (pair.top, pair.bottom), strict=True)
        if region is not None
    ]
    whole = [area for area, cut in seen if not cut]
    return float(np.mean(whole)) if whole else max(area for area, _ in seen)


def _flags(pair: SeedPair) -> tuple[str, ...]:
    flags = list(pair.flags)
    for region in (pair.top, pair.bottom):
        if region is not None:
            flags += [f for f in region.flags if f not in flags]
    return tuple(flags)
