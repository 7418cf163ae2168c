"""The operator's window, its two worker threads, and the `seedqa-ui` entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from functools import partial

from PyQt6.QtCore import Qt, QThread, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QStatusBar,
    QTabWidget,
)

from appliance import recipes, watchdog
from appliance.logs import configure_logging
from appliance.rigs import RigHandle, RigKind, open_rig
from appliance.samples import SampleInfo
from appliance.settings import Settings
from drivers.base import VIEWS, View
from ui.annotation import AnnotationScreen
from ui.display import NoDisplay, check_display
from ui.errors import ErrorHandler
from ui.history_screen import HistoryScreen
from ui.history_worker import HistoryWorker
from ui.inspect_screen import InspectScreen
from ui.model import Heartbeats, InspectionView, StatusItem, StepLog
from ui.style import STYLE_SHEET, app_font
from ui.widgets import StatusChip
from ui.workers import BenchWorker

log = logging.getLogger(__name__)

#: A worker silent for longer counts as hung (it beats every 0.5 s when idle and
#: between pipeline steps, the longest of which takes a few seconds).
WORKER_MAX_AGE_S = 20.0


class MainWindow(QMainWindow):
    """The seedqa bench app: Inspect and History, a status bar, two workers.

    Parameters
    ----------
    settings : Settings
        Where the data lives.
    rig : {"simulated", "genicam"}
        Which rig to open, unless `open_rig` is given.
    seed : int
        First sample seed of the simulated rig.
    rig_opener : callable, optional
        Returns an open `RigHandle`; called on the bench worker's thread.
    heartbeats : Heartbeats, optional
        Beaten by the workers as ``"ui.bench"`` and ``"ui.history"``.
    steps : StepLog, optional
        Records the thread of every camera, pipeline and database step.
    live_interval_ms : int
        Period of the live views (0: none).
    """

    _start_bench = pyqtSignal()
    _start_history = pyqtSignal()
    _select_recipe = pyqtSignal(str)
    _capture = pyqtSignal(object)
    _accept = pyqtSignal()
    _discard = pyqtSignal()
    _calibrate = pyqtSignal()
    _query = pyqtSignal(object)
    _detail = pyqtSignal(int)
    _export = pyqtSignal(object, str, object)
    _stop = pyqtSignal()

    def __init__(
        self,
        settings: Settings,
        *,
        rig: RigKind = "simulated",
        seed: int = 0,
        rig_opener: Callable[[], RigHandle] | None = None,
        heartbeats: Heartbeats | None = None,
        steps: StepLog | None = None,
        live_interval_ms: int = 500,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.steps = steps or StepLog()
        self.setWindowTitle(f"seedqa  ·  {rig} rig")
        self.setStyleSheet(STYLE_SHEET)
        self.resize(1600, 980)
        self.errors = ErrorHandler(self)

        names = [r.name for r in recipes.available()]
        self.inspect = InspectScreen(names)
        self.history = HistoryScreen(names, settings.data_dir / "exports")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.inspect, "Inspect")
        self.tabs.addTab(self.history, "History")
        self.annotate = AnnotationScreen(
            settings.database_url,
            settings.images_dir,
            models_dir=settings.models_dir / "active",
        )
        self.tabs.addTab(self.annotate, "Annotate")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        self._problems: dict[str, str] = {}
        self._waiting: dict[str, str] = {}
        self._build_status_bar()
        self._waiting = {key: "Getting ready..." for key in self.chips}
        self.inspect.set_waiting("Getting ready...")
        self._build_menu()
        self.space = QShortcut(QKeySequence("Space"), self)
        self.space.activated.connect(self._space)

        opener = rig_opener or partial(open_rig, rig, seed=seed, settings=settings)
        self.bench = BenchWorker(
            settings,
            open_rig=opener,
            steps=self.steps,
            heartbeats=heartbeats,
            live_interval_ms=live_interval_ms,
        )
        self.records = HistoryWorker(settings, steps=self.steps, heartbeats=heartbeats)
        self.threads: list[QThread] = []
        for worker, name in ((self.bench, "bench"), (self.records, "history")):
            thread = QThread(self)
            thread.setObjectName(f"seedqa-{name}")
            worker.moveToThread(thread)
            worker.failed.connect(self.errors.report)
            # Direct: the GUI thread is waiting on the thread when this arrives.
            worker.stopped.connect(thread.quit, Qt.ConnectionType.DirectConnection)
            self.threads.append(thread)
        self._connect()
        for thread in self.threads:
            thread.start()
        self._start_bench.emit()
        self._start_history.emit()
        self._select_recipe.emit(self.inspect.recipe.currentText())

    def _build_status_bar(self) -> None:
        bar = QStatusBar()
        bar.setSizeGripEnabled(False)
        self.chips: dict[str, StatusChip] = {
            "top": StatusChip("Top camera"),
            "bottom": StatusChip("Bottom camera"),
            "calibration": StatusChip("Calibration"),
            "model": StatusChip("Model"),
            "database": StatusChip("Database"),
        }
        for chip in self.chips.values():
            bar.addWidget(chip)
        self.setStatusBar(bar)

    def _build_menu(self) -> None:
        menu = self.menuBar()
        assert menu is not None
        bench = menu.addMenu("&Bench")
        assert bench is not None
        calibrate = QAction("Calibrate rig...", self)
        calibrate.triggered.connect(self._ask_calibrate)
        bench.addAction(calibrate)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        bench.addAction(quit_action)

    def _connect(self) -> None:
        bench, records, screen = self.bench, self.records, self.inspect
        self._start_bench.connect(bench.start)
        self._select_recipe.connect(bench.select_recipe)
        self._capture.connect(bench.capture)
        self._accept.connect(bench.accept)
        self._discard.connect(bench.discard)
        self._calibrate.connect(bench.calibrate)
        self._stop.connect(bench.stop)
        self._start_history.connect(records.start)
        self._query.connect(records.query)
        self._detail.connect(records.show)
        self._export.connect(records.export)
        self._stop.connect(records.stop)

        bench.live.connect(screen.show_live)
        bench.cameras.connect(self._show_cameras)
        bench.calibration.connect(partial(self._show_status, "calibration"))
        bench.model.connect(partial(self._show_status, "model"))
        bench.database.connect(partial(self._show_status, "database"))
        bench.progress.connect(screen.show_progress)
        bench.inspected.connect(self._show_result)
        bench.saved.connect(self._saved)
        bench.discarded.connect(screen.clear_result)
        bench.cancelled.connect(self._cancelled)
        bench.finished_work.connect(screen.capture_done)
        bench.ask_operator.connect(self._ask_operator)

        screen.recipe_changed.connect(self._select_recipe)
        screen.capture_requested.connect(self._start_capture)
        # Called here, on the GUI thread: the bench thread is busy with the capture.
        screen.cancel_requested.connect(lambda: self.bench.cancel())
        screen.accept_requested.connect(self._accept)
        screen.recapture_requested.connect(self._recapture)

        records.listed.connect(self.history.show_rows)
        records.detail.connect(self.history.show_detail)
        records.exported.connect(self.history.show_exported)
        records.failed.connect(lambda *_: self.history.export_failed())
        self.history.query_requested.connect(self._query)
        self.history.detail_requested.connect(self._detail)
        self.history.export_requested.connect(self._export)

    # Status.

    def _show_cameras(self, state: dict[View, StatusItem]) -> None:
        for view in VIEWS:
            self._show_status(view, state[view])
            if state[view].level == "error" and self.inspect.result is None:
                pane = self.inspect.views[view]
                pane.placeholder = f"No picture: camera {state[view].text}"
                pane.set_image(None)  # a stale frame would pass for a live one

    def _show_status(self, key: str, item: StatusItem) -> None:
        self.chips[key].show_item(item)
        name = self.chips[key].name
        if item.level == "error":
            self._problems[key] = f"{name}: {item.advice or item.text}"
        else:
            self._problems.pop(key, None)
        if item.level == "busy":
            self._waiting[key] = f"Getting ready: {name.lower()} {item.text}"
        else:
            self._waiting.pop(key, None)
        self.inspect.set_problem("\n".join(self._problems.values()))
        self.inspect.set_waiting(next(iter(self._waiting.values()), ""))

    # Inspect.

    def _space(self) -> None:
        if self.tabs.currentWidget() is self.inspect:
            self.inspect.request_capture()

    def _show_result(self, result: InspectionView) -> None:
        self.inspect.show_result(result)

    def _saved(self, sample_id: int, info: SampleInfo) -> None:
        self.inspect.clear_result()
        self.inspect.set_note(
            f"Sample {info.code} of lot {info.lot} saved as #{sample_id}. "
            "Type the next sample code."
        )
        self.history.refresh()

    def _start_capture(self, info: SampleInfo) -> None:
        self.bench.arm(pin=self.inspect.pin())
        self._capture.emit(info)

    def _recapture(self, info: SampleInfo) -> None:
        self._discard.emit()
        self._start_capture(info)

    def _cancelled(self, message: str) -> None:
        self.inspect.set_busy(False)
        self.inspect.set_note(message[:1].upper() + message[1:] + ".")

    def _ask_operator(self, message: str) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("At the bench")
        box.setText(message)
        box.setStandardButtons(
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel
        )
        box.finished.connect(
            lambda result: self.bench.answer(
                result == QMessageBox.StandardButton.Ok.value
            )
        )
        self.prompt = box
        box.open()

    def _ask_calibrate(self) -> None:
        self.bench.arm()
        self._calibrate.emit()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history:
            self.history.refresh()
        elif self.tabs.widget(index) is self.annotate and self.annotate.batch is None:
            self.annotate.load_round()
            self.annotate.refresh_history()

    # Lifetime.

    def is_ready(self) -> bool:
        """Return whether cameras, calibration, model and database are all up."""
        return not self._problems and not self._waiting

    def shutdown(self) -> None:
        """Stop both workers and wait for their threads to end."""
        if not self.threads:
            return
        self.bench.cancel()
        self._stop.emit()  # each worker closes what it holds, then ends its thread
        for thread in self.threads:
            if not thread.wait(15000):
                log.warning("thread %s did not stop in 15 s", thread.objectName())
        self.threads = []
        self.annotate.shutdown()
        self.errors.uninstall()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        """Stop the workers before the window goes."""
        self.shutdown()
        super().closeEvent(event)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `seedqa-ui`."""
    parser = argparse.ArgumentParser(
        prog="seedqa-ui",
        description="Open the seedqa bench app: capture, inspect and accept samples; "
        "browse and export the history.",
    )
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the app's options to `parser` (shared with `seedqa ui`)."""
    parser.add_argument(
        "--rig",
        choices=["simulated", "genicam"],
        default=None,
        help="which rig to open (default: the rig setting, else simulated)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="first sample seed of the simulated rig (0)"
    )


