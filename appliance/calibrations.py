"""Calibrating a rig and finding its current calibration, through the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy.orm import Session

from appliance.files import write_atomic
from appliance.rigs import Ask, RigHandle
from appliance.settings import Settings
from appliance.store import Database, ImageStore, latest_calibration, save_calibration
from calibration import (
    CalibrationError,
    CalibrationMissing,
    CalibrationRecord,
    calibrate,
    flat_field_archive,
    record_files,
    record_from_json,
)

log = logging.getLogger(__name__)


def calibrate_rig(
    handle: RigHandle,
    db: Database,
    images: ImageStore,
    settings: Settings,
    *,
    ask: Ask | None = None,
    after_save: Callable[[Session, int], None] | None = None,
) -> tuple[int, CalibrationRecord]:
    """Capture the blank plate and the target, calibrate, and store the result.

    The flat-field archive goes into the image store, the record into the
    database as the rig's next version, and a copy of both into
    ``calibrations/<rig>/v<version>/`` for `seedqa inspect --calibration`.
    `after_save` is handed to `save_calibration` (it runs in the transaction).

    Returns
    -------
    id : int
        Database id of the new calibration.
    record : CalibrationRecord
        The calibration, with its version set.
    """
    rig = handle.rig
    handle.prepare("blank", ask)
    blank = rig.capture()
    handle.prepare("target", ask)
    target = rig.capture()
    record = calibrate(blank, target, rig=rig.name)

    sha = images.put(flat_field_archive(record), suffix=".npz")
    calibration_id, version = save_calibration(
        db,
        rig_name=rig.name,
        rig_kind=handle.kind,
        record=record.to_json(flat_field_sha256=sha),
        after_save=after_save,
    )
    record = replace(record, version=version)
    write_record(record, settings.calibrations_dir / rig.name / f"v{version}")
    return calibration_id, record


def write_record(record: CalibrationRecord, directory: Path) -> Path:
    """Write a record's files into `directory`, the archive before the JSON.

    Returns the path of ``calibration.json``, which `seedqa inspect --calibration`
    reads.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in record_files(record).items():  # archive first
        write_atomic(directory / name, data)
    path = directory / "calibration.json"
    log.info("calibration of rig %s written to %s", record.rig, path)
    return path


def current_calibration(
    db: Database, images: ImageStore, rig_name: str
) -> tuple[int, CalibrationRecord]:
    """Return the rig's newest calibration and its database id.

    Raises
    ------
    CalibrationMissing
        If the rig has never been calibrated.
    CalibrationError
        If the stored record or its flat-field file is damaged.
    """
    entry = latest_calibration(db, rig_name)
    if entry is None:
        raise CalibrationMissing(
            f"rig {rig_name!r} has no calibration; run `seedqa calibrate` first"
        )
    sha = str(entry.record.get("flat_field_sha256"))
    try:
        archive = images.read(sha, suffix=".npz")
    except (OSError, ValueError) as exc:
        raise CalibrationError(
            f"calibration v{entry.version} of rig {rig_name!r}: its flat field "
            f"cannot be read ({exc}); recalibrate the rig"
        ) from exc
    record = record_from_json(entry.record, archive)
    return entry.id, replace(record, version=entry.version)
