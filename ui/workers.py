"""The bench worker, and what every worker shares.

Every camera, pipeline and database step of the app runs on a worker (this one
and `ui.history_worker`). Each worker is a `QObject` moved to a `QThread` of its
own; the window talks to it only through queued signals, so the GUI thread never
waits on a camera, the network or the disk. A worker beats its heartbeat at least
once a second while idle and between the steps of long work, and records the
thread of every step in a `StepLog`.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PyQt6.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from appliance import recipes
from appliance.calibrations import current_calibration
from appliance.classifier import SeedClassifier, classifier_for
from appliance.cli.common import USER_ERRORS
from appliance.inspection import InspectionCancelled
from appliance.records.accounts import Action, Actor
from appliance.records.service import Records
from appliance.rigs import RigHandle
from appliance.samples import (
    InspectedSample,
    SampleInfo,
    inspect_sample,
)
from appliance.settings import Settings
from appliance.store import Database, ImageStore
from calibration import CalibrationError, CalibrationRecord
from drivers.base import VIEWS, CameraError, View
from ui.model import (
    Heartbeats,
    StatusItem,
    StepLog,
    calibration_status,
    inspection_view,
    shrink,
)

log = logging.getLogger(__name__)

#: Longest side of a live view frame, pixels.
LIVE_SIZE = 800

#: How often an idle worker reports that it is alive, milliseconds.
HEARTBEAT_MS = 500


def to_qimage(rgb: NDArray[np.uint8]) -> QImage:
    """Copy an (H, W, 3) uint8 RGB array into a `QImage` (safe on any thread)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()


def database_status(settings: Settings) -> StatusItem:
    """Name the database for the status bar (a SQLite file by its name)."""
    url = settings.database_url
    shown = Path(url.split("///", 1)[1]).name if url.startswith("sqlite:///") else url
    return StatusItem(shown, "ok", url)


