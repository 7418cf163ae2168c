"""Health checks of an installed appliance, as `seedqa doctor` runs them.

Each check returns `Finding` lines: the cameras answer and capture a pair, the
rig's calibration is recent, each recipe's model bundle loads and fits its recipe,
the disks have room, the database passes SQLite's integrity check, and the newest
backup is recent. A finding that is a problem says what to do about it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance import recipes
from appliance.backup import latest_backup, sqlite_database_path
from appliance.bundle import BundleError
from appliance.calibrations import current_calibration
from appliance.classifier import classifier_for
from appliance.rigs import RigKind, open_rig
from appliance.settings import Settings
from appliance.store import Database, ImageStore, get_calibration
from calibration import CalibrationError

log = logging.getLogger(__name__)


class Health(StrEnum):
    """How a finding stands: fine, worth knowing, or a problem to fix."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Finding:
    """One line of the health report.

    Attributes
    ----------
    check : str
        What was checked: ``cameras``, ``calibration``, ``model``, ``disk``,
        ``database``, ``backup``.
    health : Health
        Whether it is fine.
    message : str
        What was found and, for a problem, what to do.
    """

    check: str
    health: Health
    message: str

    def line(self) -> str:
        """Return the finding as one line of text."""
        return f"{self.health.upper():<8} {self.check}: {self.message}"


def _ok(check: str, message: str) -> Finding:
    return Finding(check, Health.OK, message)


def _problem(check: str, message: str) -> Finding:
    return Finding(check, Health.PROBLEM, message)


def check_cameras(
    kind: RigKind, settings: Settings, **rig_options: Any
) -> tuple[list[Finding], str | None]:
    """Open the rig, capture one pair, close it.

    `rig_options` (``top``, ``bottom``, ``producer``) go to `open_rig`, over the
    settings' cameras.

    Returns
    -------
    findings : list of Finding
        One finding.
    rig_name : str or None
        The rig's name, for the calibration check; None if it did not open.
    """
    try:
        handle = open_rig(kind, settings=settings, **rig_options)
    except NotImplementedError as exc:
        return [_problem("cameras", f"{exc}")], None
    except Exception as exc:  # hardware boundary: any driver fault is a finding
        log.debug("rig %s did not open", kind, exc_info=True)
        return [
            _problem(
                "cameras",
                f"the {kind} rig does not open ({exc}); check both cameras' power "
                "and cables, and that no other program holds them",
            )
        ], None

    try:
        if handle.bench is not None:
            handle.prepare("blank")
        capture = handle.rig.capture()
    except Exception as exc:  # hardware boundary, as above
        log.debug("rig %s did not capture", kind, exc_info=True)
        return [
            _problem(
                "cameras",
                f"rig {handle.rig.name} opened but did not capture a pair ({exc}); "
                "check the trigger cable and the cameras' exposure settings",
            )
        ], handle.rig.name
    finally:
        handle.close()

    height, width = capture.top.pixels.shape[:2]
    return [
        _ok(
            "cameras",
            f"rig {handle.rig.name} captured a pair: top {capture.top.serial} and "
            f"bottom {capture.bottom.serial}, {width}x{height} px",
        )
    ], handle.rig.name


def check_database(settings: Settings) -> list[Finding]:
    """Run ``PRAGMA integrity_check`` on the SQLite database."""
    try:
        path = sqlite_database_path(settings.database_url)
    except NotImplementedError:
        return [
            Finding(
                "database",
                Health.WARNING,
                "not a SQLite file; its server checks its own integrity",
            )
        ]
    if not path.is_file():
        return [
            _problem(
                "database",
                f"no database at {path}; check the data_dir and database_url "
                "settings, or restore the newest backup",
            )
        ]

    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        ) as db:
            rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        rows = [(f"cannot be read: {exc}",)]
    result = "; ".join(str(row[0]) for row in rows[:5])
    if result != "ok":
        return [
            _problem(
                "database",
                f"{path} fails its integrity check ({result}); stop the app and "
                "restore the newest backup (see seedqa backup)",
            )
        ]
    return [_ok("database", f"{path} passes PRAGMA integrity_check")]


def check_calibration(
    settings: Settings, rig_name: str, *, now: datetime
) -> list[Finding]:
    """Check that the rig has a readable calibration younger than the limit."""
    try:
        db = Database.open(settings.database_url)
    except Exception as exc:  # a damaged database is reported by check_database
        return [
            _problem(
                "calibration", f"cannot be read: the database does not open ({exc})"
            )
        ]

    try:
        calibration_id, record = current_calibration(
            db, ImageStore(settings.images_dir), rig_name
        )
        created_at = get_calibration(db, calibration_id).created_at
    except CalibrationError as exc:  # CalibrationMissing included
        return [_problem("calibration", str(exc))]
    finally:
        db.close()

    if created_at.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
        created_at = created_at.replace(tzinfo=UTC)
    age = now - created_at
    limit = timedelta(days=settings.calibration_max_age_days)
    text = (
        f"rig {rig_name} calibration v{record.version} is {_days(age)} old "
        f"(residual {record.residual_px:.3f} px)"
    )
    if age > limit:
        return [
            _problem(
                "calibration",
                f"{text}, older than {settings.calibration_max_age_days:g} days; "
                "recalibrate with seedqa calibrate",
            )
        ]
    return [_ok("calibration", text)]


