"""One sample from capture to measured seeds: the steps chained, with progress.

Every step is a plain function elsewhere (`calibration`, `segmentation`,
`matching`); this module only runs them in order, reports progress and honours
cancellation between steps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from appliance.classifier import SeedClassifier
from appliance.crops import cut_crops
from appliance.fusion import ONE_VIEW, FusedVerdict, fuse_views
from appliance.matching import SeedPair, match_views
from appliance.segmentation import BORDER, CLUMP, Segmentation, segment
from calibration import CalibrationRecord
from drivers.base import VIEWS, Frame, RigCapture, View

log = logging.getLogger(__name__)

#: Region flags that make a view's verdict unreliable for fusion.
UNRELIABLE_REGION_FLAGS = frozenset({BORDER, CLUMP})

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
    top_probs: NDArray[np.float32] | None = None
    bottom_probs: NDArray[np.float32] | None = None
    verdict: FusedVerdict | None = None

    def probs(self, view: View) -> NDArray[np.float32] | None:
        """Class probabilities of one view (None when unseen or unclassified)."""
        return self.top_probs if view == "top" else self.bottom_probs


@dataclass(frozen=True, eq=False)
class Inspection:
    """Everything measured on one capture."""

    capture: RigCapture
    calibration: CalibrationRecord
    views: dict[View, ViewAnalysis]
    seeds: list[SeedObservation]
    classifier: SeedClassifier | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        """The classifier's classes (empty when nothing was classified)."""
        return self.classifier.info.classes if self.classifier else ()

    def fused_class(self, seed: SeedObservation) -> str | None:
        """Return the seed's fused class name, None when not classified."""
        if seed.verdict is None:
            return None
        return self.classes[seed.verdict.class_index]


def analyse(
    capture: RigCapture,
    calibration: CalibrationRecord,
    *,
    classifier: SeedClassifier | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Inspection:
    """Correct, segment, pair, classify and fuse both views of a capture.

    Without a `classifier` the seeds are measured but not classified.

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
    if classifier is not None:
        _check_cancel(cancel)
        report(f"classifying {2 * len(seeds)} seed views", 0.85)
        seeds = classify_seeds(seeds, views, classifier)
    report("measured", 1.0)
    log.info(
        "capture analysed: %d seeds (%d top only, %d bottom only)",
        len(seeds),
        sum(p.top is not None and p.bottom is None for p in pairs),
        sum(p.top is None for p in pairs),
    )
    return Inspection(capture, calibration, views, seeds, classifier)


def classify_seeds(
    seeds: list[SeedObservation],
    views: dict[View, ViewAnalysis],
    classifier: SeedClassifier,
) -> list[SeedObservation]:
    """Classify every view of every seed in one batch, then fuse per seed."""
    info = classifier.info
    jobs: list[tuple[int, View]] = []
    crops = []
    for view in VIEWS:
        regions = [(i, getattr(s.pair, view)) for i, s in enumerate(seeds)]
        regions = [(i, r) for i, r in regions if r is not None]
        if regions:
            crops.append(
                cut_crops(
                    views[view].corrected,
                    [r for _, r in regions],
                    size=info.input_size,
                    margin=float(info.crop.get("margin", 1.15)),
                )
            )
            jobs += [(i, view) for i, _ in regions]
    if not jobs:
        return seeds
    probs = classifier.predict(np.concatenate(crops))
    per_seed: list[dict[View, NDArray[np.float32]]] = [{} for _ in seeds]
    for (i, view), p in zip(jobs, probs, strict=True):
        per_seed[i][view] = p

    pure = info.pure_mask
    out = []
    for seed, found in zip(seeds, per_seed, strict=True):
        trusted = trusted_views(seed, found)
        verdict = fuse_views(trusted.get("top"), trusted.get("bottom"), pure)
        new = [f for f in verdict.flags if f not in seed.flags]
        if len(found) == 2 and ONE_VIEW in new:
            new.remove(ONE_VIEW)  # both classified; one was not trusted to decide
        flags = seed.flags + tuple(new)
        out.append(
            replace(
                seed,
                top_probs=found.get("top"),
                bottom_probs=found.get("bottom"),
                verdict=verdict,
                flags=flags,
            )
        )
    return out


def trusted_views(
    seed: SeedObservation, found: dict[View, NDArray[np.float32]]
) -> dict[View, NDArray[np.float32]]:
    """Return the views whose verdicts may decide the seed.

    A view cut by the image border, or of a clump, shows a straight edge or a
    second seed, which reads as a defect; when the other view sees the seed
    whole, only that one decides. Both views' own verdicts stay in the report.
    """
    doubtful = {
        view
        for view in found
        if set(getattr(seed.pair, view).flags) & UNRELIABLE_REGION_FLAGS
    }
    if doubtful and len(doubtful) < len(found):
        return {view: p for view, p in found.items() if view not in doubtful}
    return found


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
