"""GenICam cameras through Harvesters: producers, devices, and their features.

The only module that imports `harvesters` and `genicam`. A GenTL producer (a
vendor's ``.cti`` file) is found from a setting, then ``GENICAM_GENTL64_PATH``,
then the producer ``viky.cti`` bundled with the `genicam` package (three simulated
devices, for development). One `GenTLSession` per process holds the Harvester: a
second Harvester loading the same producer sees no devices, and ``update()`` on it
makes every image acquirer it created obsolete, so the session counts generations
and keeps acquirers and rediscovery apart with a shared/exclusive lock.

The cameras themselves (a thread each, deadlines, recovery) are in
`drivers.streaming` and the two-camera rig in `drivers.genicam_rig`; this module
gives them devices, acquirers and node maps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genicam import genapi
from harvesters.core import Harvester, ImageAcquirer

from drivers.base import CameraError, CameraNotFound, CameraSetupError
from drivers.pixelformats import SUPPORTED_FORMATS
from drivers.producers import Producer, find_producers

log = logging.getLogger(__name__)

Trigger = Literal["auto", "software", "free-run"]

#: Feature types whose values a settings file keeps.
_VALUE_TYPES = {
    genapi.EInterfaceType.intfIInteger,
    genapi.EInterfaceType.intfIFloat,
    genapi.EInterfaceType.intfIBoolean,
    genapi.EInterfaceType.intfIString,
    genapi.EInterfaceType.intfIEnumeration,
}


@dataclass(frozen=True)
class DeviceInfo:
    """What a producer says about one device, before it is opened.

    Attributes
    ----------
    id : str
        The producer's device ID, unique within the producer.
    serial : str
        Serial number, as the device reports it.
    user_name : str or None
        The user-defined name, where the device keeps one.
    vendor, model : str
        Who made it and what it is.
    transport : str
        Transport layer type (``GEV``, ``U3V``, ``Custom`` ...).
    accessible : bool
        Whether the producer says it can be opened now.
    """

    id: str
    serial: str
    user_name: str | None
    vendor: str
    model: str
    transport: str
    accessible: bool

    def answers_to(self, ident: str) -> bool:
        """Return True if `ident` is this device's serial, device ID or name."""
        return ident in (self.serial, self.id, self.user_name)

    def describe(self) -> str:
        """Return a one-line description for messages and listings."""
        name = f" {self.user_name!r}" if self.user_name else ""
        return f"serial {self.serial}{name} ({self.vendor} {self.model}, id {self.id})"


def _device_info(raw: Any) -> DeviceInfo:
    def read(attribute: str) -> str | None:
        # Producers raise for information a device does not keep (viky: no
        # user-defined name); that is an absent value, not a fault.
        try:
            value = getattr(raw, attribute)
        except Exception:  # hardware boundary: any GenTL error means "absent"
            return None
        return None if value is None else str(value)

    access = read("access_status")
    return DeviceInfo(
        id=read("id_") or "",
        serial=read("serial_number") or "",
        user_name=read("user_defined_name") or None,
        vendor=read("vendor") or "",
        model=read("model") or "",
        transport=read("tl_type") or "",
        # GenTL DEVICE_ACCESS_STATUS: 1 readwrite, 4 open readwrite by us.
        accessible=access in (None, "1", "4"),
    )


