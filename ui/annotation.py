"""The annotation screen: an expert labels the seeds active learning chose.

A grid of seeds, each shown by its top and bottom crops side by side with the
model's suggested class. Keys ``1``-``9`` (then letters) give the seed under the
cursor a class and move on, arrows move the cursor, a click selects a seed and
the class buttons relabel it. **Submit** stores the batch's labels, who gave them
and the time spent; **Retrain** runs ``seedqa-models classifier train --from-db``
in a separate process and shows its progress; the plot shows each round's
validation accuracy. Every database read and write runs on a worker thread.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PyQt6.QtCore import (
    QObject,
    QPointF,
    QProcess,
    QRunnable,
    Qt,
    QThreadPool,
    pyqtSignal,
)
from PyQt6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from appliance.store import (
    Database,
    ImageStore,
    RoundRecord,
    get_round,
    list_rounds,
    submit_labels,
)
from appliance.store.labelling import OPEN
from ui.annotation_model import CLASS_KEYS, AnnotationBatch

log = logging.getLogger(__name__)

#: Side of each crop on screen, pixels.
TILE_PX = 72
_EPOCH = re.compile(r"epoch (\d+)/(\d+)")


class _JobSignals(QObject):
    done = pyqtSignal(object)
    failed = pyqtSignal(str)


class _Job(QRunnable):
    """Run one function on the thread pool; report its result or error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__()
        self.work = work
        self.signals = _JobSignals()

    def run(self) -> None:
        try:
            result = self.work()
        except Exception as exc:  # a worker-thread boundary: report, do not crash
            log.exception("annotation database work failed")
            self.signals.failed.emit(str(exc))
        else:
            self.signals.done.emit(result)


def _pixmap(crop: NDArray[np.uint8] | None) -> QPixmap:
    if crop is None:
        blank = QPixmap(TILE_PX, TILE_PX)
        blank.fill(QColor("black"))
        return blank
    rgb = np.ascontiguousarray(crop[..., :3])
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(
        TILE_PX, TILE_PX, transformMode=Qt.TransformationMode.SmoothTransformation
    )


