"""What the screens show, as plain data: no Qt here, so it is tested headless.

The workers build these objects off the GUI thread (overlays drawn, crops cut,
texts worded); the widgets only display them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.crops import cut_crop
from appliance.fusion import LOW_CONFIDENCE, VIEWS_DISAGREE
from appliance.matching import BOTTOM_ONLY, TOP_ONLY
from appliance.overlay import class_colour, draw_overlay, seed_overlay_styles
from appliance.samples import InspectedSample
from appliance.segmentation import BORDER, CLUMP
from drivers.base import VIEWS, View

#: Longest side, in pixels, of the images the screens show.
DISPLAY_SIZE = 1280

#: Side of the seed crops shown when a seed is clicked, in pixels.
CROP_SIZE = 160

#: A calibration older than this is flagged in the status bar.
CALIBRATION_STALE_DAYS = 30.0

Level = Literal["ok", "busy", "warning", "error"]


class Heartbeats(Protocol):
    """Anything the long-lived workers can report being alive to."""

    def beat(self, name: str) -> None:
        """Record that the worker called `name` is alive now."""
        ...


@dataclass(frozen=True)
class Step:
    """One piece of camera, pipeline or database work and the thread it ran on."""

    name: str
    thread_name: str
    thread_id: int


class StepLog:
    """A thread-safe record of which thread ran each step of work.

    The workers record every camera, pipeline and database step here, so a test
    can check that none of them ran on the GUI thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Step] = []

    def record(self, name: str) -> None:
        """Note that step `name` is running on the calling thread."""
        thread = threading.current_thread()
        with self._lock:
            self._steps.append(Step(name, thread.name, threading.get_ident()))

    @property
    def steps(self) -> list[Step]:
        """Every step recorded so far, oldest first."""
        with self._lock:
            return list(self._steps)


@dataclass(frozen=True)
class StatusItem:
    """One field of the status bar: what it shows, how healthy, what to do."""

    text: str
    level: Level = "ok"
    advice: str = ""


@dataclass(frozen=True)
class SeedCard:
    """What the seed detail panel shows for one clicked seed."""

    index: int
    fused_class: str | None
    fused_probability: float | None
    area_mm2: float
    flags: tuple[str, ...]
    crops: dict[View, NDArray[np.uint8] | None]
    probabilities: dict[View, dict[str, float] | None]
    boxes: dict[View, tuple[float, float, float, float] | None]


@dataclass(frozen=True, eq=False)
class InspectionView:
    """A measured sample as the Inspect screen shows it, before it is accepted.

    Attributes
    ----------
    inspected : InspectedSample
        The headless result; saving it is the bench worker's job.
    overlays : dict of view to (h, w, 3) uint8 ndarray
        Each view shrunk to `DISPLAY_SIZE`, seeds outlined in their class colour.
    seed_at_label : dict of view to dict of int to int
        Region label of a view to the seed's index.
    labels : dict of view to (H, W) ndarray
        Full-size label images, for finding the seed under a click.
    seeds : dict of int to SeedCard
        Every seed, by index.
    """

    inspected: InspectedSample
    classes: tuple[str, ...]
    colours: dict[str, tuple[int, int, int]]
    counts: dict[str, int]
    shares_pct: dict[str, float]
    n_seeds: int
    purity_pct: float | None
    purity_ci95: tuple[float, float] | None
    purity_by_weight_pct: float | None
    warnings: tuple[str, ...]
    overlays: dict[View, NDArray[np.uint8]]
    labels: dict[View, NDArray[Any]]
    seed_at_label: dict[View, dict[int, int]]
    seeds: dict[int, SeedCard] = field(default_factory=dict)

    def seed_at(self, view: View, fx: float, fy: float) -> SeedCard | None:
        """Return the seed under a click, or None on the plate.

        Parameters
        ----------
        view : {"top", "bottom"}
            The image clicked.
        fx, fy : float
            The click as a fraction of the image's width and height, in [0, 1].
        """
        labels = self.labels[view]
        h, w = labels.shape
        x = min(max(int(fx * w), 0), w - 1)
        y = min(max(int(fy * h), 0), h - 1)
        index = self.seed_at_label[view].get(int(labels[y, x]))
        return None if index is None else self.seeds[index]


def shrink(rgb: NDArray[np.uint8], size: int = DISPLAY_SIZE) -> NDArray[np.uint8]:
    """Return `rgb` scaled so that its longest side is at most `size` pixels."""
    scale = size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small)


