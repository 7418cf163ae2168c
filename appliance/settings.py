"""The appliance's settings: one typed object, from a TOML file and the environment.

Precedence, lowest first: defaults, the file (``$SEEDQA_CONFIG``, else
``~/.config/seedqa/seedqa.toml``, else ``/etc/seedqa/seedqa.toml``), then the
variables ``SEEDQA_DATA_DIR``, ``SEEDQA_DATABASE_URL``, ``SEEDQA_BACKUP_DIR``,
``SEEDQA_RIG``, ``SEEDQA_GENICAM_PRODUCER``, ``SEEDQA_TOP_CAMERA`` and
``SEEDQA_BOTTOM_CAMERA``.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

log = logging.getLogger(__name__)

RigKind = Literal["simulated", "genicam"]

_STRING_KEYS = (
    "data_dir",
    "database_url",
    "lab",
    "rig",
    "genicam_producer",
    "top_camera",
    "bottom_camera",
    "backup_dir",
)

CONFIG_PATHS = (Path("~/.config/seedqa/seedqa.toml"), Path("/etc/seedqa/seedqa.toml"))


class SettingsError(ValueError):
    """The settings file cannot be read or holds a bad value."""


@dataclass(frozen=True)
class Settings:
    """Where the appliance keeps its data.

    Attributes
    ----------
    data_dir : Path
        Root of images, calibrations, models and, by default, the database.
    database_url : str
        SQLAlchemy URL; by default a SQLite file in `data_dir`.
    lab : str
        Name of the laboratory, printed on reports.
    backup_dir : Path or None
        Where `seedqa backup` writes; None means ``data_dir / "backups"``. Point it
        at another disk so a failed disk does not take the backups with it.
    backup_keep : int
        How many backups `seedqa backup` keeps, newest first.
    backup_max_age_h : float
        `seedqa doctor` reports a problem when the newest backup is older (hours).
    calibration_max_age_days : float
        `seedqa doctor` reports a problem when the rig's calibration is older.
    min_free_disk_mb : float
        `seedqa doctor` reports a problem when the data or backup disk has less
        free space (MiB).
    rig : {"simulated", "genicam"}
        The rig the appliance opens: the simulated bench or two GenICam cameras.
    genicam_producer : Path, optional
        The camera vendor's GenTL producer (a ``.cti`` file or a folder of them);
        by default ``GENICAM_GENTL64_PATH``, then the development producer
        ``viky.cti`` of the `genicam` package.
    top_camera, bottom_camera : str
        Serial number, device ID or user-defined name of the camera above and the
        camera below the plate (``seedqa cameras`` lists them).
    """

    data_dir: Path
    database_url: str
    lab: str = ""
    backup_dir: Path | None = None
    backup_keep: int = 14
    backup_max_age_h: float = 36.0
    calibration_max_age_days: float = 30.0
    min_free_disk_mb: float = 2048.0
    rig: RigKind = "simulated"
    genicam_producer: Path | None = None
    top_camera: str = ""
    bottom_camera: str = ""

    @property
    def images_dir(self) -> Path:
        """Content-addressed image files."""
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        """Installed model bundles, one file per recipe."""
        return self.data_dir / "models"

    @property
    def calibrations_dir(self) -> Path:
        """Calibration records, one folder per rig and version."""
        return self.data_dir / "calibrations"

    @property
    def backups_dir(self) -> Path:
        """Where backups are written: `backup_dir`, else ``data_dir/backups``."""
        return (
            self.backup_dir
            if self.backup_dir is not None
            else self.data_dir / "backups"
        )

    @classmethod
    def load(
        cls, *, config: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read the settings file, if any, and apply the environment over it.

        Raises
        ------
        SettingsError
            If a settings file exists but is not valid TOML.
        """
        env = os.environ if environ is None else environ
        values = _read_file(config, env)
        for key in _STRING_KEYS:
            if key in values and not isinstance(values[key], str):
                raise SettingsError(
                    f"setting {key!r} must be a string, got {values[key]!r}"
                )
        data_dir = (
            Path(
                env.get("SEEDQA_DATA_DIR")
                or str(values.get("data_dir", ""))
                or Path(env.get("XDG_DATA_HOME", "~/.local/share")) / "seedqa"
            )
            .expanduser()
            .resolve()
        )
        url = (
            env.get("SEEDQA_DATABASE_URL")
            or str(values.get("database_url", ""))
            or f"sqlite:///{data_dir / 'seedqa.db'}"
        )
        backup_dir = env.get("SEEDQA_BACKUP_DIR") or str(values.get("backup_dir", ""))
        rig = env.get("SEEDQA_RIG") or str(values.get("rig", "simulated"))
        if rig not in ("simulated", "genicam"):
            raise SettingsError(
                f"setting 'rig' must be 'simulated' or 'genicam', got {rig!r}"
            )
        producer = env.get("SEEDQA_GENICAM_PRODUCER") or str(
            values.get("genicam_producer", "")
        )
        return cls(
            data_dir=data_dir,
            database_url=url,
            lab=str(values.get("lab", "")),
            rig=cast(RigKind, rig),
            genicam_producer=Path(producer).expanduser() if producer else None,
            top_camera=env.get("SEEDQA_TOP_CAMERA")
            or str(values.get("top_camera", "")),
            bottom_camera=env.get("SEEDQA_BOTTOM_CAMERA")
            or str(values.get("bottom_camera", "")),
            backup_dir=Path(backup_dir).expanduser().resolve() if backup_dir else None,
            **_numbers(values),
        )


#: The numeric settings, with the smallest value each accepts.
_NUMBERS: dict[str, tuple[type, float]] = {
    "backup_keep": (int, 1),
    "backup_max_age_h": (float, 0.0),
    "calibration_max_age_days": (float, 0.0),
    "min_free_disk_mb": (float, 0.0),
}


def _numbers(values: Mapping[str, object]) -> dict[str, Any]:
    """Return the numeric settings present in `values`, checked."""
    numbers: dict[str, Any] = {}
    for key, (kind, minimum) in _NUMBERS.items():
        if key not in values:
            continue
        value = values[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int:
            ok = ok and isinstance(value, int)
        if not ok or float(value) < minimum:  # type: ignore[arg-type]
            what = "a whole number" if kind is int else "a number"
            raise SettingsError(
                f"setting {key!r} must be {what} of at least {minimum:g}, got {value!r}"
            )
        numbers[key] = kind(value)
    return numbers


def _read_file(config: Path | None, env: Mapping[str, str]) -> dict[str, object]:
    if config is None and env.get("SEEDQA_CONFIG"):
        config = Path(env["SEEDQA_CONFIG"])
    candidates = [config] if config is not None else list(CONFIG_PATHS)
    for candidate in candidates:
        path = candidate.expanduser()
        if not path.is_file():
            if config is not None:
                raise SettingsError(f"settings file {path} does not exist")
            continue
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, ValueError) as exc:  # ValueError: TOML or UTF-8 errors
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        log.debug("settings read from %s", path)
        section = data.get("seedqa", data)
        return dict(section) if isinstance(section, dict) else {}
    return {}
