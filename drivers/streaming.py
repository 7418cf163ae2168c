"""GenICam cameras that stream from a thread of their own and recover from faults.

Each `GenICamCamera` runs one thread that owns its image acquirer and node map:
it fetches buffers in short slices, queues every buffer back at once (a buffer
kept starves the stream), copies and converts a frame only when one was asked
for, and checks each frame against the configured size and pixel format. A
caller waits for its frame with a deadline of its own, so a producer's fetch that
overruns its timeout cannot hang the caller.

When the stream stalls, the acquirer becomes obsolete (``Harvester.update()``),
or the producer raises, the thread rebuilds the acquirer: stop, destroy,
rediscover, reopen by serial, reapply the configuration, start; with capped
exponential backoff and a log line per step. A request waiting meanwhile gets
its frame if the camera comes back before the request's deadline, and
`CameraLost` with the reason otherwise.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from drivers.base import (
    CameraError,
    CameraLost,
    CameraTimeout,
    Frame,
    FrameFormatError,
    View,
)
from drivers.genicam import (
    AppliedConfig,
    CameraConfig,
    DeviceInfo,
    GenTLSession,
    apply_config,
    device_timestamp_ns,
    execute_software_trigger,
    read_device_settings,
    write_device_settings,
)
from drivers.pixelformats import to_rgb8

log = logging.getLogger(__name__)

T = TypeVar("T")

# Harvesters waits for a buffer in polls of 1 ms by default, and the time between
# polls holds the GIL: two cameras polling so took a third of the main thread's
# time on viky. Polls of 10 ms leave it free and overrun a deadline by 10 ms at most.
_POLL_ATTRIBUTE = "timeout_period_on_update_event_data_call"
_POLL_MS = 10


class Acquirer(Protocol):
    """What a camera needs of an image acquirer (Harvesters' `ImageAcquirer`)."""

    remote_device: Any
    num_buffers: int

    def start(self) -> None:
        """Start acquisition."""
        ...

    def stop(self) -> None:
        """Stop acquisition."""
        ...

    def destroy(self) -> None:
        """Release the device and its buffers."""
        ...

    def is_valid(self) -> bool:
        """Return False once the acquirer is obsolete."""
        ...

    def try_fetch(self, *, timeout: float) -> Any:
        """Return a filled buffer, or None after about `timeout` seconds."""
        ...


#: open_acquirer(device): open an acquirer on a device found by the session.
OpenAcquirer = Callable[[DeviceInfo], Acquirer]


@dataclass(frozen=True)
class StreamTuning:
    """How a camera's thread fetches and when it calls a stream stalled.

    Attributes
    ----------
    fetch_slice_s : float
        Longest single wait for a buffer; jobs and stops are served between.
    stall_s : float
        A free-running stream with no buffer for this long (or five frame periods,
        if longer) is rebuilt; so is a software trigger unanswered this long.
    backoff_first_s, backoff_max_s : float
        Wait before the second reconnection attempt, doubled up to the cap.
    rediscover_every_s : float
        Least time between two rediscoveries by one camera while it is lost:
        each one makes the other camera's acquirer obsolete too.
    open_timeout_s : float
        How long `open` waits for the first connection.
    """

    fetch_slice_s: float = 0.05
    stall_s: float = 1.0
    backoff_first_s: float = 0.1
    backoff_max_s: float = 2.0
    rediscover_every_s: float = 5.0
    open_timeout_s: float = 15.0


@dataclass(frozen=True)
class CameraStats:
    """Counters of one camera since it was opened.

    Attributes
    ----------
    fetched : int
        Buffers fetched (every one was queued back).
    delivered : int
        Frames handed to callers.
    rejected : int
        Frames refused for their size or pixel format.
    rebuilds : int
        Times the acquirer was rebuilt.
    convert_s : float
        Seconds spent copying and converting delivered frames.
    """

    fetched: int = 0
    delivered: int = 0
    rejected: int = 0
    rebuilds: int = 0
    convert_s: float = 0.0


class _Request:
    """One caller's wait for the next frame."""

    def __init__(self) -> None:
        self.submitted = time.monotonic()
        self.done = threading.Event()
        self.frame: Frame | None = None
        self.error: CameraError | None = None
        self.triggered = False

    def finish(self, frame: Frame | None, error: CameraError | None = None) -> None:
        self.frame, self.error = frame, error
        self.done.set()


class _Job:
    """Work to run on the camera's thread, with the acquirer."""

    def __init__(self, fn: Callable[[Acquirer], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Fault(Exception):
    """Why the camera's acquirer must be rebuilt."""


class _Obsolete(_Fault):
    """The acquirer was made obsolete by a rediscovery; the device is fine."""


class GenICamCamera:
    """A GenICam camera that streams on its own thread; meets the `Camera` protocol.

    Parameters
    ----------
    session : GenTLSession
        The process's GenTL session; the caller keeps and releases it.
    ident : str
        Serial number, device ID or user-defined name of the device.
    view : {"top", "bottom"}
        Which side of the plate it sees.
    config : CameraConfig, optional
        Features to set at every (re)connection.
    tuning : StreamTuning, optional
        Fetch slice, stall and backoff times.
    open_acquirer : callable, optional
        Opens an acquirer on a device; by default the session's.
    """

    def __init__(
        self,
        session: GenTLSession,
        ident: str,
        view: View,
        *,
        config: CameraConfig | None = None,
        tuning: StreamTuning | None = None,
        open_acquirer: OpenAcquirer | None = None,
    ) -> None:
        self._session = session
        self._ident = ident
        self._view: View = view
        self._config = config or CameraConfig()
        self._tuning = tuning or StreamTuning()
        self._open_acquirer = open_acquirer or session.open_acquirer
        self._device: DeviceInfo | None = None
        self._applied: AppliedConfig | None = None
        self._lock = threading.Lock()
        self._requests: list[_Request] = []
        self._jobs: list[_Job] = []
        self._stats = CameraStats()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._fault: str | None = None
        self._open_error: BaseException | None = None
        self._generation = 0
        self._streaming = False
        self._last_frame = 0.0
        self._triggered_at = 0.0

    @property
    def serial(self) -> str:
        """Serial number of the device (the identifier given, before `open`)."""
        return self._device.serial if self._device else self._ident

    @property
    def view(self) -> View:
        """Which side of the plate this camera sees."""
        return self._view

    @property
    def device(self) -> DeviceInfo | None:
        """The device opened, None before `open`."""
        return self._device

    @property
    def applied(self) -> AppliedConfig | None:
        """The configuration read back at the latest connection."""
        return self._applied

    @property
    def stats(self) -> CameraStats:
        """Counters since `open`."""
        with self._lock:
            return self._stats

    @property
    def fault(self) -> str | None:
        """Why the camera is being rebuilt now; None while it streams."""
        return self._fault

    # --- Lifecycle ----------------------------------------------------------------

    def open(self) -> None:
        """Find the device, connect on the camera's thread and start streaming.

        Raises
        ------
        CameraNotFound
            If no device answers to the identifier.
        CameraSetupError
            If the configuration is refused.
        CameraError
            If the first connection does not finish within the open timeout.
        """
        if self._thread is not None:
            return
        self._device = self._session.find(self._ident)
        self._stopping.clear()
        self._ready.clear()
        self._open_error = None
        self._fault = None
        self._stats = CameraStats()
        self._thread = threading.Thread(
            target=self._run, name=f"camera-{self._device.serial}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self._tuning.open_timeout_s):
            self.close()
            raise CameraError(
                f"camera {self.serial} did not start streaming within "
                f"{self._tuning.open_timeout_s:.0f} s; check its cable and power"
            )
        if self._open_error is not None:
            error = self._open_error
            self.close()
            raise error
        log.info("camera %s (%s) streaming", self.serial, self._view)

    def close(self) -> None:
        """Stop streaming and release the device; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout=self._tuning.open_timeout_s)
        if thread.is_alive():
            log.warning(
                "camera %s: its thread is stuck in the producer; left behind",
                self.serial,
            )
        self._fail_requests(CameraError(f"camera {self.serial} was closed"))
        log.info("camera %s closed", self.serial)

    def stop(self) -> None:
        """Stop acquisition, keeping the device open; `start` resumes it."""

        def stop(acquirer: Acquirer) -> None:
            acquirer.stop()
            self._streaming = False

        self.run_on_acquirer(stop)
        log.debug("camera %s stopped", self.serial)

    def start(self) -> None:
        """Start acquisition again after `stop`."""

        def start(acquirer: Acquirer) -> None:
            acquirer.start()
            self._streaming = True
            self._last_frame = time.monotonic()

        self.run_on_acquirer(start)
        log.debug("camera %s started", self.serial)

    # --- Frames -------------------------------------------------------------------

    def grab(self, *, timeout_s: float = 5.0) -> Frame:
        """Return the next frame taken after the call.

        Raises
        ------
        CameraTimeout
            If no frame arrived within `timeout_s` while the camera streamed.
        CameraLost
            If the camera was being rebuilt and did not come back in time.
        FrameFormatError
            If the frame's size or pixel format is not the configured one.
        """
        return self.wait(self.request(), time.monotonic() + timeout_s)

    def request(self) -> _Request:
        """Ask for the next frame; collect it with `wait`."""
        if self._thread is None:
            raise CameraError(f"camera {self.serial} is not open; call open() first")
        if not self._streaming:
            raise CameraError(f"camera {self.serial} is stopped; call start() first")
        request = _Request()
        with self._lock:
            self._requests.append(request)
        return request

    def wait(self, request: _Request, deadline: float) -> Frame:
        """Wait for a requested frame until `deadline` (a `time.monotonic` time)."""
        if not request.done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                if request in self._requests:
                    self._requests.remove(request)
            if not request.done.is_set():
                waited = time.monotonic() - request.submitted
                fault = self._fault
                if fault is not None:
                    raise CameraLost(
                        f"camera {self.serial} ({self._view}) is lost: {fault}; "
                        f"not back after {waited:.1f} s. Check its cable and power; "
                        "nothing from this capture was kept"
                    )
                raise CameraTimeout(
                    f"camera {self.serial} ({self._view}) delivered no frame in "
                    f"{waited:.2f} s; check its trigger and frame rate settings"
                )
        if request.error is not None:
            raise request.error
        assert request.frame is not None
        return request.frame

    # --- Work on the camera's thread ---------------------------------------------

    def run_on_acquirer(
        self, fn: Callable[[Acquirer], T], *, timeout_s: float = 10.0
    ) -> T:
        """Run ``fn(acquirer)`` on the camera's thread, between two fetches.

        For features this class does not model; the result is returned and an
        exception raised by `fn` is raised here.
        """
        if self._thread is None:
            raise CameraError(f"camera {self.serial} is not open; call open() first")
        job = _Job(fn)
        with self._lock:
            self._jobs.append(job)
        if not job.done.wait(timeout_s):
            raise CameraTimeout(
                f"camera {self.serial}: its thread did not run the request within "
                f"{timeout_s:.1f} s"
            )
        if job.error is not None:
            raise job.error
        return job.result

    def configure(self, config: CameraConfig) -> AppliedConfig:
        """Stop, apply `config`, read it back and stream again; kept for rebuilds.

        A new `CameraConfig.num_buffers` applies from the next connection.
        """

        def reconfigure(acquirer: Acquirer) -> AppliedConfig:
            acquirer.stop()
            try:
                applied = apply_config(
                    acquirer.remote_device.node_map, config, serial=self.serial
                )
            finally:
                acquirer.start()
            self._config, self._applied = config, applied
            return applied

        return self.run_on_acquirer(reconfigure)

    def device_settings(self) -> dict[str, object]:
        """Return the device's writable features and their values (plain JSON)."""
        return self.run_on_acquirer(
            lambda acquirer: read_device_settings(acquirer.remote_device.node_map)
        )

    def load_device_settings(self, values: dict[str, object]) -> list[str]:
        """Write saved feature values, then read the configuration back.

        Returns the features that were not written, each with its reason.
        """

        def load(acquirer: Acquirer) -> list[str]:
            acquirer.stop()
            try:
                node_map = acquirer.remote_device.node_map
                skipped = write_device_settings(node_map, values, serial=self.serial)
                self._applied = apply_config(
                    node_map,
                    CameraConfig(trigger=self._config.trigger),
                    serial=self.serial,
                )
            finally:
                acquirer.start()
            return skipped

        return self.run_on_acquirer(load)

    # --- The thread --------------------------------------------------------------

    def _run(self) -> None:
        acquirer: Acquirer | None = None
        try:
            acquirer = self._connect()
        except BaseException as exc:  # thread boundary: hand it to open()
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()

        while not self._stopping.is_set():
            try:
                self._run_jobs(acquirer)
                self._fetch(acquirer)
            except Exception as exc:  # thread and hardware boundary
                reason = (
                    str(exc)
                    if isinstance(exc, _Fault)
                    else (f"{type(exc).__name__}: {exc}")
                )
                obsolete = isinstance(exc, _Obsolete)
                acquirer = self._rebuild(acquirer, reason, obsolete=obsolete)
                if acquirer is None:
                    break
        self._disconnect(acquirer)

    def _connect(self) -> Acquirer:
        """Open, configure and start an acquirer on the device, by its serial."""
        assert self._device is not None
        acquirer = self._open_acquirer(self._device)
        try:
            acquirer.num_buffers = self._config.num_buffers
            if hasattr(acquirer, _POLL_ATTRIBUTE):
                setattr(acquirer, _POLL_ATTRIBUTE, _POLL_MS)
            self._applied = apply_config(
                acquirer.remote_device.node_map, self._config, serial=self.serial
            )
            acquirer.start()
        except BaseException:
            self._disconnect(acquirer)
            raise
        self._generation = self._session.generation
        self._streaming = True
        self._last_frame = time.monotonic()
        return acquirer

    def _disconnect(self, acquirer: Acquirer | None) -> None:
        if acquirer is None:
            return
        for step in (acquirer.stop, acquirer.destroy):
            try:
                step()
            except Exception as exc:  # hardware boundary: it may be gone already
                log.debug("camera %s: %s failed: %s", self.serial, step.__name__, exc)
        self._session.forget(acquirer)

    def _run_jobs(self, acquirer: Acquirer) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            try:
                with self._session.lock.shared():
                    job.result = job.fn(acquirer)
            except Exception as exc:  # returned to the caller of run_on_acquirer
                job.error = exc
            job.done.set()

    def _fetch(self, acquirer: Acquirer) -> None:
        """Wait one slice for a buffer; deliver it if asked for, queue it back."""
        if not self._streaming:
            self._stopping.wait(self._tuning.fetch_slice_s)
            return
        with self._session.lock.shared():
            if self._generation != self._session.generation or not (
                acquirer.is_valid()
            ):
                raise _Obsolete(
                    "its acquirer was made obsolete by a device rediscovery"
                )
            self._trigger(acquirer)
            buffer = acquirer.try_fetch(timeout=self._tuning.fetch_slice_s)
            if buffer is None:
                self._check_stall()
                return
            fetched = time.monotonic()
            self._last_frame = fetched
            try:
                self._deliver(buffer, fetched)
            finally:
                buffer.queue()

    def _trigger(self, acquirer: Acquirer) -> None:
        if self._applied is None or not self._applied.software_trigger:
            return
        with self._lock:
            fresh = [r for r in self._requests if not r.triggered]
        if fresh:
            execute_software_trigger(acquirer.remote_device.node_map)
            self._triggered_at = time.monotonic()
            for request in fresh:
                request.triggered = True

    def _check_stall(self) -> None:
        now = time.monotonic()
        applied = self._applied
        if applied is not None and applied.software_trigger:
            with self._lock:
                waiting = any(r.triggered for r in self._requests)
            if waiting and now - self._triggered_at > self._tuning.stall_s:
                raise _Fault(
                    f"no frame {now - self._triggered_at:.1f} s after a software "
                    "trigger"
                )
            return
        limit = self._tuning.stall_s
        if applied is not None and applied.frame_rate_hz:
            limit = max(limit, 5.0 / applied.frame_rate_hz)
        if now - self._last_frame > limit:
            raise _Fault(
                f"its stream starved: no buffer for {now - self._last_frame:.1f} s "
                "(buffers not queued back, or the link is down)"
            )

    def _deliver(self, buffer: Any, fetched: float) -> None:
        with self._lock:
            waiting = [r for r in self._requests if r.submitted < fetched]
            for request in waiting:
                self._requests.remove(request)
            self._stats = replace(self._stats, fetched=self._stats.fetched + 1)
        if not waiting:
            return

        start = time.perf_counter()
        try:
            frame = self._frame(buffer, fetched)
        except FrameFormatError as exc:
            with self._lock:
                self._stats = replace(self._stats, rejected=self._stats.rejected + 1)
            log.warning("%s", exc)
            for request in waiting:
                request.finish(None, exc)
            return
        spent = time.perf_counter() - start

        with self._lock:
            self._stats = replace(
                self._stats,
                delivered=self._stats.delivered + 1,
                convert_s=self._stats.convert_s + spent,
            )
        for request in waiting:
            latency_ms = 1000.0 * (fetched - request.submitted)
            request.finish(
                replace(frame, metadata={**frame.metadata, "latency_ms": latency_ms})
            )

    def _frame(self, buffer: Any, fetched: float) -> Frame:
        """Check a buffer against the configuration and copy it into a `Frame`."""
        applied = self._applied
        assert applied is not None
        component = buffer.payload.components[0]
        width, height = int(component.width), int(component.height)
        pixel_format = str(component.data_format)
        got = (pixel_format, width, height)
        wanted = (applied.pixel_format, applied.width, applied.height)
        if got != wanted:
            raise FrameFormatError(
                f"camera {self.serial} sent a {pixel_format} {width}x{height} frame "
                f"but was configured for {applied.pixel_format} {applied.width}x"
                f"{applied.height}: a feature was changed while it streamed (by "
                "another program?). The frame was refused; close and reopen the "
                "camera to apply its configuration again"
            )
        pixels = to_rgb8(
            component.data, width=width, height=height, pixel_format=pixel_format
        )
        # Limitation: the timestamp is the host's clock when the buffer was fetched;
        # the device's own timestamp (ticks of its clock, where it keeps one) is in
        # the metadata, not mapped to UTC.
        return Frame(
            pixels=pixels,
            serial=self.serial,
            view=self._view,
            timestamp=datetime.now(UTC),
            exposure_us=applied.exposure_us or 0.0,
            metadata={
                "pixel_format": pixel_format,
                "device_timestamp_ns": device_timestamp_ns(buffer),
            },
        )

    def _rebuild(
        self, acquirer: Acquirer | None, reason: str, *, obsolete: bool
    ) -> Acquirer | None:
        """Rebuild the acquirer until it streams again or the camera is closed.

        The first attempt rediscovers the devices unless the acquirer was only made
        obsolete by a rediscovery; later ones at most every `rediscover_every_s`.
        """
        self._fault = reason
        log.warning("camera %s: %s; rebuilding its acquirer", self.serial, reason)
        attempt = 0
        rediscovered = -math.inf
        while not self._stopping.is_set():
            attempt += 1
            log.info("camera %s: stopping and destroying its acquirer", self.serial)
            self._disconnect(acquirer)
            acquirer = None
            try:
                due = time.monotonic() - rediscovered >= self._tuning.rediscover_every_s
                if (attempt == 1 and not obsolete) or (attempt > 1 and due):
                    log.info("camera %s: rediscovering devices", self.serial)
                    self._session.rediscover(if_generation=self._generation)
                    self._generation = self._session.generation
                    rediscovered = time.monotonic()
                assert self._device is not None
                log.info("camera %s: reopening it by serial", self.serial)
                self._device = self._session.find(self._device.serial)
                acquirer = self._connect()
            except Exception as exc:  # hardware boundary: try again after a pause
                delay = min(
                    self._tuning.backoff_max_s,
                    self._tuning.backoff_first_s * 2 ** (attempt - 1),
                )
                self._fault = f"{reason}; reconnecting failed: {exc}"
                log.warning(
                    "camera %s: reconnection attempt %d failed (%s); next in %.1f s",
                    self.serial,
                    attempt,
                    exc,
                    delay,
                )
                self._stopping.wait(delay)
                continue
            with self._lock:
                self._stats = replace(self._stats, rebuilds=self._stats.rebuilds + 1)
                for request in self._requests:
                    request.triggered = False
            self._fault = None
            log.warning(
                "camera %s recovered after %d attempt(s) (%s)",
                self.serial,
                attempt,
                reason,
            )
            return acquirer
        return acquirer

    def _fail_requests(self, error: CameraError) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
            jobs, self._jobs = self._jobs, []
        for request in requests:
            request.finish(None, error)
        for job in jobs:
            job.error = error
            job.done.set()