class SeedTile(QFrame):
    """One seed: its two crops side by side and its class."""

    clicked = pyqtSignal(int)

    def __init__(
        self,
        position: int,
        top: NDArray[np.uint8],
        bottom: NDArray[np.uint8] | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.position = position
        self.setFrameShape(QFrame.Shape.Box)
        self.setLineWidth(2)
        images = QHBoxLayout()
        for crop in (top, bottom):
            view = QLabel()
            view.setPixmap(_pixmap(crop))
            images.addWidget(view)
        self.text = QLabel()
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(3, 3, 3, 3)
        layout.addLayout(images)
        layout.addWidget(self.text)

    def show_state(self, label: str, suggested: str, *, current: bool) -> None:
        """Show the class (marked when it differs from the suggestion)."""
        changed = label != suggested
        self.text.setText(f"{label} *" if changed else label)
        self.text.setToolTip(f"model suggested {suggested}")
        colour = "#1e88e5" if current else ("#e53935" if changed else "#9e9e9e")
        self.setStyleSheet(f"SeedTile {{ border: 2px solid {colour}; }}")

    def mousePressEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802
        """Select this seed."""
        self.clicked.emit(self.position)


class AccuracyPlot(QWidget):
    """Validation accuracy of the model retrained after each round."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[tuple[int, float]] = []
        self.setMinimumSize(220, 160)

    def set_points(self, points: Sequence[tuple[int, float]]) -> None:
        """Plot (round id, accuracy in [0, 1]) pairs."""
        self.points = list(points)
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        """Draw the axes and the accuracy line."""
        painter = QPainter(self)
        w, h, pad = self.width(), self.height(), 28
        painter.fillRect(self.rect(), QColor("white"))
        painter.setPen(QPen(QColor("#444")))
        painter.drawLine(pad, h - pad, w - 8, h - pad)
        painter.drawLine(pad, 8, pad, h - pad)
        painter.drawText(4, 14, "acc.")
        painter.drawText(w // 2 - 20, h - 6, "round")
        if not self.points:
            painter.drawText(pad + 8, h // 2, "no retrained rounds yet")
            painter.end()
            return
        low = min(0.0, min(a for _, a in self.points))
        span_x = max(1, len(self.points) - 1)

        def at(i: int, acc: float) -> QPointF:
            x = pad + (w - pad - 16) * i / span_x
            y = (h - pad) - (h - pad - 16) * (acc - low) / (1.0 - low)
            return QPointF(x, y)

        painter.setPen(QPen(QColor("#1e88e5"), 2))
        pts = [at(i, a) for i, (_, a) in enumerate(self.points)]
        for a, b in zip(pts, pts[1:], strict=False):
            painter.drawLine(a, b)
        for (rid, acc), p in zip(self.points, pts, strict=True):
            painter.drawEllipse(p, 3, 3)
            painter.drawText(p + QPointF(4, -4), f"{rid}: {100 * acc:.0f}%")
        painter.end()


class AnnotationScreen(QWidget):
    """Label a round of seeds, submit it, retrain, and follow the accuracy.

    Parameters
    ----------
    database_url : str
        The inspection database (with the labelling tables).
    images_dir : Path
        The image store holding the rounds' crops.
    annotator : str
        Who is labelling (editable on screen).
    retrain_args : sequence of str
        Extra arguments of ``seedqa-models classifier train`` (epochs, size,
        ``--val-data DIR`` for a fixed validation set, ...).
    models_dir : Path, optional
        Where retrained bundles are written (default: beside the image store).
    columns : int
        Seeds per row of the grid.
    """

    round_loaded = pyqtSignal(int)
    submitted = pyqtSignal(int, int)
    history_loaded = pyqtSignal(list)
    retrain_finished = pyqtSignal(int)
    failed = pyqtSignal(str)

    def __init__(
        self,
        database_url: str,
        images_dir: Path,
        *,
        annotator: str = "",
        retrain_args: Sequence[str] = (),
        models_dir: Path | None = None,
        columns: int = 5,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.database_url = database_url
        self.images = ImageStore(images_dir)
        self.models_dir = models_dir or Path(images_dir).parent / "models" / "active"
        self.retrain_args = list(retrain_args)
        self.columns = columns
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one database job at a time, in order
        self._jobs: set[_Job] = set()
        self.record: RoundRecord | None = None
        self.batch: AnnotationBatch | None = None
        self.tiles: list[SeedTile] = []
        self.process: QProcess | None = None
        self._db: Database | None = None
        self._build(annotator)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- layout ---------------------------------------------------------------

    def _build(self, annotator: str) -> None:
        self.title = QLabel("no round loaded")
        self.annotator = QLineEdit(annotator)
        self.annotator.setPlaceholderText("your name")
        load = QPushButton("Load newest open round")
        load.clicked.connect(lambda: self.load_round(None))
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("Labelled by:"))
        top.addWidget(self.annotator)
        top.addWidget(load)

        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self.class_bar = QHBoxLayout()
        self.submit_button = QPushButton("Submit batch")
        self.submit_button.clicked.connect(self.submit)
        self.retrain_button = QPushButton("Retrain")
        self.retrain_button.clicked.connect(self.retrain)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        bottom = QHBoxLayout()
        bottom.addWidget(self.submit_button)
        bottom.addWidget(self.retrain_button)
        bottom.addWidget(self.progress, 1)

        self.plot = AccuracyPlot()
        left = QVBoxLayout()
        left.addLayout(top)
        left.addWidget(scroll, 1)
        left.addLayout(self.class_bar)
        left.addLayout(bottom)
        left.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 3)
        layout.addWidget(self.plot, 1)
        for button in (load, self.submit_button, self.retrain_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    # -- database work, off the GUI thread --------------------------------------

    def _run(
        self, work: Callable[[Database], Any], done: Callable[[Any], None]
    ) -> None:
        def job() -> Any:
            # Opened (and migrated) once, on the worker thread; the engine is
            # shared by later jobs, each in its own session.
            if self._db is None:
                self._db = Database.open(self.database_url)
            return work(self._db)

        runnable = _Job(job)
        runnable.setAutoDelete(False)
        self._jobs.add(runnable)

        def finish(result: Any) -> None:
            self._jobs.discard(runnable)
            done(result)

        def fail(message: str) -> None:
            self._jobs.discard(runnable)
            self.status.setText(f"error: {message}")
            self.failed.emit(message)

        runnable.signals.done.connect(finish)
        runnable.signals.failed.connect(fail)
        self.pool.start(runnable)

    def load_round(self, round_id: int | None = None) -> None:
        """Load a round (the newest open one when `round_id` is None)."""
        images = self.images

        def work(db: Database) -> tuple[RoundRecord, list[Any]] | None:
            rid = round_id
            if rid is None:
                open_rounds = [r.id for r in list_rounds(db) if r.status == OPEN]
                if not open_rounds:
                    return None
                rid = open_rounds[-1]
            record = get_round(db, rid)
            crops = [
                (
                    images.read_image(item.top_crop_sha256),
                    images.read_image(item.bottom_crop_sha256)
                    if item.bottom_crop_sha256
                    else None,
                )
                for item in record.items
            ]
            return record, crops

        self.status.setText("loading round ...")
        self._run(work, self._show_round)

    def _show_round(self, loaded: tuple[RoundRecord, list[Any]] | None) -> None:
        if loaded is None:
            self.status.setText("no open labelling round; choose seeds first")
            return
        record, crops = loaded
        self.record = record
        suggested = [item.label or item.suggested_class for item in record.items]
        self.batch = AnnotationBatch(record.classes, suggested, columns=self.columns)
        for tile in self.tiles:
            tile.deleteLater()
        self.tiles = []
        for n, (top, bottom) in enumerate(crops):
            tile = SeedTile(n, top, bottom)
            tile.clicked.connect(self.select)
            self.grid.addWidget(tile, n // self.columns, n % self.columns)
            self.tiles.append(tile)
        self._build_class_bar(record.classes)
        self.title.setText(
            f"Round {record.id} ({record.strategy}, {len(record.items)} seeds, "
            f"model {record.model_name})"
        )
        self.status.setText(
            "keys: "
            + ", ".join(f"{CLASS_KEYS[i]} {c}" for i, c in enumerate(record.classes))
        )
        self._refresh_tiles()
        self.setFocus()
        self.round_loaded.emit(record.id)

    def _build_class_bar(self, classes: Sequence[str]) -> None:
        while self.class_bar.count():
            item = self.class_bar.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        for i, name in enumerate(classes):
            button = QPushButton(f"{CLASS_KEYS[i]}  {name}")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, i=i: self.relabel(i))
            self.class_bar.addWidget(button)

    def submit(self) -> None:
        """Store the batch's labels, who gave them and the time spent."""
        if self.record is None or self.batch is None:
            self.status.setText("load a round first")
            return
        who = self.annotator.text().strip()
        if not who:
            self.status.setText("type your name under 'Labelled by' before submitting")
            return
        rid, labels = self.record.id, self.batch.submission()
        seconds = self.batch.elapsed_s()

        def work(db: Database) -> int:
            return submit_labels(
                db, rid, labels, labelled_by=who, seconds_spent=seconds
            )

        def done(count: int) -> None:
            self.status.setText(
                f"round {rid}: {count} labels stored ({seconds:.0f} s for the batch)"
            )
            self.submitted.emit(rid, count)
            self.refresh_history()

        self._run(work, done)

    def refresh_history(self) -> None:
        """Reload the rounds and plot their validation accuracy."""

        def done(rounds: list[RoundRecord]) -> None:
            points = [
                (r.id, r.validation_accuracy)
                for r in rounds
                if r.validation_accuracy is not None
            ]
            self.plot.set_points(points)
            self.history_loaded.emit(rounds)

        self._run(list_rounds, done)

    # -- retraining in a separate process ---------------------------------------

    def retrain_command(self) -> list[str]:
        """Return the command line the Retrain action runs."""
        rid = self.record.id if self.record else None
        out = self.models_dir / f"round-{rid or 'latest'}.safetensors"
        args = [sys.executable, "-m", "models.cli", "classifier", "train"]
        args += ["--from-db", "--out", str(out), "--name", "active"]
        if rid is not None:
            args += ["--version", str(rid), "--round", str(rid)]
        return args + self.retrain_args

    def retrain(self) -> None:
        """Run the classifier builder on the labels in the database."""
        if self.process is not None:
            self.status.setText("a retraining is already running")
            return
        command = self.retrain_command()
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardError.connect(self._read_progress)
        process.finished.connect(self._retrain_done)
        self.process = process
        self.progress.setRange(0, 0)
        self.status.setText("retraining: " + " ".join(command[1:]))
        log.info("retraining: %s", " ".join(command))
        process.start(command[0], command[1:])

    def _read_progress(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode(
            errors="replace"
        )
        self._last_error = text.strip().splitlines()[-1:] or getattr(
            self, "_last_error", []
        )
        for done, total in _EPOCH.findall(text):
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(done) - 1)

    def _retrain_done(self, code: int, status: QProcess.ExitStatus) -> None:
        self.process = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if code == 0 else 0)
        if code == 0:
            self.status.setText("retrained; accuracy updated")
        else:
            last = " ".join(getattr(self, "_last_error", []))
            self.status.setText(f"retraining failed (exit {code}): {last}")
        self.refresh_history()
        self.retrain_finished.emit(code)

    def shutdown(self) -> None:
        """Finish the database work in flight and stop a retraining."""
        self.pool.waitForDone()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(5000)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        """Stop what runs before the screen goes."""
        self.shutdown()
        super().closeEvent(event)

    # -- keyboard and clicks ----------------------------------------------------

    def select(self, position: int) -> None:
        """Put the cursor on the seed at `position`."""
        if self.batch is not None:
            self.batch.cursor = position
            self._refresh_tiles()
            self.setFocus()

    def relabel(self, class_index: int) -> None:
        """Give the seed under the cursor a class (from a class button)."""
        if self.batch is not None:
            self.batch.set_label(self.batch.cursor, class_index)
            self._refresh_tiles()

    def keyPressEvent(self, event: QKeyEvent | None) -> None:  # noqa: N802
        """Class keys label and move on; arrows move the cursor."""
        if event is None or self.batch is None:
            return
        batch = self.batch
        moves = {
            Qt.Key.Key_Left: lambda: batch.move(-1),
            Qt.Key.Key_Right: lambda: batch.move(1),
            Qt.Key.Key_Up: lambda: batch.move_rows(-1),
            Qt.Key.Key_Down: lambda: batch.move_rows(1),
        }
        key = Qt.Key(event.key())
        if key in moves:
            moves[key]()
        elif not (event.text() and self.batch.press(event.text())):
            super().keyPressEvent(event)
            return
        self._refresh_tiles()

    def _refresh_tiles(self) -> None:
        if self.batch is None:
            return
        for n, tile in enumerate(self.tiles):
            tile.show_state(
                self.batch.labels[n],
                self.batch.suggested[n],
                current=n == self.batch.cursor,
            )
