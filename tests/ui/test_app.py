"""The bench app, offscreen, on a small simulated rig and a real SQLite file.

Each test opens the real window with its two worker threads; the rig is the
simulated one (a quarter-size sensor, 40 kernels a sample) and the classifier the
untrained maize bundle, so a capture takes about a second.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator

import pytest
from PyQt6.QtCore import Qt

from appliance import recipes
from appliance.calibrations import calibrate_rig, current_calibration
from appliance.classifier import classifier_for
from appliance.inspection import analyse
from appliance.records.accounts import Role
from appliance.records.audit import list_entries
from appliance.records.service import Records
from appliance.report import summary_json
from appliance.rigs import RigHandle
from appliance.samples import SampleInfo, capture_sample
from appliance.settings import Settings
from appliance.store import Database, ImageStore, list_samples
from drivers.base import CameraTimeout, DualRig, Frame
from drivers.simulated import SimulatedBench, SimulatedCamera
from tests.small_rig import GEOMETRY, SPEC, open_small_rig, small_rig_opener
from ui.app import MainWindow
from ui.model import StepLog

WAIT_MS = 120_000  # the machine may be busy; the tests never time the app


class BeatLog:
    """Heartbeats that remember who beat."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def beat(self, name: str) -> None:
        self.names.add(name)


@pytest.fixture
def open_window(qtbot, data_dir) -> Iterator[Callable[..., MainWindow]]:
    """Open the app on a rig; every window is shut down after the test."""
    windows = []

    def make(opener: Callable[[], RigHandle], **options) -> MainWindow:
        options.setdefault("live_interval_ms", 0)
        window = MainWindow(Settings.load(), rig_opener=opener, **options)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


def fill(window: MainWindow, lot: str, code: str = "S-0001", operator: str = "Ana"):
    screen = window.inspect
    screen.fields["lot"].setText(lot)
    screen.fields["code"].setText(code)
    screen.fields["operator"].setText(operator)