def warning_texts(flag_counts: dict[str, int]) -> tuple[str, ...]:
    """Word the sample's flags for the operator, each with what to do."""
    texts = []
    unpaired = flag_counts.get(TOP_ONLY, 0) + flag_counts.get(BOTTOM_ONLY, 0)
    if unpaired:
        texts.append(
            f"{unpaired} seed(s) seen from one side only: check the plate is clean "
            "and the seeds lie flat"
        )
    if flag_counts.get(CLUMP):
        texts.append(
            f"{flag_counts[CLUMP]} clump(s) of touching seeds: spread them apart "
            "and recapture"
        )
    if flag_counts.get(BORDER):
        texts.append(
            f"{flag_counts[BORDER]} seed(s) on the edge of the image: move them "
            "towards the middle"
        )
    if flag_counts.get(LOW_CONFIDENCE):
        texts.append(
            f"{flag_counts[LOW_CONFIDENCE]} low-confidence seed(s): click them to check"
        )
    if flag_counts.get(VIEWS_DISAGREE):
        texts.append(f"{flag_counts[VIEWS_DISAGREE]} seed(s) whose two views disagree")
    return tuple(texts)


def inspection_view(inspected: InspectedSample) -> InspectionView:
    """Build what the Inspect screen shows of a measured sample.

    Draws both overlays and cuts every seed's crops: run it on a worker thread.
    """
    inspection, report = inspected.inspection, inspected.report
    summary = report["summary"]
    classes = inspection.classes

    overlays: dict[View, NDArray[np.uint8]] = {}
    labels: dict[View, NDArray[Any]] = {}
    seed_at_label: dict[View, dict[int, int]] = {}
    for view in VIEWS:
        analysis = inspection.views[view]
        styles = seed_overlay_styles(inspection, view)
        thickness = max(2, round(max(analysis.corrected.shape[:2]) / DISPLAY_SIZE) * 2)
        overlay = draw_overlay(
            analysis.corrected,
            analysis.segmentation,
            colours=styles["colours"],
            thickness=thickness,
        )
        overlays[view] = shrink(overlay)
        labels[view] = analysis.segmentation.labels
        seed_at_label[view] = dict(styles["numbers"])

    by_index = {seed["index"]: seed for seed in report["seeds"]}
    cards = {}
    for seed in inspection.seeds:
        data = by_index[seed.index]
        crops: dict[View, NDArray[np.uint8] | None] = {}
        boxes: dict[View, tuple[float, float, float, float] | None] = {}
        for view in VIEWS:
            region = seed.pair.top if view == "top" else seed.pair.bottom
            if region is None:
                crops[view], boxes[view] = None, None
                continue
            image = inspection.views[view].corrected
            crops[view] = cut_crop(image, region, size=CROP_SIZE, margin=1.3)
            h, w = image.shape[:2]
            r0, c0, r1, c1 = region.bbox
            boxes[view] = (c0 / w, r0 / h, (c1 - c0) / w, (r1 - r0) / h)
        cards[seed.index] = SeedCard(
            index=seed.index,
            fused_class=data["fused_class"],
            fused_probability=data["fused_probability"],
            area_mm2=float(data["area_mm2"]),
            flags=tuple(data["flags"]),
            crops=crops,
            probabilities={
                view: (data[view] or {}).get("probabilities") for view in VIEWS
            },
            boxes=boxes,
        )

    by_count = summary.get("purity_by_count")
    return InspectionView(
        inspected=inspected,
        classes=classes,
        colours={name: class_colour(name, classes) for name in classes},
        counts=dict(summary.get("counts", {})),
        shares_pct=dict(summary.get("shares_pct", {})),
        n_seeds=int(summary["n_seeds"]),
        purity_pct=None if by_count is None else float(by_count["value_pct"]),
        purity_ci95=None if by_count is None else tuple(by_count["ci95_pct"]),
        purity_by_weight_pct=summary.get("purity_by_weight_pct"),
        warnings=warning_texts(dict(summary.get("flag_counts", {}))),
        overlays=overlays,
        labels=labels,
        seed_at_label=seed_at_label,
        seeds=cards,
    )


def age_text(created_at: datetime, *, now: datetime | None = None) -> str:
    """Say how long ago `created_at` was, in the largest whole unit."""
    seconds = ((now or datetime.now(UTC)) - created_at).total_seconds()
    if seconds < 90:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (1.5 if unit != "min" else 1):
            count = round(seconds / size)
            if unit == "day":
                return f"{count} day{'s' if count != 1 else ''} ago"
            return f"{count} {unit} ago"
    return "just now"


def calibration_status(
    version: int, created_at: datetime, *, now: datetime | None = None
) -> StatusItem:
    """Word the calibration's version and age for the status bar."""
    age_days = ((now or datetime.now(UTC)) - created_at).total_seconds() / 86400
    text = f"v{version}, {age_text(created_at, now=now)}"
    if age_days > CALIBRATION_STALE_DAYS:
        return StatusItem(
            text,
            "warning",
            f"the calibration is {age_days:.0f} days old; recalibrate the rig "
            "(Bench > Calibrate rig)",
        )
    return StatusItem(text)


@dataclass(frozen=True)
class HistoryFilter:
    """What the History screen lists; None means any."""

    lot: str | None = None
    operator: str | None = None
    recipe: str | None = None
    since: datetime | None = None
    until: datetime | None = None
