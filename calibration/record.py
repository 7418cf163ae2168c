"""A rig's calibration: geometry between the views, scale, and flat fields.

A record is computed from two captures (the empty plate, then the dot target),
stored as a versioned JSON document with its flat-field gains in a NumPy archive
named by its SHA-256, and read back with every field checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calibration.photometric import FlatField, estimate_flat_field
from calibration.target import TargetFit, apply_homography, fit_target
from drivers.base import VIEWS, RigCapture, View
from drivers.target import DotTarget

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class CalibrationError(ValueError):
    """A calibration could not be computed or read."""


class CalibrationMissing(CalibrationError):
    """No calibration exists for the rig."""


@dataclass(frozen=True, eq=False)
class CalibrationRecord:
    """Everything the pipeline needs to know about a calibrated rig.

    Attributes
    ----------
    rig : str
        Name of the rig.
    created_at : datetime
        When the captures were taken (UTC).
    image_size : (width, height)
        Image size of both cameras, pixels.
    target_to_view : dict of view to (3, 3) ndarray
        Homographies from target millimetres to each view's pixels; the target lies
        on the plate, so they map plate millimetres too.
    top_to_bottom : (3, 3) ndarray
        Homography from top-view pixels to bottom-view pixels.
    residual_px : float
        RMS error of `top_to_bottom` on the target's dots, bottom-view pixels.
    view_residual_px : dict of view to float
        RMS error of each view's target fit.
    mm_per_px : dict of view to float
        Scale at each image's centre.
    flat_fields : dict of view to FlatField
        Photometric correction of each view.
    serials : dict of view to str
        Cameras that took the captures.
    """

    rig: str
    created_at: datetime
    image_size: tuple[int, int]
    target_to_view: dict[View, NDArray[np.float64]]
    top_to_bottom: NDArray[np.float64]
    residual_px: float
    view_residual_px: dict[View, float]
    mm_per_px: dict[View, float]
    flat_fields: dict[View, FlatField]
    serials: dict[View, str]
    target: DotTarget
    version: int | None = None

    def age_days(self, now: datetime | None = None) -> float:
        """Days since the calibration captures."""
        now = now or datetime.now(UTC)
        return (now - self.created_at).total_seconds() / 86400

    def to_json(self, *, flat_field_sha256: str | None = None) -> dict[str, Any]:
        """Plain-data form; flat-field gains are named by the archive's hash."""
        return {
            "schema_version": SCHEMA_VERSION,
            "rig": self.rig,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "image_size": list(self.image_size),
            "target": self.target.to_json(),
            "serials": dict(self.serials),
            "target_to_view": {v: self.target_to_view[v].tolist() for v in VIEWS},
            "top_to_bottom": self.top_to_bottom.tolist(),
            "residual_px": self.residual_px,
            "view_residual_px": dict(self.view_residual_px),
            "mm_per_px_top": self.mm_per_px["top"],
            "mm_per_px_bottom": self.mm_per_px["bottom"],
            "flat_field_sha256": flat_field_sha256,
        }


def calibrate(
    blank: RigCapture,
    target_capture: RigCapture,
    *,
    rig: str,
    target: DotTarget | None = None,
) -> CalibrationRecord:
    """Compute a rig's calibration from an empty-plate and a target capture.

    Parameters
    ----------
    blank : RigCapture
        Both views of the empty, lit plate.
    target_capture : RigCapture
        Both views of the dot target lying on the plate.
    rig : str
        Name of the rig.
    target : DotTarget, optional
        Layout of the target; the standard one by default.

    Raises
    ------
    CalibrationError
        If a capture is unusable; the message says which and why.
    """
    target = target or DotTarget()
    flat: dict[View, FlatField] = {}
    fits: dict[View, TargetFit] = {}
    for view in VIEWS:
        try:
            flat[view] = estimate_flat_field(blank.frame(view).pixels)
            corrected = flat[view].apply(target_capture.frame(view).pixels)
            fits[view] = fit_target(corrected, target)
        except ValueError as exc:
            raise CalibrationError(f"{view} camera: {exc}") from exc

    sizes = {blank.frame(v).pixels.shape[:2] for v in VIEWS}
    if len(sizes) != 1:
        raise CalibrationError(f"the two cameras deliver different sizes: {sizes}")
    h, w = sizes.pop()

    to_view = {v: fits[v].target_to_image for v in VIEWS}
    top_to_bottom = to_view["bottom"] @ np.linalg.inv(to_view["top"])
    top_to_bottom /= top_to_bottom[2, 2]
    residual = _pair_residual(fits, top_to_bottom)
    mm_per_px = {v: _mm_per_px(to_view[v], (w, h)) for v in VIEWS}
    record = CalibrationRecord(
        rig=rig,
        created_at=target_capture.top.timestamp,
        image_size=(w, h),
        target_to_view=to_view,
        top_to_bottom=top_to_bottom,
        residual_px=residual,
        view_residual_px={v: fits[v].residual_px for v in VIEWS},
        mm_per_px=mm_per_px,
        flat_fields=flat,
        serials={v: blank.frame(v).serial for v in VIEWS},
        target=target,
    )
    log.info(
        "rig %s calibrated: top-to-bottom residual %.3f px, %.4f / %.4f mm per px",
        rig,
        residual,
        mm_per_px["top"],
        mm_per_px["bottom"],
    )
    return record


