"""Saving and loading samples and calibrations.

A sample is saved whole or not at all: its image files are written (atomically, by
content hash) before the transaction that inserts the rig, sample, capture and seed
rows, so a committed row never names a missing file, and any failure rolls back
every row. An image file left by a failed save is harmless: it is named by its
content, and the next save of the same image reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from appliance.store.db import Database
from appliance.store.images import ImageStore
from appliance.store.models import VIEW_NAMES, Calibration, Capture, Rig, Sample, Seed

log = logging.getLogger(__name__)

#: The keys a seed dict given to `save_sample` may have; only "index" is required.
SEED_FIELDS: frozenset[str] = frozenset(
    {
        "index",
        "top_label",
        "bottom_label",
        "top_bbox",
        "bottom_bbox",
        "area_mm2",
        "fused_class",
        "flags",
        "data",
    }
)

#: The numbers `save_calibration` reads from a calibration record's top level.
CALIBRATION_FIGURES: tuple[str, ...] = (
    "residual_px",
    "mm_per_px_top",
    "mm_per_px_bottom",
)


class SampleNotFound(LookupError):
    """No sample with the requested id is stored."""

    def __init__(self, sample_id: int) -> None:
        super().__init__(
            f"no sample with id {sample_id} in the database; list the stored samples "
            "to find its id"
        )
        self.sample_id = sample_id


class CalibrationNotFound(LookupError):
    """No calibration with the requested id is stored."""

    def __init__(self, calibration_id: int) -> None:
        super().__init__(
            f"no calibration with id {calibration_id} in the database; calibrate the "
            "rig or pass no calibration"
        )
        self.calibration_id = calibration_id


class RigMismatch(ValueError):
    """A rig is stored with another kind, or a calibration is another rig's."""


class CaptureInput(NamedTuple):
    """One view of a sample as handed to `save_sample`.

    Attributes
    ----------
    view : {"top", "bottom"}
        Which side of the plate the image shows.
    camera_serial : str
        Serial number of the camera that took it.
    image : (H, W, 3) uint8 ndarray
        RGB pixels.
    timestamp : datetime
        When the exposure happened (timezone-aware).
    exposure_us : float
        Exposure time in microseconds.
    """

    view: str
    camera_serial: str
    image: NDArray[np.uint8]
    timestamp: datetime
    exposure_us: float


@dataclass(frozen=True)
class CaptureRecord:
    """A stored capture; the image is `ImageStore.path(image_sha256)`."""

    view: str
    camera_serial: str
    image_sha256: str
    width: int
    height: int
    timestamp: datetime
    exposure_us: float


@dataclass(frozen=True)
class SeedRecord:
    """A stored seed; bounding boxes are ``(x, y, w, h)`` in pixels."""

    index: int
    top_label: int | None
    bottom_label: int | None
    top_bbox: tuple[int, ...] | None
    bottom_bbox: tuple[int, ...] | None
    area_mm2: float | None
    fused_class: str | None
    flags: tuple[str, ...]
    data: dict[str, Any] | None


@dataclass(frozen=True)
class SampleRecord:
    """A stored sample with its captures (top first) and seeds (by index)."""

    id: int
    rig_name: str
    rig_kind: str
    calibration_id: int | None
    lot: str
    code: str
    recipe: str
    operator: str
    captured_at: datetime
    status: str
    summary: dict[str, Any] | None
    captures: tuple[CaptureRecord, ...]
    seeds: tuple[SeedRecord, ...]

    def capture(self, view: str) -> CaptureRecord:
        """Return the capture of `view`, or raise LookupError if there is none."""
        for capture in self.captures:
            if capture.view == view:
                return capture
        raise LookupError(f"sample {self.id} has no {view!r} capture")


@dataclass(frozen=True)
class SampleListing:
    """One line of the sample history: a sample without its captures and seeds."""

    id: int
    rig_name: str
    lot: str
    code: str
    recipe: str
    operator: str
    captured_at: datetime
    status: str
    seed_count: int