def wait_ready(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(window.inspect.capture_button.isEnabled, timeout=WAIT_MS)


def capture(qtbot, window: MainWindow) -> None:
    screen = window.inspect
    wait_ready(qtbot, window)
    qtbot.mouseClick(screen.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: screen.result is not None, timeout=WAIT_MS)


def samples_in(data_dir) -> list:
    with Database.open(Settings.load().database_url) as db:
        return list_samples(db)


def test_capture_shows_the_counts_of_the_pipeline_for_the_same_sample(
    qtbot, open_window, data_dir
):
    window = open_window(small_rig_opener(seed=21))
    fill(window, "MZ-2026-0142")
    capture(qtbot, window)
    shown = window.inspect.shown_counts()

    settings = Settings.load()
    recipe = recipes.get("maize")
    with Database.open(settings.database_url) as db:
        _, record = current_calibration(
            db, ImageStore(settings.images_dir), "simulated"
        )
    handle = open_small_rig(seed=21)
    try:
        handle.prepare("sample")
        inspection = analyse(
            handle.rig.capture(),
            record,
            classifier=classifier_for(recipe, settings.models_dir),
        )
    finally:
        handle.close()
    expected = summary_json(inspection, recipe)

    assert shown == expected["counts"]
    assert sum(shown.values()) == expected["n_seeds"] > 20
    assert f"{expected['purity_by_count']['value_pct']:.1f}%" in (
        window.inspect.purity.text()
    )
    assert samples_in(data_dir) == []  # nothing is stored before Accept


def test_no_camera_pipeline_or_database_step_runs_on_the_gui_thread(
    qtbot, open_window, data_dir, tmp_path
):
    steps, beats = StepLog(), BeatLog()
    window = open_window(
        small_rig_opener(seed=31), steps=steps, heartbeats=beats, live_interval_ms=100
    )
    screen = window.inspect
    qtbot.waitUntil(
        lambda: all(v.has_image() for v in screen.views.values()), timeout=WAIT_MS
    )
    fill(window, "MZ-2026-0142")
    capture(qtbot, window)

    card = next(iter(screen.result.seeds.values()))
    x, y, w, h = card.boxes["top"] or card.boxes["bottom"]
    view = "top" if card.boxes["top"] else "bottom"
    pane = screen.views[view]
    qtbot.mouseClick(
        pane,
        Qt.MouseButton.LeftButton,
        pos=pane.point_of(x + w / 2, y + h / 2).toPoint(),
    )
    assert screen.selected is not None
    assert screen.selected.index == card.index

    first = screen.result
    qtbot.mouseClick(screen.discard_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: screen.result is not None and screen.result is not first,
        timeout=WAIT_MS,
    )
    assert samples_in(data_dir) == []  # the discarded sample left nothing
    qtbot.mouseClick(screen.accept_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "saved as" in screen.hint.text(), timeout=WAIT_MS)
    assert len(samples_in(data_dir)) == 1

    window.tabs.setCurrentWidget(window.history)
    history = window.history
    qtbot.waitUntil(lambda: len(history.rows) == 1, timeout=WAIT_MS)
    history.table.selectRow(0)
    qtbot.waitUntil(history.detail_image.has_image, timeout=WAIT_MS)
    history.export_format.setCurrentIndex(history.export_format.findData("json"))
    history.export_dir.setText(str(tmp_path / "out"))
    qtbot.mouseClick(history.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(history.last_exported), timeout=WAIT_MS)

    gui = threading.main_thread().ident
    names = {step.name for step in steps.steps}
    assert {
        "camera.open",
        "camera.live",
        "camera.calibrate",
        "model.load",
        "pipeline.capturing",
        "database.save",
        "database.list",
        "database.detail",
        "database.export",
    } <= names
    assert any(name.startswith("pipeline.segmenting") for name in names)
    on_gui = [step.name for step in steps.steps if step.thread_id == gui]
    assert on_gui == []
    assert beats.names == {"ui.bench", "ui.history"}
    assert window.errors.shown == []


def test_an_invalid_lot_code_blocks_capture_with_a_message(qtbot, open_window):
    window = open_window(small_rig_opener(seed=41))
    screen = window.inspect
    fill(window, "MZ-2026-0142")
    wait_ready(qtbot, window)

    screen.fields["lot"].setText("lot 7!")

    assert not screen.capture_button.isEnabled()
    assert screen.errors["lot"].isVisible()
    assert "lot code 'lot 7!' is not valid" in screen.errors["lot"].text()
    assert "lot code" in screen.hint.text()
    with qtbot.assertNotEmitted(screen.capture_requested, wait=100):
        screen.request_capture()
        qtbot.keyClick(window, Qt.Key.Key_Space)

    screen.fields["lot"].setText("MZ-7")
    assert screen.capture_button.isEnabled()
    assert not screen.errors["lot"].isVisible()


class FailingCamera(SimulatedCamera):
    """A simulated camera that times out once `fail` is set."""

    def __init__(self, bench: SimulatedBench, view, fail: threading.Event) -> None:
        super().__init__(bench, view)
        self.fail = fail

    def grab(self, *, timeout_s: float = 5.0) -> Frame:
        if self.fail.is_set():
            raise CameraTimeout(
                f"camera {self.serial} delivered no frame within {timeout_s} s"
            )
        return super().grab(timeout_s=timeout_s)


def test_a_camera_fault_during_capture_shows_an_error_and_stores_nothing(
    qtbot, open_window, data_dir
):
    fail = threading.Event()

    def opener() -> RigHandle:
        bench = SimulatedBench(geometry=GEOMETRY, spec=SPEC, seed=51)
        rig = DualRig(
            SimulatedCamera(bench, "top"),
            FailingCamera(bench, "bottom", fail),
            name="simulated",
        )
        rig.open()
        return RigHandle("simulated", rig, bench)

    window = open_window(opener)
    screen = window.inspect
    fill(window, "MZ-2026-0142")
    wait_ready(qtbot, window)
    fail.set()

    screen.capture_button.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)  # the keyboard way to capture
    qtbot.waitUntil(lambda: bool(window.errors.shown), timeout=WAIT_MS)

    title, message = window.errors.shown[0]
    assert title == "Capture of sample S-0001 failed"
    assert "SIM-BOTTOM delivered no frame" in message
    assert window.errors.dialog is not None and window.errors.dialog.isVisible()
    qtbot.waitUntil(screen.capture_button.isEnabled, timeout=WAIT_MS)
    assert screen.result is None
    assert samples_in(data_dir) == []


