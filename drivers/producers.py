"""Where GenTL producers (.cti files) are found: a setting, the environment, viky.

Kept apart from `drivers.genicam` so that finding a producer needs no native
library loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drivers.base import CameraSetupError

log = logging.getLogger(__name__)

ENV_PRODUCER_PATH = "GENICAM_GENTL64_PATH"

ProducerSource = Literal["setting", "environment", "bundled"]


class ProducerNotFound(CameraSetupError):
    """No GenTL producer (.cti file) where one was looked for."""


@dataclass(frozen=True)
class Producer:
    """A GenTL producer file and why it was chosen."""

    path: Path
    source: ProducerSource


def find_producers(
    setting: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> list[Producer]:
    """Return the GenTL producers to load, in order of precedence.

    Parameters
    ----------
    setting : Path, optional
        A ``.cti`` file, or a folder of them, named by the settings; used alone.
    environ : mapping, optional
        The environment; by default `os.environ`. Its ``GENICAM_GENTL64_PATH`` lists
        folders of producers, as vendors' installers set it.

    Raises
    ------
    ProducerNotFound
        If the setting names nothing usable, or no producer is found at all.
    """
    env = os.environ if environ is None else environ
    if setting is not None:
        found = _cti_files(Path(setting).expanduser())
        if not found:
            raise ProducerNotFound(
                f"the GenTL producer setting names {setting}, which is not a .cti "
                "file or a folder holding one; install the camera vendor's GenTL "
                "producer and point genicam_producer at its .cti file"
            )
        return [Producer(p, "setting") for p in found]

    from_env = [
        p
        for entry in env.get(ENV_PRODUCER_PATH, "").split(os.pathsep)
        if entry
        for p in _cti_files(Path(entry))
    ]
    if from_env:
        return [Producer(p, "environment") for p in from_env]

    bundled = bundled_producer()
    if bundled is not None:
        return [Producer(bundled, "bundled")]
    raise ProducerNotFound(
        f"no GenTL producer found: genicam_producer is not set, {ENV_PRODUCER_PATH} "
        "lists no .cti file and the genicam package's viky.cti is not installed; "
        "install the camera vendor's GenTL producer"
    )


def bundled_producer() -> Path | None:
    """Return the path of ``viky.cti`` in the installed `genicam` package, if any."""
    spec = importlib.util.find_spec("genicam")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "viky.cti"
        if path.is_file():
            return path
    return None


def _cti_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".cti":
        return [path.resolve()]
    if path.is_dir():
        return sorted(p.resolve() for p in path.glob("*.cti") if p.is_file())
    return []