def _days(age: timedelta) -> str:
    if age < timedelta(days=2):
        return f"{age.total_seconds() / 3600:.1f} h"
    return f"{age.days} days"


def check_models(settings: Settings) -> list[Finding]:
    """Load each recipe's model bundle and check it fits its recipe."""
    findings = []
    installed = 0
    for recipe in recipes.available():
        path = recipe.bundle_path(settings.models_dir)
        if not path.is_file():
            findings.append(
                Finding(
                    "model",
                    Health.WARNING,
                    f"recipe {recipe.name} has no model bundle at {path}; build it "
                    f"with seedqa-models recipe build {recipe.name} before use",
                )
            )
            continue
        installed += 1
        try:
            classifier = classifier_for(recipe, settings.models_dir)
        except (BundleError, recipes.RecipeError) as exc:
            findings.append(_problem("model", f"recipe {recipe.name}: {exc}"))
            continue
        info = classifier.bundle.info
        findings.append(
            _ok(
                "model",
                f"recipe {recipe.name}: bundle {info.name} v{info.version} "
                f"({classifier.bundle.sha256[:12]}) loads and fits the recipe",
            )
        )
    if installed == 0:
        findings.append(
            _problem(
                "model",
                f"no recipe has a model bundle in {settings.models_dir}; build one "
                "with seedqa-models recipe build maize",
            )
        )
    return findings


def _existing(path: Path) -> Path:
    """Return `path` or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def check_disks(settings: Settings) -> list[Finding]:
    """Check the free space where the data and the backups are written."""
    findings = []
    minimum = settings.min_free_disk_mb
    seen: set[int] = set()
    for what, path in (("data", settings.data_dir), ("backups", settings.backups_dir)):
        place = _existing(path)
        device = place.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free_mb = shutil.disk_usage(place).free / 2**20
        text = f"{what} disk at {place} has {free_mb:,.0f} MiB free"
        if free_mb < minimum:
            findings.append(
                _problem(
                    "disk",
                    f"{text}, less than {minimum:,.0f} MiB; export and archive old "
                    "samples, or move the backups to another disk",
                )
            )
        else:
            findings.append(_ok("disk", text))
    return findings


def check_backup(settings: Settings, *, now: datetime) -> list[Finding]:
    """Check that the newest backup is sound and recent."""
    newest = latest_backup(settings.backups_dir)
    if newest is None:
        return [
            _problem(
                "backup",
                f"no backup in {settings.backups_dir}; run seedqa backup, and "
                "enable seedqa-backup.timer",
            )
        ]
    age = now - newest.created_at
    text = f"newest backup {newest.path.name} is {_days(age)} old"
    if newest.integrity != "ok":
        return [
            _problem(
                "backup",
                f"{text} and its database failed the integrity check; take a new "
                "one with seedqa backup",
            )
        ]
    if age > timedelta(hours=settings.backup_max_age_h):
        return [
            _problem(
                "backup",
                f"{text}, older than {settings.backup_max_age_h:g} h; check "
                "systemctl status seedqa-backup.timer, or run seedqa backup",
            )
        ]
    return [_ok("backup", f"{text} ({newest.samples} samples)")]


def diagnose(
    settings: Settings,
    *,
    rig: RigKind | None = None,
    now: datetime | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    **rig_options: Any,
) -> list[Finding]:
    """Run every check and return the findings, in the order they were made.

    Parameters
    ----------
    settings : Settings
        The appliance's settings.
    rig : {"simulated", "genicam"}, optional
        Which rig to open for the camera check; default: the settings' rig.
    now : datetime, optional
        The time ages are measured from (UTC); the current time by default.
    on_finding : callable, optional
        Called with each finding as soon as it is made.
    **rig_options
        ``top``, ``bottom``, ``producer`` for `open_rig`, over the settings.
    """
    now = now or datetime.now(UTC)
    findings: list[Finding] = []

    def add(new: list[Finding]) -> None:
        for finding in new:
            findings.append(finding)
            if on_finding is not None:
                on_finding(finding)

    camera_findings, rig_name = check_cameras(
        rig or settings.rig, settings, **rig_options
    )
    add(camera_findings)
    database = check_database(settings)
    add(database)
    if rig_name is None:
        add([_problem("calibration", "not checked: the rig did not open")])
    elif any(f.health is Health.PROBLEM for f in database):
        add(
            [_problem("calibration", "not checked: the database is missing or damaged")]
        )
    else:
        add(check_calibration(settings, rig_name, now=now))
    add(check_models(settings))
    add(check_disks(settings))
    add(check_backup(settings, now=now))
    return findings


def problems(findings: list[Finding]) -> list[Finding]:
    """Return the findings that are problems."""
    return [f for f in findings if f.health is Health.PROBLEM]