@pytest.fixture
def two_stored_samples(data_dir) -> list[int]:
    """Two samples of two lots, stored through the headless API."""
    settings = Settings.load()
    images = ImageStore(settings.images_dir)
    recipe = recipes.get("maize")
    classifier = classifier_for(recipe, settings.models_dir)
    handle = open_small_rig(seed=61)
    ids = []
    with Database.open(settings.database_url) as db:
        calibration = calibrate_rig(handle, db, images, settings)
        for lot in ("LOT-A", "LOT-B"):
            info = SampleInfo.create(
                lot=lot, code="S-1", recipe="maize", operator="Ana Silva"
            )
            stored = capture_sample(
                handle,
                calibration,
                db,
                images,
                info,
                classifier=classifier,
                recipe=recipe,
            )
            ids.append(stored.id)
    handle.close()
    return ids


def test_export_from_history_writes_files_that_load_back(
    qtbot, open_window, two_stored_samples, tmp_path
):
    window = open_window(small_rig_opener(seed=71))
    history = window.history
    window.tabs.setCurrentWidget(history)
    qtbot.waitUntil(lambda: len(history.rows) == 2, timeout=WAIT_MS)

    history.lot.setText("LOT-B")
    history.refresh()
    qtbot.waitUntil(lambda: [r.lot for r in history.rows] == ["LOT-B"], timeout=WAIT_MS)
    history.lot.setText("")
    history.refresh()
    qtbot.waitUntil(lambda: len(history.rows) == 2, timeout=WAIT_MS)

    history.table.selectAll()
    assert sorted(history.selected_ids()) == sorted(two_stored_samples)
    history.export_dir.setText(str(tmp_path / "exports"))
    written = {}
    for fmt in ("json", "csv", "pdf"):
        history.last_exported = []
        history.export_format.setCurrentIndex(history.export_format.findData(fmt))
        qtbot.waitUntil(history.export_button.isEnabled, timeout=WAIT_MS)
        qtbot.mouseClick(history.export_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(history.last_exported) == 2, timeout=WAIT_MS)
        written[fmt] = list(history.last_exported)

    reports = [json.loads(p.read_text()) for p in written["json"]]
    assert sorted(r["sample"]["id"] for r in reports) == sorted(two_stored_samples)
    assert {r["sample"]["lot"] for r in reports} == {"LOT-A", "LOT-B"}
    for report, path in zip(reports, written["csv"], strict=True):
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        assert {int(r["sample_id"]) for r in rows} == {report["sample"]["id"]}
        assert len(rows) == len(report["seeds"]) > 0
    for path in written["pdf"]:
        assert path.read_bytes().startswith(b"%PDF")
    assert window.errors.shown == []


def test_cancel_during_capture_stores_nothing(qtbot, open_window, data_dir):
    window = open_window(small_rig_opener(seed=81))
    screen = window.inspect
    fill(window, "MZ-2026-0142")
    wait_ready(qtbot, window)

    qtbot.mouseClick(screen.capture_button, Qt.MouseButton.LeftButton)
    assert screen.cancel_button.isVisible()
    qtbot.mouseClick(screen.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in screen.hint.text(), timeout=WAIT_MS)

    assert screen.result is None
    assert not screen.cancel_button.isVisible()
    assert window.errors.shown == []
    assert samples_in(data_dir) == []