def _pair_residual(fits: dict[View, TargetFit], top_to_bottom: NDArray) -> float:
    """RMS distance between bottom dots and the top dots mapped onto them."""
    top_fit, bottom_fit = fits["top"], fits["bottom"]
    top = {
        tuple(g): c
        for g, c in zip(top_fit.grid.tolist(), top_fit.centres_px, strict=True)
    }
    pairs = [
        (top[tuple(g)], c)
        for g, c in zip(bottom_fit.grid.tolist(), bottom_fit.centres_px, strict=True)
        if tuple(g) in top
    ]
    if len(pairs) < 8:
        raise CalibrationError(
            f"only {len(pairs)} target dots are seen by both cameras; centre the "
            "target on the plate"
        )
    src = np.array([p[0] for p in pairs])
    dst = np.array([p[1] for p in pairs])
    mapped = apply_homography(top_to_bottom, src)
    return float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1))))


def _mm_per_px(target_to_view: NDArray, image_size: tuple[int, int]) -> float:
    """Scale at the image centre, from the local Jacobian of image -> target."""
    inv = np.linalg.inv(target_to_view)
    x, y = image_size[0] / 2, image_size[1] / 2
    d = inv[2, 0] * x + inv[2, 1] * y + inv[2, 2]
    u = (inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]) / d
    v = (inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]) / d
    jac = np.array(
        [
            [(inv[0, 0] - u * inv[2, 0]) / d, (inv[0, 1] - u * inv[2, 1]) / d],
            [(inv[1, 0] - v * inv[2, 0]) / d, (inv[1, 1] - v * inv[2, 1]) / d],
        ]
    )
    return float(np.sqrt(abs(np.linalg.det(jac))))


def flat_field_archive(record: CalibrationRecord) -> bytes:
    """Pack the flat-field gains of both views as a NumPy ``.npz`` archive."""
    buffer = io.BytesIO()
    # Named keywords, not a ** mapping: mypy would match a mapping's values
    # against savez's own `allow_pickle` flag.
    gains = record.flat_fields
    np.savez_compressed(buffer, top=gains["top"].gain, bottom=gains["bottom"].gain)
    return buffer.getvalue()


def record_files(record: CalibrationRecord) -> dict[str, bytes]:
    """Return the files of a record: ``calibration.json`` and its flat-field archive.

    The archive is named by its SHA-256, which the JSON names, so a reader can
    tell whether the two belong together.
    """
    archive = flat_field_archive(record)
    sha = hashlib.sha256(archive).hexdigest()
    text = json.dumps(record.to_json(flat_field_sha256=sha), indent=2)
    return {f"flat-{sha}.npz": archive, "calibration.json": text.encode()}


def load_record(path: Path, *, archive: bytes | None = None) -> CalibrationRecord:
    """Read a calibration JSON file (and its flat-field archive) back.

    Parameters
    ----------
    path : Path
        The JSON file.
    archive : bytes, optional
        The flat-field archive, when it is not a file beside `path`.

    Raises
    ------
    CalibrationError
        If the file is missing, unreadable, of another schema, or its archive's
        hash does not match.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CalibrationMissing(
            f"no calibration file at {path}; run `seedqa calibrate` first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read calibration {path}: {exc}") from exc
    if archive is None:
        sha = str(data.get("flat_field_sha256", ""))
        archive_path = Path(path).parent / f"flat-{sha}.npz"
        try:
            archive = archive_path.read_bytes()
        except OSError as exc:
            raise CalibrationError(
                f"calibration {path} names flat field {archive_path.name}, which "
                f"cannot be read ({exc}); recalibrate the rig"
            ) from exc
    return record_from_json(data, archive)


def record_from_json(data: dict[str, Any], archive: bytes) -> CalibrationRecord:
    """Build a record from its JSON form and flat-field archive, checking both."""
    if data.get("schema_version") != SCHEMA_VERSION:
        raise CalibrationError(
            f"calibration schema {data.get('schema_version')!r} is not supported "
            f"(expected {SCHEMA_VERSION}); recalibrate the rig"
        )
    if hashlib.sha256(archive).hexdigest() != data.get("flat_field_sha256"):
        raise CalibrationError(
            "the flat-field archive does not match the calibration's SHA-256; the "
            "files were changed or mixed up; recalibrate the rig"
        )
    try:
        with np.load(io.BytesIO(archive), allow_pickle=False) as npz:
            gains = {v: np.asarray(npz[v], np.float32) for v in VIEWS}
        size = tuple(int(s) for s in data["image_size"])
        target = data["target"]
        return CalibrationRecord(
            rig=str(data["rig"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            image_size=(size[0], size[1]),
            target_to_view={
                v: np.array(data["target_to_view"][v], np.float64) for v in VIEWS
            },
            top_to_bottom=np.array(data["top_to_bottom"], np.float64),
            residual_px=float(data["residual_px"]),
            view_residual_px={v: float(data["view_residual_px"][v]) for v in VIEWS},
            mm_per_px={
                "top": float(data["mm_per_px_top"]),
                "bottom": float(data["mm_per_px_bottom"]),
            },
            flat_fields={v: FlatField(gains[v], (size[0], size[1])) for v in VIEWS},
            serials={v: str(data["serials"][v]) for v in VIEWS},
            target=DotTarget(
                columns=int(target["columns"]),
                rows=int(target["rows"]),
                pitch_mm=float(target["pitch_mm"]),
                markers=tuple((int(a), int(b)) for a, b in target["markers"]),
            ),
            version=data.get("version"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"calibration record is incomplete: {exc!r}") from exc
