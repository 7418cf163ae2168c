"""Rig calibration: top-to-bottom geometry, scale, flat field and white balance."""

from calibration.photometric import BlankPlateError, FlatField, estimate_flat_field
from calibration.record import (
    CalibrationError,
    CalibrationMissing,
    CalibrationRecord,
    calibrate,
    flat_field_archive,
    load_record,
    record_files,
    record_from_json,
)
from calibration.target import TargetFit, TargetNotFound, fit_target

__all__ = [
    "BlankPlateError",
    "CalibrationError",
    "CalibrationMissing",
    "CalibrationRecord",
    "FlatField",
    "TargetFit",
    "TargetNotFound",
    "calibrate",
    "estimate_flat_field",
    "fit_target",
    "flat_field_archive",
    "load_record",
    "record_files",
    "record_from_json",
]