class Worker(QObject):
    """What both workers share: heartbeats, the step log, the error guard."""

    #: title, message, details (a traceback for faults, empty for user mistakes)
    failed = pyqtSignal(str, str, str)
    #: the worker has closed what it held; its thread may end
    stopped = pyqtSignal()

    def __init__(
        self,
        name: str,
        *,
        steps: StepLog,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.steps = steps
        self.heartbeats = heartbeats
        self._timers: list[QTimer] = []

    def beat(self) -> None:
        """Tell the heartbeats this worker is alive."""
        if self.heartbeats is not None:
            self.heartbeats.beat(self.name)

    def every(self, interval_ms: int, call: Callable[[], None]) -> None:
        """Call `call` every `interval_ms` on this worker's thread."""
        timer = QTimer(self)
        timer.setInterval(interval_ms)
        timer.timeout.connect(call)
        timer.start()
        self._timers.append(timer)

    def stop_timers(self) -> None:
        """Stop the worker's timers (before its thread ends)."""
        for timer in self._timers:
            timer.stop()
        self._timers.clear()

    def step(self, name: str) -> None:
        """Record a step on this thread and beat the heartbeat."""
        self.steps.record(name)
        self.beat()

    @contextmanager
    def guard(self, title: str) -> Iterator[None]:
        """Turn an exception into a `failed` signal: the thread boundary.

        The error handler that receives the signal logs it, with the traceback
        of a fault.
        """
        try:
            yield
        except InspectionCancelled:
            raise
        except USER_ERRORS + (CameraError,) as exc:
            self.failed.emit(title, str(exc), "")
        except Exception as exc:
            self.failed.emit(
                title,
                f"{exc}. The details are in the log; if it happens again, "
                "restart the app.",
                traceback.format_exc(),
            )


class BenchWorker(Worker):
    """Owns the rig, the calibration, the classifiers and the pending sample.

    Parameters
    ----------
    settings : Settings
        Where the data lives.
    open_rig : callable
        Returns an open `RigHandle`; called once, on the worker's thread.
    steps : StepLog
        Where each step's thread is recorded.
    heartbeats : Heartbeats, optional
        Beaten as ``"ui.bench"``.
    live_interval_ms : int
        Period of the live views; 0 turns them off.
    """

    live = pyqtSignal(object)  # dict[View, QImage]
    cameras = pyqtSignal(object)  # dict[View, StatusItem]
    calibration = pyqtSignal(object)  # StatusItem
    model = pyqtSignal(object)  # StatusItem
    database = pyqtSignal(object)  # StatusItem
    progress = pyqtSignal(str, float)
    inspected = pyqtSignal(object)  # InspectionView
    saved = pyqtSignal(int, object)  # sample id, SampleInfo
    discarded = pyqtSignal()
    cancelled = pyqtSignal(str)
    finished_work = pyqtSignal()  # a capture ended, well or not
    ask_operator = pyqtSignal(str)

    def __init__(
        self,
        settings: Settings,
        *,
        open_rig: Callable[[], RigHandle],
        steps: StepLog,
        heartbeats: Heartbeats | None = None,
        live_interval_ms: int = 500,
    ) -> None:
        super().__init__("ui.bench", steps=steps, heartbeats=heartbeats)
        self.settings = settings
        self._open_rig = open_rig
        self._live_interval_ms = live_interval_ms
        self._cancel = threading.Event()
        self._answered = threading.Event()
        self._answer = False
        self._handle: RigHandle | None = None
        self._db: Database | None = None
        self._records: Records | None = None
        self._images: ImageStore | None = None
        self._calibration: tuple[int, CalibrationRecord] | None = None
        self._classifiers: dict[str, SeedClassifier] = {}
        self._recipe: str | None = None
        self._pending: InspectedSample | None = None
        self._actor: Actor | None = None
        self._pin = ""
        self._camera_state: dict[View, StatusItem] = {}

    # Called directly from the GUI thread: they only set events.

    def arm(self, *, pin: str = "") -> None:
        """Clear a previous cancel before a capture is requested (thread-safe).

        Done on the GUI thread when the request is sent, so a Cancel pressed
        before the worker starts the capture still counts. `pin` is the
        operator's, for the records service once the bench has accounts.
        """
        self._pin = pin
        self._cancel.clear()

    def cancel(self) -> None:
        """Ask the running capture to stop at the next step (thread-safe)."""
        self._cancel.set()
        self._answered.set()

    def answer(self, done: bool) -> None:
        """Answer the operator prompt of `ask_operator` (thread-safe)."""
        self._answer = done
        self._answered.set()

    # Slots, run on the worker's thread.

    @pyqtSlot()
    def start(self) -> None:
        """Open the store and the rig, find the calibration, start the live views."""
        self.every(HEARTBEAT_MS, self.beat)
        with self.guard("Cannot open the database"):
            self.step("database.open")
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = Database.open(self.settings.database_url)
            self._images = ImageStore(self.settings.images_dir)
            self._records = Records(self._db, self._images, self.settings)
            self.database.emit(database_status(self.settings))
        if self._db is None:
            self.database.emit(
                StatusItem(
                    "unavailable",
                    "error",
                    "check the database_url setting and that the disk is not full, "
                    "then restart the app",
                )
            )
            unopened = StatusItem("not opened", "error", "the database is unavailable")
            self.cameras.emit({view: unopened for view in VIEWS})
            self.calibration.emit(unopened)
            return
        self._open_the_rig()
        if self._handle is None:
            self.calibration.emit(StatusItem("unknown", "error", "no rig is open"))
        else:
            with self.guard("Cannot load the calibration"):
                self._load_calibration()
            if self._live_interval_ms > 0:
                self.every(self._live_interval_ms, self.grab_live)

    def _open_the_rig(self) -> None:
        try:
            self.step("camera.open")
            self._handle = self._open_rig()
        except Exception as exc:  # reported through `failed`, and logged there
            item = StatusItem(
                "not connected",
                "error",
                f"{exc}. Check both cameras are powered and connected, then "
                "restart the app.",
            )
            self.cameras.emit({view: item for view in VIEWS})
            expected = isinstance(exc, USER_ERRORS + (CameraError,))
            details = "" if expected else traceback.format_exc()
            self.failed.emit("Cannot open the rig", str(exc), details)
            return
        rig = self._handle.rig
        self._set_cameras(
            {view: StatusItem(f"{getattr(rig, view).serial} ready") for view in VIEWS}
        )

    def _set_cameras(self, state: dict[View, StatusItem]) -> None:
        if state != self._camera_state:
            self._camera_state = state
            self.cameras.emit(state)

    def _load_calibration(self) -> None:
        assert self._handle is not None and self._db is not None
        assert self._images is not None
        self.calibration.emit(StatusItem("loading", "busy"))
        try:
            self.step("database.calibration")
            self._calibration = current_calibration(
                self._db, self._images, self._handle.rig.name
            )
        except CalibrationError as exc:
            if self._handle.kind != "simulated":
                self.calibration.emit(
                    StatusItem(
                        "none",
                        "error",
                        f"{exc}; or use Bench > Calibrate rig",
                    )
                )
                return
            log.info("simulated rig has no calibration yet: calibrating it now")
            self.calibrate()
            return
        _, record = self._calibration
        self.calibration.emit(
            calibration_status(int(record.version or 0), record.created_at)
        )

    @pyqtSlot()
    def calibrate(self) -> None:
        """Capture the blank plate and the target, calibrate and store the result."""
        if self._handle is None or self._records is None:
            self.failed.emit(
                "Cannot calibrate", "the rig is not open; see the status bar", ""
            )
            return
        self.calibration.emit(StatusItem("calibrating...", "busy"))
        try:
            with self.guard("Calibration failed"):
                self.step("camera.calibrate")
                # Limitation: the app calibrates on the open bench; once the
                # bench has accounts, an engineer calibrates with
                # `seedqa calibrate --user NAME`.
                self._calibration = self._records.calibrate(
                    self._records.open_bench(), self._handle, ask=self._ask
                )
        except InspectionCancelled:
            log.info("calibration cancelled at the operator prompt")
        if self._calibration is None:
            self.calibration.emit(
                StatusItem("none", "error", "calibrate the rig again")
            )
            return
        _, record = self._calibration
        self.calibration.emit(
            calibration_status(int(record.version or 0), record.created_at)
        )
        if self._handle.bench is not None:
            with self.guard("Cannot lay a sample on the simulated plate"):
                self._handle.prepare("sample")  # the live views show seeds again

    @pyqtSlot(str)
    def select_recipe(self, name: str) -> None:
        """Load the recipe's model bundle, once per recipe."""
        self._recipe = name
        if name in self._classifiers:
            self._emit_model(self._classifiers[name])
            return
        self.model.emit(StatusItem(f"loading {name}", "busy"))
        try:
            self.step("model.load")
            recipe = recipes.get(name)
            classifier = classifier_for(recipe, self.settings.models_dir)
        except USER_ERRORS as exc:
            log.warning("recipe %s: %s", name, exc)
            self.model.emit(StatusItem(f"none for {name}", "error", str(exc)))
            return
        except Exception as exc:
            log.exception("recipe %s: cannot load its model", name)
            self.model.emit(StatusItem(f"none for {name}", "error", str(exc)))
            return
        self._classifiers[name] = classifier
        if self._recipe == name:
            self._emit_model(classifier)

    def _emit_model(self, classifier: SeedClassifier) -> None:
        info = classifier.bundle.info
        self.model.emit(
            StatusItem(
                f"{info.name} v{info.version}",
                "ok",
                f"bundle {classifier.bundle.sha256[:12]}, {classifier.numeric}",
            )
        )

    @pyqtSlot()
    def grab_live(self) -> None:
        """Grab one frame per camera for the live views (skipped while busy).

        Each camera is grabbed on its own, so the status bar can tell which one
        has failed.
        """
        if self._handle is None or self._pending is not None:
            return
        self.step("camera.live")
        rig = self._handle.rig
        frames: dict[View, QImage] = {}
        state: dict[View, StatusItem] = {}
        for view in VIEWS:
            camera = rig.top if view == "top" else rig.bottom
            try:
                frame = camera.grab(timeout_s=2.0)
            except CameraError as exc:
                state[view] = StatusItem(
                    "fault", "error", f"{exc}; check the camera's cable and power"
                )
                if self._camera_state.get(view) != state[view]:
                    log.warning("live view of the %s camera: %s", view, exc)
                continue
            except Exception as exc:
                log.exception("live view of the %s camera failed", view)
                state[view] = StatusItem("fault", "error", str(exc))
                continue
            state[view] = StatusItem(f"{frame.serial} live")
            frames[view] = to_qimage(shrink(frame.pixels, LIVE_SIZE))
        self._set_cameras(state)
        if frames:
            self.live.emit(frames)

    @pyqtSlot(object)
    def capture(self, info: SampleInfo) -> None:
        """Capture and measure one sample; keep it pending until accepted."""
        self._pending = None
        try:
            self._capture(info)
        finally:
            self.finished_work.emit()

    def _capture(self, info: SampleInfo) -> None:
        if self._handle is None or self._calibration is None:
            self.failed.emit(
                "Cannot capture",
                "the rig is not ready (no camera or no calibration); see the "
                "status bar",
                "",
            )
            return
        classifier = self._classifiers.get(info.recipe)
        if classifier is None:
            self.failed.emit(
                "Cannot capture",
                f"recipe {info.recipe} has no model loaded; see the status bar",
                "",
            )
            return

        def report(step: str, fraction: float) -> None:
            self.step(f"pipeline.{step}")
            self.progress.emit(step, fraction)

        try:
            with self.guard(f"Capture of sample {info.code} failed"):
                self.step("database.sign_in")
                self._actor = self._sign_in(info)
                inspected = inspect_sample(
                    self._handle,
                    self._calibration,
                    info,
                    classifier=classifier,
                    recipe=recipes.get(info.recipe),
                    ask=self._ask,
                    progress=report,
                    cancel=self._cancel,
                )
                report("drawing the result", 0.95)
                view = inspection_view(inspected)
                self._pending = inspected
                self.progress.emit("measured: accept or discard", 1.0)
                self.inspected.emit(view)
        except InspectionCancelled as exc:
            log.info("capture of sample %s cancelled", info.code)
            self.cancelled.emit(str(exc))

    def _sign_in(self, info: SampleInfo) -> Actor:
        """Return who captures: the account with the typed PIN, else the open bench.

        Raises
        ------
        AuthenticationFailed, PermissionDenied
            If the name and PIN do not match an account, or its role may not
            capture; the records service audits the refusal.
        """
        assert self._records is not None
        if self._records.has_accounts():
            actor = self._records.sign_in(info.operator, self._pin)
        else:
            actor = self._records.open_bench(info.operator)
        self._records.require(actor, Action.CAPTURE, f"lot:{info.lot}")
        return actor

    def _ask(self, message: str) -> None:
        """Ask the operator through the window and wait, beating meanwhile."""
        self._answered.clear()
        self.ask_operator.emit(message)
        while not self._answered.wait(HEARTBEAT_MS / 1000):
            self.beat()
        if self._cancel.is_set() or not self._answer:
            raise InspectionCancelled("cancelled at the operator prompt; nothing saved")

    @pyqtSlot()
    def accept(self) -> None:
        """Store the pending sample in one transaction."""
        pending = self._pending
        if pending is None or self._records is None:
            return
        with self.guard(f"Sample {pending.info.code} could not be saved"):
            self.step("database.save")
            stored = self._records.accept(
                self._actor or self._records.open_bench(pending.info.operator),
                pending,
                classifier=self._classifiers.get(pending.info.recipe),
            )
            self._pending = None
            self.saved.emit(stored.id, pending.info)

    @pyqtSlot()
    def discard(self) -> None:
        """Drop the pending sample; nothing was stored."""
        if self._pending is not None:
            log.info("sample %s discarded by the operator", self._pending.info.code)
        self._pending = None
        self.discarded.emit()

    @pyqtSlot()
    def stop(self) -> None:
        """Close the rig and the database; the thread may end after this."""
        self.stop_timers()
        if self._handle is not None:
            with self.guard("Closing the rig failed"):
                self.step("camera.close")
                self._handle.close()
            self._handle = None
        if self._db is not None:
            self._db.close()
            self._db = None
            self._records = None
        self.stopped.emit()