class _SharedLock:
    """Many holders of the shared side, or one of the exclusive side."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class GenTLSession:
    """The process's Harvester over a set of producers.

    Use `GenTLSession.acquire` to get it and `release` when done; the Harvester is
    reset when the last user releases it.

    Attributes
    ----------
    generation : int
        Incremented by every rediscovery; an acquirer made in an older generation
        is obsolete.
    """

    _current: GenTLSession | None = None
    _registry_lock = threading.Lock()

    def __init__(self, producers: Sequence[Producer]) -> None:
        self.producers = tuple(producers)
        self.lock = _SharedLock()
        self.generation = 0
        self._users = 0
        self._harvester = Harvester()
        for producer in self.producers:
            self._harvester.add_file(str(producer.path), check_existence=True)
        self._discover()

    @classmethod
    def acquire(cls, producers: Sequence[Producer]) -> GenTLSession:
        """Return the process's session over `producers`, opening it if needed.

        Raises
        ------
        CameraSetupError
            If a session over other producers is open: GenTL allows one per
            process.
        """
        with cls._registry_lock:
            session = cls._current
            if session is None:
                session = cls(producers)
                cls._current = session
            elif session.producers != tuple(producers):
                raise CameraSetupError(
                    "a GenTL session over "
                    f"{', '.join(str(p.path) for p in session.producers)} is already "
                    "open in this process; close its cameras before using "
                    f"{', '.join(str(p.path) for p in producers)}"
                )
            session._users += 1
            return session

    def release(self) -> None:
        """Give the session back; the last user's release resets the Harvester."""
        with GenTLSession._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            GenTLSession._current = None
        with self.lock.exclusive():
            self._harvester.reset()
        log.debug("GenTL session over %d producer(s) closed", len(self.producers))

    @property
    def devices(self) -> list[DeviceInfo]:
        """The devices found by the latest discovery."""
        with self.lock.shared():
            return [_device_info(raw) for raw in self._harvester.device_info_list]

    def rediscover(self, *, if_generation: int | None = None) -> int:
        """Enumerate the devices again; every open acquirer becomes obsolete.

        Parameters
        ----------
        if_generation : int, optional
            Rediscover only if no one has done so since this generation (two
            cameras recovering at once need one rediscovery, not two).

        Returns
        -------
        int
            The generation after the call.
        """
        with self.lock.exclusive():
            if if_generation is None or if_generation == self.generation:
                log.info("GenTL session: rediscovering devices")
                self._discover()
            return self.generation

    def _discover(self) -> None:
        self._harvester.update()
        self.generation += 1
        log.debug(
            "GenTL generation %d: %d device(s)",
            self.generation,
            len(self._harvester.device_info_list),
        )

    def find(self, ident: str) -> DeviceInfo:
        """Return the one device that answers to `ident`.

        Raises
        ------
        CameraNotFound
            If no device, or more than one, answers to it.
        """
        devices = self.devices
        matches = [d for d in devices if d.answers_to(ident)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise CameraNotFound(
                f"{len(matches)} cameras answer to {ident!r}: "
                f"{'; '.join(d.describe() for d in matches)}; name one by its "
                "serial number"
            )
        listed = "; ".join(d.describe() for d in devices) or "none"
        raise CameraNotFound(
            f"no camera answers to {ident!r} (serial, device ID or user-defined "
            f"name); connected: {listed}. Run `seedqa cameras` to list them"
        )

    def open_acquirer(self, device: DeviceInfo) -> ImageAcquirer:
        """Open an image acquirer on `device`, found by its device ID.

        Raises
        ------
        CameraNotFound
            If the device is no longer listed or cannot be opened.
        """
        with self.lock.shared():
            try:
                return self._harvester.create({"id_": device.id})
            except Exception as exc:  # hardware boundary: producer errors vary
                raise CameraNotFound(
                    f"camera {device.serial} cannot be opened: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def forget(self, acquirer: object) -> None:
        """Drop a destroyed acquirer, which the Harvester would otherwise keep."""
        # Limitation: each acquirer opened costs about 0.5 MB of native memory that
        # Harvesters and GenApi do not give back on destroy (measured on viky), so
        # a camera is rebuilt only on a fault, never to restart its stream.
        with self.lock.shared(), contextlib.suppress(ValueError):
            self._harvester.image_acquirers.remove(acquirer)


def open_session(producer: Path | None = None) -> GenTLSession:
    """Find the producers and return the process's session over them."""
    return GenTLSession.acquire(find_producers(producer))


# --- Features ------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConfig:
    """What to set on a camera before it streams; None keeps the device's value.

    Attributes
    ----------
    pixel_format : str, optional
        One of `drivers.pixelformats.SUPPORTED_FORMATS`.
    width, height : int, optional
        Image size in pixels.
    frame_rate_hz : float, optional
        Free-running frame rate.
    exposure_us : float, optional
        Exposure time in microseconds (automatic exposure is turned off).
    gain_db : float, optional
        Analogue gain in dB (automatic gain is turned off).
    trigger : {"auto", "software", "free-run"}
        ``auto`` uses a software trigger where the device offers one.
    num_buffers : int
        Buffers announced to the stream.
    """

    pixel_format: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate_hz: float | None = None
    exposure_us: float | None = None
    gain_db: float | None = None
    trigger: Trigger = "auto"
    num_buffers: int = 4

    def __post_init__(self) -> None:
        if self.pixel_format is not None and self.pixel_format not in (
            SUPPORTED_FORMATS
        ):
            raise CameraSetupError(
                f"pixel format {self.pixel_format!r} is not supported; choose one of "
                f"{', '.join(SUPPORTED_FORMATS)}"
            )
        if self.num_buffers < 2:
            raise CameraSetupError(
                f"a stream needs at least 2 buffers, got {self.num_buffers}"
            )


@dataclass(frozen=True)
class AppliedConfig:
    """The values a camera reports after `apply_config`, read back.

    Attributes
    ----------
    pixel_format : str
    width, height : int
        Image size in pixels.
    frame_rate_hz, exposure_us, gain_db : float or None
        None where the device has no such feature.
    software_trigger : bool
        Whether each frame is taken on a software trigger.
    missing : tuple of str
        Features that were asked for but that the device does not offer.
    """

    pixel_format: str
    width: int
    height: int
    frame_rate_hz: float | None
    exposure_us: float | None
    gain_db: float | None
    software_trigger: bool
    missing: tuple[str, ...] = field(default=())


def _readable(node: Any) -> bool:
    return int(node.get_access_mode()) in (genapi.EAccessMode.RO, genapi.EAccessMode.RW)


def _writable(node: Any) -> bool:
    return int(node.get_access_mode()) in (genapi.EAccessMode.WO, genapi.EAccessMode.RW)


def _node(node_map: Any, *names: str) -> Any | None:
    """Return the first of `names` the node map has and can read, else None."""
    for name in names:
        if not node_map.has_node(name):
            continue
        node = node_map.get_node(name)
        if _readable(node.node):
            return node
    return None


def _set(node: Any, value: object, *, serial: str) -> None:
    name = node.node.name
    if not _writable(node.node):
        raise CameraSetupError(
            f"camera {serial}: {name} cannot be written now (is the camera "
            "streaming, or the feature locked by another?)"
        )
    try:
        node.value = value
    except Exception as exc:  # GenApi raises OutOfRange, Access, Logical errors
        limits = ""
        if hasattr(node, "min") and hasattr(node, "max"):
            with contextlib.suppress(Exception):
                limits = f" (allowed {node.min} to {node.max})"
        raise CameraSetupError(
            f"camera {serial}: cannot set {name} to {value!r}{limits}: "
            f"{type(exc).__name__}; choose a value the camera accepts"
        ) from exc


def _set_if_present(node_map: Any, name: str, value: object, *, serial: str) -> None:
    node = _node(node_map, name)
    if node is not None and _writable(node.node):
        _set(node, value, serial=serial)


def _differs(read: object, value: object) -> bool:
    if isinstance(value, float):
        return not math.isclose(float(str(read)), value, rel_tol=1e-3)
    return read != value


def _read_float(node: Any | None) -> float | None:
    return None if node is None else float(node.value)


def apply_config(node_map: Any, config: CameraConfig, *, serial: str) -> AppliedConfig:
    """Write `config` to a stopped camera's node map and read every value back.

    Features the device lacks are skipped with a warning; a value the device
    accepts but rounds (to an increment, a range) is logged with the value read.

    Raises
    ------
    CameraSetupError
        If a value is refused, or the device's pixel format is not one the
        pipeline can convert.
    """
    missing: list[str] = []
    # (what, feature names, value, features to set first so the value is used)
    wanted: list[tuple[str, tuple[str, ...], object, dict[str, object]]] = [
        ("pixel format", ("PixelFormat",), config.pixel_format, {}),
        ("width", ("Width",), config.width, {}),
        ("height", ("Height",), config.height, {}),
        (
            "frame rate",
            ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"),
            config.frame_rate_hz,
            {"AcquisitionFrameRateEnable": True},
        ),
        (
            "exposure",
            ("ExposureTime", "ExposureTimeAbs"),
            config.exposure_us,
            {"ExposureAuto": "Off"},
        ),
        ("gain", ("Gain", "GainAbs"), config.gain_db, {"GainAuto": "Off"}),
    ]
    for what, names, value, before in wanted:
        if value is None:
            continue
        node = _node(node_map, *names)
        if node is None:
            log.warning("camera %s has no %s feature; %s not set", serial, what, what)
            missing.append(what)
            continue
        for name, first in before.items():
            _set_if_present(node_map, name, first, serial=serial)
        _set(node, value, serial=serial)
        read = node.value
        if _differs(read, value):
            log.warning("camera %s: %s %s asked, %s set", serial, what, value, read)

    software = _configure_trigger(node_map, config.trigger, serial=serial)
    if config.trigger == "software" and not software:
        missing.append("software trigger")

    pixel_format = str(_required(node_map, "PixelFormat", serial).value)
    if pixel_format not in SUPPORTED_FORMATS:
        raise CameraSetupError(
            f"camera {serial} sends {pixel_format} pixels, which cannot be "
            f"converted; set pixel_format to one of {', '.join(SUPPORTED_FORMATS)}"
        )
    applied = AppliedConfig(
        pixel_format=pixel_format,
        width=int(_required(node_map, "Width", serial).value),
        height=int(_required(node_map, "Height", serial).value),
        frame_rate_hz=_read_float(
            _node(node_map, "AcquisitionFrameRate", "AcquisitionFrameRateAbs")
        ),
        exposure_us=_read_float(_node(node_map, "ExposureTime", "ExposureTimeAbs")),
        gain_db=_read_float(_node(node_map, "Gain", "GainAbs")),
        software_trigger=software,
        missing=tuple(missing),
    )
    log.info(
        "camera %s configured: %s %dx%d, %s fps, exposure %s us, gain %s dB, %s",
        serial,
        applied.pixel_format,
        applied.width,
        applied.height,
        applied.frame_rate_hz,
        applied.exposure_us,
        applied.gain_db,
        "software trigger" if software else "free-running",
    )
    return applied


def _required(node_map: Any, name: str, serial: str) -> Any:
    node = _node(node_map, name)
    if node is None:
        raise CameraSetupError(
            f"camera {serial} has no readable {name} feature; it is not a GenICam "
            "area-scan camera the appliance can use"
        )
    return node


def _configure_trigger(node_map: Any, trigger: Trigger, *, serial: str) -> bool:
    """Set up frame-start software triggering if wanted and offered."""
    offered = (
        _node(node_map, "TriggerMode") is not None
        and _node(node_map, "TriggerSource") is not None
        and node_map.has_node("TriggerSoftware")
    )
    if trigger == "free-run" or not offered:
        if offered:
            _set_if_present(node_map, "TriggerMode", "Off", serial=serial)
        if trigger == "software" and not offered:
            log.warning("camera %s has no software trigger; free-running", serial)
        return False
    if _node(node_map, "TriggerSelector") is not None:
        _set_if_present(node_map, "TriggerSelector", "FrameStart", serial=serial)
    _set_if_present(node_map, "TriggerSource", "Software", serial=serial)
    _set_if_present(node_map, "TriggerMode", "On", serial=serial)
    return True


def execute_software_trigger(node_map: Any) -> None:
    """Fire the camera's software trigger once."""
    node_map.get_node("TriggerSoftware").execute()


def _features(category: Any) -> Iterator[Any]:
    for feature in category.features:
        kind = feature.node.principal_interface_type
        if kind == genapi.EInterfaceType.intfICategory:
            yield from _features(feature)
        elif kind in _VALUE_TYPES:
            yield feature


def read_device_settings(node_map: Any) -> dict[str, object]:
    """Return every readable and writable feature's value, in the device's order.

    The result is what `write_device_settings` takes back, and is plain JSON.
    """
    values: dict[str, object] = {}
    for feature in _features(node_map.get_node("Root")):
        node = feature.node
        if not (_readable(node) and _writable(node)):
            continue
        value = feature.value
        values[node.name] = (
            value if isinstance(value, bool | int | float) else str(value)
        )
    return values


def write_device_settings(
    node_map: Any, values: Mapping[str, object], *, serial: str
) -> list[str]:
    """Write saved feature values to a stopped camera, in the order saved.

    Returns
    -------
    list of str
        One line per feature that was not written (absent, locked or refused),
        saying why; the others were written.
    """
    skipped: list[str] = []
    for name, value in values.items():
        node = _node(node_map, name)
        if node is None:
            skipped.append(f"{name}: the camera has no such feature")
            continue
        if not _writable(node.node):
            skipped.append(f"{name}: not writable now")
            continue
        try:
            node.value = value
        except Exception as exc:  # GenApi's errors for a refused value vary
            skipped.append(f"{name}: {value!r} refused ({type(exc).__name__})")
    for line in skipped:
        log.warning("camera %s: setting not restored: %s", serial, line)
    return skipped


def device_timestamp_ns(buffer: Any) -> int | None:
    """Return a buffer's device timestamp in ns, or None where there is none."""
    try:
        return int(buffer.timestamp_ns)
    except Exception:  # producers raise NotAvailable when there is no timestamp
        return None


def is_gentl_error(exc: BaseException) -> bool:
    """Return True if `exc` comes from the GenTL or GenApi layers."""
    module = type(exc).__module__ or ""
    return module.startswith(("_gentl", "_genapi", "genicam")) or isinstance(
        exc, CameraError
    )