def run_app(
    *,
    rig: RigKind | None = None,
    seed: int = 0,
    argv: Sequence[str] = (),
    top: str | None = None,
    bottom: str | None = None,
    producer: str | None = None,
) -> int:
    """Open the window and run the event loop; return the exit status."""
    settings = Settings.load()
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setApplicationName("seedqa")
    app.setFont(app_font())
    heartbeats = watchdog.Heartbeats()
    for worker in ("ui.bench", "ui.history"):
        heartbeats.register(worker, max_age_s=WORKER_MAX_AGE_S)
    notifier = watchdog.Notifier()  # does nothing outside systemd
    pinger = watchdog.Watchdog.from_environment(heartbeats, notifier)
    kind = rig or settings.rig
    opener = partial(
        open_rig,
        kind,
        seed=seed,
        settings=settings,
        top=top,
        bottom=bottom,
        producer=producer,
    )
    window = MainWindow(
        settings, rig=kind, seed=seed, rig_opener=opener, heartbeats=heartbeats
    )
    window.errors.install()
    window.show()

    # systemd counts the app as started once cameras, model and database are up.
    ready = QTimer(window)

    def tell_when_ready() -> None:
        if window.is_ready():
            notifier.ready("cameras, model and database up")
            ready.stop()

    ready.timeout.connect(tell_when_ready)
    ready.start(500)
    if pinger is not None:
        pinger.start()
    status = app.exec()
    notifier.stopping()
    if pinger is not None:
        pinger.stop()
    window.shutdown()
    return int(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `seedqa-ui`."""
    args = build_parser().parse_args(argv)
    try:
        check_display()
    except NoDisplay as exc:
        print(f"seedqa-ui: {exc}", file=sys.stderr)  # noqa: T201 - an entry point
        return 2
    # Under systemd the records reach the journal at their own priorities.
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return run_app(rig=args.rig, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