def test_a_rig_that_cannot_open_is_shown_with_what_to_do(qtbot, data_dir):
    window = MainWindow(Settings.load(), rig="genicam", live_interval_ms=0)
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: bool(window.errors.shown), timeout=WAIT_MS)
        title, message = window.errors.shown[0]
        assert title == "Cannot open the rig"
        assert "GenICam rig" in message
        qtbot.waitUntil(
            lambda: window.chips["top"].item.level == "error", timeout=WAIT_MS
        )
        assert "cameras are powered" in window.chips["top"].item.advice
        assert not window.inspect.views["top"].has_image()
        assert "not connected" in window.inspect.views["top"].placeholder
        assert "Top camera" in window.inspect.banner.text()
        fill(window, "MZ-2026-0142")
        assert not window.inspect.capture_button.isEnabled()
    finally:
        window.shutdown()


def test_an_uncaught_error_on_any_thread_reaches_the_dialog(qtbot, data_dir):
    window = MainWindow(
        Settings.load(), rig_opener=small_rig_opener(seed=91), live_interval_ms=0
    )
    qtbot.addWidget(window)
    window.errors.install()
    try:

        def broken() -> None:
            raise ValueError("the plate sensor reported -1 mm")

        thread = threading.Thread(target=broken, name="plate-sensor")
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: bool(window.errors.shown), timeout=WAIT_MS)
    finally:
        window.shutdown()  # gives the hooks back

    title, message = window.errors.shown[0]
    assert title == "Unexpected error"
    assert "plate-sensor" in message and "-1 mm" in message
    assert threading.excepthook is not window.errors._thread_excepthook


def test_a_rig_without_a_simulated_plate_asks_the_operator_first(
    qtbot, open_window, data_dir
):
    from PyQt6.QtWidgets import QMessageBox

    settings = Settings.load()
    handle = open_small_rig(seed=95)
    with Database.open(settings.database_url) as db:
        calibrate_rig(handle, db, ImageStore(settings.images_dir), settings)
    handle.close()

    def opener() -> RigHandle:
        ready = open_small_rig(seed=96)
        return RigHandle("simulated", ready.rig, None)  # no bench: ask the operator

    window = open_window(opener)
    screen = window.inspect
    fill(window, "MZ-2026-0142")
    wait_ready(qtbot, window)
    qtbot.mouseClick(screen.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: (
            getattr(window, "prompt", None) is not None and window.prompt.isVisible()
        ),
        timeout=WAIT_MS,
    )
    assert "Spread the sample on the plate" in window.prompt.text()
    assert screen.result is None  # nothing is captured before the operator confirms

    window.prompt.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: screen.result is not None, timeout=WAIT_MS)
    assert screen.result.n_seeds > 0
    assert window.errors.shown == []


def test_once_accounts_exist_the_app_captures_only_with_the_operators_pin(
    qtbot, open_window, data_dir
):
    settings = Settings.load()
    with Database.open(settings.database_url) as db:
        records = Records(db, ImageStore(settings.images_dir), settings)
        records.add_user(records.open_bench("setup"), "Eve", Role.ENGINEER, "1357")
        engineer = records.sign_in("Eve", "1357")
        records.add_user(engineer, "Ana", Role.OPERATOR, "2468")
        handle = open_small_rig(seed=61)
        try:
            records.calibrate(engineer, handle)
        finally:
            handle.close()

    window = open_window(small_rig_opener(seed=61))
    screen = window.inspect
    fill(window, "MZ-2026-0142", operator="Ana")
    screen.pin_field.setText("0000")
    wait_ready(qtbot, window)
    qtbot.mouseClick(screen.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.errors.shown), timeout=WAIT_MS)
    assert "do not match an account" in window.errors.shown[0][1]
    qtbot.waitUntil(screen.capture_button.isEnabled, timeout=WAIT_MS)
    assert screen.result is None

    screen.pin_field.setText("2468")
    capture(qtbot, window)
    qtbot.mouseClick(screen.accept_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(samples_in(data_dir)) == 1, timeout=WAIT_MS)

    (sample,) = samples_in(data_dir)
    assert sample.operator == "ana"  # the account's name, as the records keep it
    with Database.open(settings.database_url) as db:
        trail = [(e.actor.lower(), e.action, e.outcome) for e in list_entries(db)]
    assert ("ana", "login", "refused") in trail
    assert ("ana", "capture", "ok") in trail