@dataclass(frozen=True)
class CalibrationEntry:
    """A stored calibration: its version for the rig, key figures and full record."""

    id: int
    rig_name: str
    version: int
    created_at: datetime
    residual_px: float
    mm_per_px_top: float
    mm_per_px_bottom: float
    record: dict[str, Any]
    record_sha256: str


def to_json_value(value: Any) -> Any:
    """Return `value` as plain JSON data: numpy scalars and arrays become Python.

    Tuples become lists, so what is stored is what comes back.

    Raises
    ------
    TypeError
        If `value` holds something JSON cannot represent, or a non-string dict key.
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            plain[key] = to_json_value(item)
        return plain
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} is the naive datetime {value.isoformat()}; pass a "
            "timezone-aware datetime, e.g. datetime.now(UTC)"
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _seed_columns(seed: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(seed) - SEED_FIELDS
    if unknown:
        raise ValueError(
            f"seed has unknown keys {sorted(unknown)}; expected some of "
            f"{sorted(SEED_FIELDS)}"
        )
    if "index" not in seed:
        raise ValueError(f"seed has no 'index'; got keys {sorted(seed)}")

    area = seed.get("area_mm2")
    fused_class = seed.get("fused_class")
    return {
        "index": int(seed["index"]),
        "top_label": _optional_int(seed.get("top_label")),
        "bottom_label": _optional_int(seed.get("bottom_label")),
        "top_bbox": to_json_value(seed.get("top_bbox")),
        "bottom_bbox": to_json_value(seed.get("bottom_bbox")),
        "area_mm2": None if area is None else float(area),
        "fused_class": None if fused_class is None else str(fused_class),
        "flags": [str(flag) for flag in seed.get("flags") or ()],
        "data": to_json_value(seed.get("data")),
    }


def _check_captures(captures: Sequence[CaptureInput]) -> None:
    views = [capture.view for capture in captures]
    if len(set(views)) != len(views) or not set(views) <= set(VIEW_NAMES):
        raise ValueError(
            f"expected at most one capture per view of {VIEW_NAMES}, got views {views}"
        )
    for capture in captures:
        _require_aware(capture.timestamp, f"the {capture.view} capture's timestamp")


def _get_or_create_rig(
    session: Session,
    *,
    name: str,
    kind: str,
    top_serial: str | None = None,
    bottom_serial: str | None = None,
) -> Rig:
    rig = session.scalars(select(Rig).where(Rig.name == name)).one_or_none()
    if rig is None:
        rig = Rig(
            name=name, kind=kind, top_serial=top_serial, bottom_serial=bottom_serial
        )
        session.add(rig)
        session.flush()
        log.info(
            "new %s rig %r (top %s, bottom %s)", kind, name, top_serial, bottom_serial
        )
        return rig

    if rig.kind != kind:
        raise RigMismatch(
            f"rig {name!r} is stored as a {rig.kind!r} rig, not {kind!r}; give the "
            f"{kind} rig a name of its own"
        )
    for attribute, serial in (
        ("top_serial", top_serial),
        ("bottom_serial", bottom_serial),
    ):
        stored = getattr(rig, attribute)
        if serial is not None and serial != stored:
            if stored is not None:
                log.warning(
                    "rig %r: %s camera changed from %s to %s",
                    name,
                    attribute.removesuffix("_serial"),
                    stored,
                    serial,
                )
            setattr(rig, attribute, serial)
    return rig


def save_sample(
    db: Database,
    image_store: ImageStore,
    *,
    rig_name: str,
    rig_kind: str,
    top_serial: str,
    bottom_serial: str,
    calibration_id: int | None,
    lot: str,
    code: str,
    recipe: str,
    operator: str,
    captured_at: datetime,
    captures: Sequence[CaptureInput | tuple[str, str, NDArray[Any], datetime, float]],
    seeds: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any] | None,
    status: str = "complete",
    after_save: Callable[[Session, int], None] | None = None,
) -> int:
    """Store one sample, its images, captures and seeds, whole or not at all.

    Parameters
    ----------
    db : Database
        The open database.
    image_store : ImageStore
        Where the capture images are written, as lossless PNG named by SHA-256.
    rig_name, rig_kind : str
        The rig, found by name or created; `rig_kind` is e.g. ``"simulated"`` or
        ``"genicam"`` and must match a stored rig's kind.
    top_serial, bottom_serial : str
        Serials of the rig's cameras; a stored rig is updated to them.
    calibration_id : int or None
        The calibration the sample was measured with; it must belong to the rig.
    lot, code : str
        Seed lot and sample code as typed by the operator; a code may be captured
        again, each capture being a new sample.
    recipe, operator : str
        The inspection recipe's name and who ran it.
    captured_at : datetime
        When the sample was captured (timezone-aware).
    captures : sequence of CaptureInput
        Or plain ``(view, camera_serial, image, timestamp, exposure_us)`` tuples; at
        most one per view; `image` is an (H, W, 3) uint8 RGB array.
    seeds : sequence of dict
        One per physical seed, keyed by `SEED_FIELDS`; ``"index"`` is required and
        unique within the sample.
    summary : dict or None
        The sample's purity summary, stored as JSON.
    status : str
        The sample's state, ``"complete"`` unless told otherwise.
    after_save : callable, optional
        Called as ``after_save(session, sample_id)`` once the rows are flushed and
        before they commit, for work that must commit with the sample or not at
        all (its audit row); an exception from it rolls the sample back.

    Returns
    -------
    int
        The new sample's id.

    Raises
    ------
    ValueError
        For malformed captures or seeds, or naive datetimes (nothing is written).
    RigMismatch
        If the rig is stored with another kind or the calibration is another rig's.
    CalibrationNotFound
        If `calibration_id` names no calibration.
    sqlalchemy.exc.IntegrityError
        If a row breaks a constraint, such as two seeds with one index.
    """
    _require_aware(captured_at, "captured_at")
    capture_inputs = [CaptureInput(*capture) for capture in captures]
    _check_captures(capture_inputs)
    seed_columns = [_seed_columns(seed) for seed in seeds]
    summary_json = None if summary is None else to_json_value(summary)

    # Files first: once the rows commit, the images they name are on disk.
    shas = [image_store.put_image(capture.image) for capture in capture_inputs]

    with db.session() as session:
        rig = _get_or_create_rig(
            session,
            name=rig_name,
            kind=rig_kind,
            top_serial=top_serial,
            bottom_serial=bottom_serial,
        )
        if calibration_id is not None:
            _check_calibration_of(session, calibration_id, rig)

        sample = Sample(
            rig=rig,
            calibration_id=calibration_id,
            lot=lot,
            code=code,
            recipe=recipe,
            operator=operator,
            captured_at=captured_at,
            status=status,
            summary=summary_json,
        )
        sample.captures = [
            Capture(
                view=capture.view,
                camera_serial=capture.camera_serial,
                image_sha256=sha,
                width=int(capture.image.shape[1]),
                height=int(capture.image.shape[0]),
                timestamp=capture.timestamp,
                exposure_us=float(capture.exposure_us),
            )
            for capture, sha in zip(capture_inputs, shas, strict=True)
        ]
        sample.seeds = [Seed(**columns) for columns in seed_columns]
        session.add(sample)
        session.flush()
        sample_id = sample.id
        if after_save is not None:
            after_save(session, sample_id)

    log.info(
        "saved sample %s of lot %s as id %d (%d seeds, %d captures)",
        code,
        lot,
        sample_id,
        len(seed_columns),
        len(capture_inputs),
    )
    return sample_id


def _check_calibration_of(session: Session, calibration_id: int, rig: Rig) -> None:
    calibration = session.get(Calibration, calibration_id)
    if calibration is None:
        raise CalibrationNotFound(calibration_id)
    if calibration.rig_id != rig.id:
        raise RigMismatch(
            f"calibration {calibration_id} belongs to rig {calibration.rig.name!r}, "
            f"not {rig.name!r}; use the latest calibration of {rig.name!r}"
        )


def _record_sha256(record: Mapping[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _calibration_figures(record: Mapping[str, Any]) -> dict[str, float]:
    missing = [key for key in CALIBRATION_FIGURES if key not in record]
    if missing:
        raise ValueError(
            f"calibration record lacks {missing}; expected numbers under the keys "
            f"{list(CALIBRATION_FIGURES)}, got keys {sorted(record)}"
        )

    figures = {}
    for key in CALIBRATION_FIGURES:
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValueError(f"calibration record's {key!r} is {value!r}, not a number")
        if not math.isfinite(float(value)):
            raise ValueError(f"calibration record's {key!r} is {value}, not finite")
        figures[key] = float(value)
    return figures


def save_calibration(
    db: Database,
    *,
    rig_name: str,
    rig_kind: str,
    record: Mapping[str, Any],
    after_save: Callable[[Session, int], None] | None = None,
) -> tuple[int, int]:
    """Store a calibration record as the rig's next version.

    Parameters
    ----------
    db : Database
        The open database.
    rig_name, rig_kind : str
        The rig, found by name or created.
    record : dict
        The whole calibration record, JSON-serialisable (numpy values are
        converted), with finite numbers under `CALIBRATION_FIGURES`.
    after_save : callable, optional
        Called as ``after_save(session, calibration_id)`` before the commit, for
        work that must commit with the calibration (its audit row).

    Returns
    -------
    id : int
        The new calibration's id.
    version : int
        Its version for this rig: 1 for the first, then one more than the last.
    """
    plain = to_json_value(record)
    figures = _calibration_figures(plain)

    with db.session() as session:
        rig = _get_or_create_rig(session, name=rig_name, kind=rig_kind)
        last = session.scalar(
            select(func.max(Calibration.version)).where(Calibration.rig_id == rig.id)
        )
        version = 1 if last is None else last + 1
        calibration = Calibration(
            rig=rig,
            version=version,
            record=plain,
            record_sha256=_record_sha256(plain),
            **figures,
        )
        session.add(calibration)
        session.flush()
        calibration_id = calibration.id
        if after_save is not None:
            after_save(session, calibration_id)

    log.info(
        "saved calibration %d of rig %r as version %d (residual %.3f px)",
        calibration_id,
        rig_name,
        version,
        figures["residual_px"],
    )
    return calibration_id, version


def _calibration_entry(calibration: Calibration) -> CalibrationEntry:
    return CalibrationEntry(
        id=calibration.id,
        rig_name=calibration.rig.name,
        version=calibration.version,
        created_at=calibration.created_at,
        residual_px=calibration.residual_px,
        mm_per_px_top=calibration.mm_per_px_top,
        mm_per_px_bottom=calibration.mm_per_px_bottom,
        record=calibration.record,
        record_sha256=calibration.record_sha256,
    )


def latest_calibration(db: Database, rig_name: str) -> CalibrationEntry | None:
    """Return the rig's newest calibration, or None if it has none.

    Parameters
    ----------
    db : Database
        The open database.
    rig_name : str
        The rig's name.

    Returns
    -------
    CalibrationEntry or None
        Its `record` is the dict given to `save_calibration`.
    """
    with db.session() as session:
        calibration = session.scalars(
            select(Calibration)
            .join(Calibration.rig)
            .where(Rig.name == rig_name)
            .order_by(Calibration.version.desc())
            .limit(1)
        ).one_or_none()
        return None if calibration is None else _calibration_entry(calibration)


def get_calibration(db: Database, calibration_id: int) -> CalibrationEntry:
    """Return the calibration of id `calibration_id`.

    Raises
    ------
    CalibrationNotFound
        If there is none.
    """
    with db.session() as session:
        calibration = session.get(Calibration, calibration_id)
        if calibration is None:
            raise CalibrationNotFound(calibration_id)
        return _calibration_entry(calibration)


def _seed_record(seed: Seed) -> SeedRecord:
    return SeedRecord(
        index=seed.index,
        top_label=seed.top_label,
        bottom_label=seed.bottom_label,
        top_bbox=None if seed.top_bbox is None else tuple(seed.top_bbox),
        bottom_bbox=None if seed.bottom_bbox is None else tuple(seed.bottom_bbox),
        area_mm2=seed.area_mm2,
        fused_class=seed.fused_class,
        flags=tuple(seed.flags),
        data=seed.data,
    )


def get_sample(db: Database, sample_id: int) -> SampleRecord:
    """Return the sample of id `sample_id` with its captures and seeds.

    Raises
    ------
    SampleNotFound
        If there is none.
    """
    with db.session() as session:
        sample = session.get(
            Sample,
            sample_id,
            options=[
                selectinload(Sample.rig),
                selectinload(Sample.captures),
                selectinload(Sample.seeds),
            ],
        )
        if sample is None:
            raise SampleNotFound(sample_id)

        captures = sorted(sample.captures, key=lambda c: VIEW_NAMES.index(c.view))
        return SampleRecord(
            id=sample.id,
            rig_name=sample.rig.name,
            rig_kind=sample.rig.kind,
            calibration_id=sample.calibration_id,
            lot=sample.lot,
            code=sample.code,
            recipe=sample.recipe,
            operator=sample.operator,
            captured_at=sample.captured_at,
            status=sample.status,
            summary=sample.summary,
            captures=tuple(
                CaptureRecord(
                    view=capture.view,
                    camera_serial=capture.camera_serial,
                    image_sha256=capture.image_sha256,
                    width=capture.width,
                    height=capture.height,
                    timestamp=capture.timestamp,
                    exposure_us=capture.exposure_us,
                )
                for capture in captures
            ),
            seeds=tuple(_seed_record(seed) for seed in sample.seeds),
        )


def list_samples(
    db: Database,
    *,
    lot: str | None = None,
    operator: str | None = None,
    recipe: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[SampleListing]:
    """Return stored samples, newest capture first.

    Parameters
    ----------
    db : Database
        The open database.
    lot : str, optional
        Only the samples of this lot.
    operator, recipe : str, optional
        Only the samples run by this operator, or with this recipe.
    since, until : datetime, optional
        Only the samples captured at or after `since` and before `until`
        (timezone-aware).
    limit : int, optional
        At most this many samples.

    Returns
    -------
    list of SampleListing
        Ordered by `captured_at`, then id, both descending.
    """
    seed_count = (
        select(func.count(Seed.id))
        .where(Seed.sample_id == Sample.id)
        .correlate(Sample)
        .scalar_subquery()
    )
    query = (
        select(Sample, Rig.name, seed_count)
        .join(Sample.rig)
        .order_by(Sample.captured_at.desc(), Sample.id.desc())
    )
    if lot is not None:
        query = query.where(Sample.lot == lot)
    if operator is not None:
        query = query.where(Sample.operator == operator)
    if recipe is not None:
        query = query.where(Sample.recipe == recipe)
    if since is not None:
        _require_aware(since, "since")
        query = query.where(Sample.captured_at >= since)
    if until is not None:
        _require_aware(until, "until")
        query = query.where(Sample.captured_at < until)
    if limit is not None:
        query = query.limit(limit)

    with db.session() as session:
        return [
            SampleListing(
                id=sample.id,
                rig_name=rig_name,
                lot=sample.lot,
                code=sample.code,
                recipe=sample.recipe,
                operator=sample.operator,
                captured_at=sample.captured_at,
                status=sample.status,
                seed_count=count,
            )
            for sample, rig_name, count in session.execute(query)
        ]
