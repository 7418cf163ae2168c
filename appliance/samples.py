"""Capturing a sample: capture, analyse, store whole, and report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from appliance.classifier import SeedClassifier
from appliance.identifiers import normalise_code, normalise_operator
from appliance.inspection import Inspection, Progress, analyse
from appliance.recipes import Recipe
from appliance.report import sample_report
from appliance.rigs import Ask, RigHandle
from appliance.store import CaptureInput, Database, ImageStore, save_sample
from calibration import CalibrationRecord
from drivers.base import VIEWS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleInfo:
    """What the operator types for a sample, checked and normalised."""

    lot: str
    code: str
    recipe: str
    operator: str

    @classmethod
    def create(cls, *, lot: str, code: str, recipe: str, operator: str) -> SampleInfo:
        """Check and normalise each field.

        Raises
        ------
        InvalidSampleCode
            If a field is empty or holds characters that are not allowed.
        """
        return cls(
            lot=normalise_code(lot, what="lot code"),
            code=normalise_code(code, what="sample code"),
            recipe=normalise_code(recipe, what="recipe name"),
            operator=normalise_operator(operator),
        )


@dataclass(frozen=True, eq=False)
class StoredSample:
    """A sample that is in the database, with its report."""

    id: int
    inspection: Inspection
    report: dict[str, Any]


@dataclass(frozen=True, eq=False)
class InspectedSample:
    """A sample captured and measured but not yet stored.

    The operator looks at it first: `save_inspected` stores it on acceptance; a
    discarded one is simply dropped, leaving nothing behind.
    """

    info: SampleInfo
    rig_name: str
    rig_kind: str
    calibration_id: int
    captured_at: datetime
    inspection: Inspection
    report: dict[str, Any]


def inspect_sample(
    handle: RigHandle,
    calibration: tuple[int, CalibrationRecord],
    info: SampleInfo,
    *,
    classifier: SeedClassifier | None,
    recipe: Recipe | None,
    ask: Ask | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> InspectedSample:
    """Capture one sample on the rig and measure it, without storing anything.

    Raises
    ------
    InspectionCancelled
        If `cancel` is set between two steps.
    FrameRejected, CameraError
        If a camera fails or delivers a frame that cannot be measured.
    """
    calibration_id, record = calibration
    report = progress or (lambda step, fraction: None)
    report("capturing", 0.0)
    handle.prepare("sample", ask)
    capture = handle.rig.capture()
    captured_at = datetime.now(UTC)
    inspection = analyse(
        capture,
        record,
        classifier=classifier,
        progress=lambda step, fraction: report(step, 0.1 + 0.75 * fraction),
        cancel=cancel,
    )

    meta: dict[str, Any] = {
        "id": None,
        "lot": info.lot,
        "code": info.code,
        "recipe": info.recipe,
        "operator": info.operator,
        "captured_at": captured_at,
        "rig": handle.rig.name,
    }
    full = sample_report(sample=meta, inspection=inspection, recipe=recipe)
    report("measured", 0.9)
    log.info("sample %s of lot %s measured", info.code, info.lot)
    return InspectedSample(
        info=info,
        rig_name=handle.rig.name,
        rig_kind=handle.kind,
        calibration_id=calibration_id,
        captured_at=captured_at,
        inspection=inspection,
        report=full,
    )


def save_inspected(
    db: Database,
    images: ImageStore,
    inspected: InspectedSample,
    *,
    after_save: Callable[[Session, int], None] | None = None,
) -> StoredSample:
    """Store a measured sample, its images and seeds, in one transaction.

    `after_save` is handed to `save_sample`: it runs inside the sample's
    transaction (the audit row of the capture is written there).
    """
    info, capture = inspected.info, inspected.inspection.capture
    full = {**inspected.report, "sample": dict(inspected.report["sample"])}
    sample_id = save_sample(
        db,
        images,
        rig_name=inspected.rig_name,
        rig_kind=inspected.rig_kind,
        top_serial=capture.top.serial,
        bottom_serial=capture.bottom.serial,
        calibration_id=inspected.calibration_id,
        lot=info.lot,
        code=info.code,
        recipe=info.recipe,
        operator=info.operator,
        captured_at=inspected.captured_at,
        captures=[
            CaptureInput(
                view,
                capture.frame(view).serial,
                capture.frame(view).pixels,
                capture.frame(view).timestamp,
                capture.frame(view).exposure_us,
            )
            for view in VIEWS
        ],
        seeds=[_seed_row(seed) for seed in full["seeds"]],
        summary={k: v for k, v in full.items() if k not in ("seeds", "files")},
        after_save=after_save,
    )
    full["sample"]["id"] = sample_id
    log.info("sample %s of lot %s stored as %d", info.code, info.lot, sample_id)
    return StoredSample(sample_id, inspected.inspection, full)


def capture_sample(
    handle: RigHandle,
    calibration: tuple[int, CalibrationRecord],
    db: Database,
    images: ImageStore,
    info: SampleInfo,
    *,
    classifier: SeedClassifier | None,
    recipe: Recipe | None,
    ask: Ask | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    after_save: Callable[[Session, int], None] | None = None,
) -> StoredSample:
    """Capture one sample on the rig, measure it and store it in one transaction.

    `inspect_sample` then `save_inspected` (which `after_save` goes to). Nothing
    is stored if any step fails or is cancelled.
    """
    report = progress or (lambda step, fraction: None)
    inspected = inspect_sample(
        handle,
        calibration,
        info,
        classifier=classifier,
        recipe=recipe,
        ask=ask,
        progress=report,
        cancel=cancel,
    )
    report("saving", 0.9)
    stored = save_inspected(db, images, inspected, after_save=after_save)
    report("done", 1.0)
    return stored


def _seed_row(seed: dict[str, Any]) -> dict[str, Any]:
    """Return the database row of one seed of a report."""
    top, bottom = seed["top"], seed["bottom"]
    return {
        "index": seed["index"],
        "top_label": top["label"] if top else None,
        "bottom_label": bottom["label"] if bottom else None,
        "top_bbox": top["bbox"] if top else None,
        "bottom_bbox": bottom["bbox"] if bottom else None,
        "area_mm2": seed["area_mm2"],
        "fused_class": seed["fused_class"],
        "flags": seed["flags"],
        "data": seed,
    }
