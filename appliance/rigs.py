"""Opening the rig the settings name, and laying scenes on a simulated one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.settings import RigKind, Settings
from drivers.base import CameraSetupError, DualRig
from drivers.scene import SampleSpec
from drivers.simulated import SimulatedBench, simulated_rig

log = logging.getLogger(__name__)

Scene = Literal["blank", "target", "sample"]

#: ask(message): show the operator an instruction and wait until it is done.
Ask = Callable[[str], None]

_INSTRUCTIONS: dict[Scene, str] = {
    "blank": "Clear and clean the plate, then confirm.",
    "target": "Lay the dot calibration target flat in the middle of the plate, "
    "printed side up, then confirm.",
    "sample": "Spread the sample on the plate so that seeds do not overlap, then "
    "confirm.",
}


@dataclass
class RigHandle:
    """An open rig and, when simulated, the bench that stands in for the plate."""

    kind: RigKind
    rig: DualRig
    bench: SimulatedBench | None = None

    def prepare(self, scene: Scene, ask: Ask | None = None) -> None:
        """Get the plate ready for a capture of `scene`.

        On the simulated rig the scene is laid directly; on a real rig the operator
        is asked to do it.
        """
        if self.bench is not None:
            if scene == "blank":
                self.bench.clear()
            elif scene == "target":
                self.bench.lay_target()
            else:
                self.bench.lay_sample()
            return
        if ask is None:
            raise RuntimeError(f"rig {self.rig.name}: no way to ask for: {scene}")
        ask(_INSTRUCTIONS[scene])

    def close(self) -> None:
        """Close both cameras."""
        self.rig.close()


def open_rig(
    kind: RigKind,
    *,
    seed: int = 0,
    spec: SampleSpec | None = None,
    settings: Settings | None = None,
    top: str | None = None,
    bottom: str | None = None,
    producer: Path | None = None,
) -> RigHandle:
    """Open a rig of `kind` and return its handle.

    Parameters
    ----------
    kind : {"simulated", "genicam"}
        The simulated bench (the default) or two GenICam cameras.
    seed : int
        First sample seed of the simulated bench.
    spec : SampleSpec, optional
        What the simulated bench lays as a sample.
    settings : Settings, optional
        Where a GenICam rig's cameras and producer come from when `top`,
        `bottom` or `producer` are not given.
    top, bottom : str, optional
        Serial number, device ID or user-defined name of each GenICam camera.
    producer : Path, optional
        The GenTL producer file or folder of a GenICam rig.

    Raises
    ------
    CameraSetupError
        If a GenICam camera is not named, not found, or cannot be set up.
    """
    if kind == "simulated":
        rig, bench = simulated_rig(seed=seed, spec=spec)
        rig.open()
        return RigHandle("simulated", rig, bench)
    if kind == "genicam":
        return RigHandle("genicam", _genicam_rig(settings, top, bottom, producer))
    raise ValueError(f"unknown rig kind {kind!r}; expected 'simulated' or 'genicam'")


def _genicam_rig(
    settings: Settings | None,
    top: str | None,
    bottom: str | None,
    producer: Path | None,
) -> DualRig:
    top = top or (settings.top_camera if settings else "")
    bottom = bottom or (settings.bottom_camera if settings else "")
    producer = producer or (settings.genicam_producer if settings else None)
    for view, ident in (("top", top), ("bottom", bottom)):
        if not ident:
            raise CameraSetupError(
                f"the GenICam rig needs its {view} camera: pass --{view} SERIAL or "
                f"set {view}_camera in the settings (`seedqa cameras` lists them)"
            )
    try:
        # Imported here: Harvesters loads native GenTL libraries, which the
        # simulated rig does not need.
        from drivers.genicam_rig import genicam_rig
    except ImportError as exc:
        raise CameraSetupError(
            f"the GenICam rig needs the harvesters and genicam packages ({exc}); "
            "install them with pip"
        ) from exc
    return genicam_rig(top, bottom, producer=producer)
