"""The simulated bench rig, the embedded default: two cameras over one scene.

`SimulatedBench` holds what lies on the plate (a sample of maize kernels, the
calibration target, or nothing) and renders it; its two `SimulatedCamera` objects
deliver the top and bottom views of the current scene as `Frame`s, so the rest of
the appliance cannot tell them from real cameras.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from drivers.base import CameraError, DualRig, Frame, View
from drivers.scene import (
    Appearance,
    RigGeometry,
    SampleSpec,
    SampleTruth,
    default_geometry,
    place_sample,
    render_blank,
    render_sample,
    render_target,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RenderedScene:
    """Both views of one scene and its ground truth (None for target and blank)."""

    kind: str
    images: dict[View, NDArray[np.uint8]]
    truth: SampleTruth | None
    seed: int
    #: For a target scene, its pose: target frame (mm) to plate frame (mm).
    target_to_plate: NDArray[np.float64] | None = None


class SimulatedBench:
    """The simulated plate and its lighting, shared by the two simulated cameras.

    Parameters
    ----------
    geometry : RigGeometry, optional
        Camera poses; by default `default_geometry()`.
    appearance : Appearance, optional
        Light, focus and noise of this rig; by default the nominal appearance.
    seed : int
        Seed of the first sample; each new sample takes the next one.
    spec : SampleSpec, optional
        What a sample holds, by default 200 kernels.
    """

    def __init__(
        self,
        *,
        geometry: RigGeometry | None = None,
        appearance: Appearance | None = None,
        seed: int = 0,
        spec: SampleSpec | None = None,
    ) -> None:
        self.geometry = geometry or default_geometry()
        self.appearance = appearance or Appearance()
        self.spec = spec or SampleSpec()
        self._next_seed = seed
        self._lock = threading.Lock()
        self._scene: RenderedScene | None = None

    @property
    def scene(self) -> RenderedScene:
        """The scene on the plate now; a new sample is laid if there is none."""
        with self._lock:
            if self._scene is None:
                self._scene = self._render_sample(self.spec, self._take_seed())
            return self._scene

    def lay_sample(
        self, spec: SampleSpec | None = None, *, seed: int | None = None
    ) -> RenderedScene:
        """Put a new sample of kernels on the plate and return its scene."""
        with self._lock:
            self._scene = self._render_sample(
                spec or self.spec, self._take_seed() if seed is None else seed
            )
            return self._scene

    def lay_target(self, *, seed: int = 0) -> RenderedScene:
        """Put the calibration target on the plate."""
        images, pose = render_target(
            self.geometry, self.appearance, np.random.default_rng(seed)
        )
        with self._lock:
            self._scene = RenderedScene("target", images, None, seed, pose)
            return self._scene

    def clear(self, *, seed: int = 0) -> RenderedScene:
        """Empty the plate (for a flat-field capture)."""
        images = render_blank(
            self.geometry, self.appearance, np.random.default_rng(seed)
        )
        with self._lock:
            self._scene = RenderedScene("blank", images, None, seed)
            return self._scene

    def _take_seed(self) -> int:
        seed = self._next_seed
        self._next_seed += 1
        return seed

    def _render_sample(self, spec: SampleSpec, seed: int) -> RenderedScene:
        rng = np.random.default_rng(seed)
        kernels = place_sample(spec, self.geometry, rng)
        images, truth = render_sample(kernels, self.geometry, self.appearance, rng)
        log.debug("simulated sample %d rendered: %d kernels", seed, len(kernels))
        return RenderedScene("sample", images, truth, seed)


class SimulatedCamera:
    """One camera of a `SimulatedBench`; meets the `Camera` protocol.

    Parameters
    ----------
    bench : SimulatedBench
        The scene this camera sees.
    view : {"top", "bottom"}
        Which side of the plate it looks at.
    serial : str, optional
        Its serial number; by default ``SIM-TOP`` or ``SIM-BOTTOM``.
    exposure_us : float
        Reported exposure time.
    """

    def __init__(
        self,
        bench: SimulatedBench,
        view: View,
        *,
        serial: str | None = None,
        exposure_us: float = 8000.0,
    ) -> None:
        self._bench = bench
        self._view: View = view
        self._serial = serial or f"SIM-{view.upper()}"
        self.exposure_us = exposure_us
        self._open = False

    @property
    def serial(self) -> str:
        """Serial number of the simulated device."""
        return self._serial

    @property
    def view(self) -> View:
        """Which side of the plate this camera sees."""
        return self._view

    def open(self) -> None:
        """Make the camera ready; nothing to connect to."""
        self._open = True
        log.debug("simulated camera %s open", self._serial)

    def close(self) -> None:
        """Release the camera."""
        self._open = False

    def grab(self, *, timeout_s: float = 5.0) -> Frame:
        """Return this camera's view of the bench's current scene."""
        if not self._open:
            raise CameraError(f"camera {self._serial} is not open; call open() first")
        scene = self._bench.scene
        return Frame(
            pixels=scene.images[self._view],
            serial=self._serial,
            view=self._view,
            timestamp=datetime.now(UTC),
            exposure_us=self.exposure_us,
            metadata={"scene": scene.kind, "scene_seed": scene.seed},
        )


def simulated_rig(
    *,
    seed: int = 0,
    bench: SimulatedBench | None = None,
    spec: SampleSpec | None = None,
) -> tuple[DualRig, SimulatedBench]:
    """Make a `DualRig` over a simulated bench; return it and the bench."""
    bench = bench or SimulatedBench(seed=seed, spec=spec)
    rig = DualRig(
        SimulatedCamera(bench, "top"),
        SimulatedCamera(bench, "bottom"),
        name="simulated",
    )
    return rig, bench
