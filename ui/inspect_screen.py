"""The Inspect screen: live views, the sample form, Capture, and the verdict."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QImage, QPixmap
from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from appliance.identifiers import InvalidSampleCode, normalise_code, normalise_operator
from appliance.samples import SampleInfo
from drivers.base import VIEWS, View
from ui.model import InspectionView, SeedCard
from ui.style import hex_colour
from ui.widgets import ImageView, ProbabilityBars, panel
from ui.workers import to_qimage


class InspectScreen(QWidget):
    """What the operator uses at the bench; it shows and forwards, nothing more.

    Signals
    -------
    capture_requested(SampleInfo)
        The operator asked for a capture with valid fields.
    cancel_requested, accept_requested, recapture_requested
        The progress's Cancel, Accept, and Discard & recapture.
    recipe_changed(str)
        Another recipe was chosen.
    """

    capture_requested = pyqtSignal(object)
    cancel_requested = pyqtSignal()
    accept_requested = pyqtSignal()
    recapture_requested = pyqtSignal(object)
    recipe_changed = pyqtSignal(str)

    def __init__(self, recipe_names: list[str]) -> None:
        super().__init__()
        self.setObjectName("screen")
        self.result: InspectionView | None = None
        self.selected: SeedCard | None = None
        self._busy = False
        self._problem = ""
        self._waiting = ""
        self._note = ""

        self.views: dict[View, ImageView] = {
            view: ImageView(f"{view.capitalize()} camera", "Waiting for the camera")
            for view in VIEWS
        }
        for view, pane in self.views.items():
            pane.clicked.connect(lambda fx, fy, v=view: self._seed_clicked(v, fx, fy))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(14)
        left = QVBoxLayout()
        left.setSpacing(12)
        images, images_layout = panel()
        row = QHBoxLayout()
        row.setSpacing(12)
        for pane in self.views.values():
            row.addWidget(pane)
        images_layout.addLayout(row)
        left.addWidget(images, stretch=3)
        left.addWidget(self._seed_panel(), stretch=0)
        layout.addLayout(left, stretch=3)

        right = QVBoxLayout()
        right.setSpacing(12)
        right.addWidget(self._form_panel(recipe_names))
        right.addWidget(self._result_panel(), stretch=1)
        side = QWidget()
        side.setLayout(right)
        side.setFixedWidth(430)
        layout.addWidget(side)
        self._validate()

    # Building.

    def _form_panel(self, recipe_names: list[str]) -> QWidget:
        frame, layout = panel("Sample")
        form = QFormLayout()
        form.setVerticalSpacing(4)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.recipe = QComboBox()
        self.recipe.addItems(recipe_names)
        self.recipe.currentTextChanged.connect(self.recipe_changed)
        self.recipe.currentTextChanged.connect(lambda _: self._validate())
        form.addRow("Recipe", self.recipe)
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        for key, label, hint in (
            ("lot", "Lot", "e.g. MZ-2026-0142"),
            ("code", "Sample", "e.g. S-0001"),
            ("operator", "Operator", "your name"),
        ):
            edit = QLineEdit()
            edit.setPlaceholderText(hint)
            edit.textChanged.connect(lambda _: self._validate())
            error = QLabel("")
            error.setObjectName("fieldError")
            error.setWordWrap(True)
            error.hide()
            box = QVBoxLayout()
            box.setSpacing(2)
            box.addWidget(edit)
            box.addWidget(error)
            form.addRow(label, box)
            self.fields[key], self.errors[key] = edit, error
        # Checked by the records service, not here: needed once accounts exist.
        self.pin_field = QLineEdit()
        self.pin_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_field.setPlaceholderText("if accounts exist")
        form.addRow("PIN", self.pin_field)
        layout.addLayout(form)

        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        layout.addWidget(self.banner)

        self.capture_button = QPushButton("Capture sample  [Space]")
        self.capture_button.setObjectName("capture")
        self.capture_button.clicked.connect(self.request_capture)
        layout.addWidget(self.capture_button)
        self.hint = QLabel("")
        self.hint.setObjectName("figureNote")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.step_label = QLabel("")
        self.step_label.setObjectName("figureNote")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, stretch=1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.step_label)
        self._show_progress(False)
        return frame

    def _result_panel(self) -> QWidget:
        frame, layout = panel("Result")
        self.purity = QLabel("No sample yet")
        self.purity.setObjectName("bigFigure")
        self.purity.setProperty("empty", True)
        self.purity_note = QLabel("Capture a sample to see its purity")
        self.purity_note.setObjectName("figureNote")
        self.purity_note.setWordWrap(True)
        layout.addWidget(self.purity)
        layout.addWidget(self.purity_note)
        self.counts = QGridLayout()
        self.counts.setHorizontalSpacing(10)
        self.counts.setVerticalSpacing(4)
        layout.addLayout(self.counts)
        self.warnings = QLabel("")
        self.warnings.setObjectName("warnings")
        self.warnings.setWordWrap(True)
        self.warnings.hide()
        layout.addWidget(self.warnings)
        layout.addStretch(1)
        buttons = QHBoxLayout()
        self.discard_button = QPushButton("Discard && recapture")
        self.discard_button.setObjectName("discard")
        self.discard_button.clicked.connect(self._recapture)
        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("accept")
        self.accept_button.clicked.connect(self.accept_requested)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.accept_button)
        layout.addLayout(buttons)
        self._set_decision(False)
        return frame

    def _seed_panel(self) -> QWidget:
        frame, layout = panel("Seed")
        self.seed_title = QLabel("Click a seed in either image to see it here")
        self.seed_title.setObjectName("figureNote")
        layout.addWidget(self.seed_title)
        row = QHBoxLayout()
        row.setSpacing(16)
        self.crops: dict[View, QLabel] = {}
        self.bars: dict[View, ProbabilityBars] = {}
        for view in VIEWS:
            crop = QLabel()
            crop.setObjectName("crop")
            crop.setFixedSize(120, 120)
            crop.setAlignment(Qt.AlignmentFlag.AlignCenter)
            bars = ProbabilityBars()
            column = QVBoxLayout()
            caption = QLabel(f"{view.capitalize()} view")
            caption.setObjectName("figureNote")
            column.addWidget(caption)
            column.addWidget(bars)
            column.addStretch(1)
            row.addWidget(crop)
            row.addLayout(column, stretch=1)
            self.crops[view], self.bars[view] = crop, bars
        layout.addLayout(row)
        frame.setMinimumHeight(190)
        return frame

    # Forwarding.

    def sample_info(self) -> SampleInfo | None:
        """Return the typed fields as a `SampleInfo`, or None while one is invalid."""
        try:
            return SampleInfo.create(
                lot=self.fields["lot"].text(),
                code=self.fields["code"].text(),
                recipe=self.recipe.currentText(),
                operator=self.fields["operator"].text(),
            )
        except InvalidSampleCode:
            return None

    def pin(self) -> str:
        """Return the PIN typed for the operator (empty on an open bench)."""
        return self.pin_field.text()

    def request_capture(self) -> None:
        """Ask for a capture if the fields are valid and the bench is ready."""
        info = self.sample_info()
        if info is None or not self.capture_button.isEnabled():
            return
        self._note = ""
        self.set_busy(True)
        self.capture_requested.emit(info)

    def _recapture(self) -> None:
        info = self.sample_info()
        self._set_decision(False)
        if info is None:
            return
        self.set_busy(True)
        self.recapture_requested.emit(info)

    def _seed_clicked(self, view: View, fx: float, fy: float) -> None:
        if self.result is None:
            return
        card = self.result.seed_at(view, fx, fy)
        if card is not None:
            self.show_seed(card)

    # Display.

    def _validate(self) -> None:
        checks = {
            "lot": lambda t: normalise_code(t, what="lot code"),
            "code": lambda t: normalise_code(t, what="sample code"),
            "operator": normalise_operator,
        }
        first_error = ""
        for key, check in checks.items():
            edit, error = self.fields[key], self.errors[key]
            text = edit.text()
            message = ""
            try:
                check(text)
            except InvalidSampleCode as exc:
                message = str(exc)
            shown = bool(message and text.strip())  # no red for an untouched field
            edit.setProperty("invalid", shown)
            edit.style().polish(edit)  # type: ignore[union-attr]
            error.setText(message[:1].upper() + message[1:] if shown else "")
            error.setVisible(shown)
            first_error = first_error or message
        self._invalid = first_error
        self._update_capture()

    def _update_capture(self) -> None:
        reason = ""
        if self._busy:
            reason = "Working on the sample..."
        elif self.result is not None:
            reason = "Accept the result, or discard it and recapture."
        elif self._problem:
            reason = "The bench is not ready: see the message above."
        elif self._waiting:
            reason = self._waiting
        elif self._invalid:
            reason = self._invalid[:1].upper() + self._invalid[1:] + "."
        self.capture_button.setEnabled(not reason)
        self.hint.setText(
            reason or self._note or "Spread the seeds, then press Capture or Space."
        )

    def set_note(self, text: str) -> None:
        """Say what just happened (a save, a cancel) until the next capture."""
        self._note = text
        self._update_capture()

    def set_problem(self, text: str) -> None:
        """Show what stops the bench from capturing ("" when nothing does)."""
        self._problem = text
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self._update_capture()

    def set_waiting(self, text: str) -> None:
        """Hold the Capture button while the bench gets ready ("" when ready)."""
        self._waiting = text
        self._update_capture()

    def set_busy(self, busy: bool) -> None:
        """Show or hide the progress of a capture."""
        self._busy = busy
        if busy:
            self.progress.setValue(0)
            self.step_label.setText("capturing")
        self._show_progress(busy)
        self._update_capture()

    def _show_progress(self, shown: bool) -> None:
        for widget in (self.progress, self.cancel_button, self.step_label):
            widget.setVisible(shown)

    def _set_decision(self, shown: bool) -> None:
        self.accept_button.setEnabled(shown)
        self.discard_button.setEnabled(shown)

    def show_progress(self, step: str, fraction: float) -> None:
        """Show how far the capture is."""
        self.progress.setValue(round(100 * fraction))
        self.step_label.setText(step[:1].upper() + step[1:])

    def show_live(self, images: dict[View, QImage]) -> None:
        """Show live frames, unless a result is waiting for a decision."""
        if self.result is not None:
            return
        for view, image in images.items():
            self.views[view].set_image(image, f"{view.capitalize()} camera  ·  live")

    def show_result(self, result: InspectionView) -> None:
        """Show a measured sample and ask for a decision."""
        self.result = result
        self.set_busy(False)
        for view, pane in self.views.items():
            pane.set_image(
                to_qimage(result.overlays[view]),
                f"{view.capitalize()} view  ·  {result.n_seeds} seeds  ·  click a seed",
            )
        _set_empty(self.purity, False)
        if result.purity_pct is not None and result.purity_ci95 is not None:
            lo, hi = result.purity_ci95
            self.purity.setText(f"{result.purity_pct:.1f}% pure")
            note = f"95% interval {lo:.1f}-{hi:.1f}% by count"
            if result.purity_by_weight_pct is not None:
                note += f"  ·  {result.purity_by_weight_pct:.1f}% by weight"
            self.purity_note.setText(note)
        else:
            self.purity.setText(f"{result.n_seeds} seeds")
            self.purity_note.setText("not classified")
        self._fill_counts(result)
        self.warnings.setText("\n".join(f"⚠  {w}" for w in result.warnings))
        self.warnings.setVisible(bool(result.warnings))
        self._clear_seed()
        self._set_decision(True)
        self._update_capture()
        self.accept_button.setFocus()

    def _fill_counts(self, result: InspectionView) -> None:
        self._clear_counts()
        for row, name in enumerate(result.classes):
            swatch = QLabel()
            swatch.setFixedSize(16, 16)
            swatch.setStyleSheet(
                f"background: {hex_colour(result.colours[name])}; border-radius: 3px;"
            )
            count = QLabel(str(result.counts.get(name, 0)))
            count.setObjectName(f"count_{name}")
            count.setAlignment(Qt.AlignmentFlag.AlignRight)
            share = QLabel(f"{result.shares_pct.get(name, 0.0):.1f}%")
            share.setAlignment(Qt.AlignmentFlag.AlignRight)
            share.setObjectName("figureNote")
            self.counts.addWidget(swatch, row, 0)
            self.counts.addWidget(QLabel(name.replace("_", " ")), row, 1)
            self.counts.addWidget(count, row, 2)
            self.counts.addWidget(share, row, 3)
        self.counts.setColumnStretch(1, 1)

    def shown_counts(self) -> dict[str, int]:
        """Return the counts per class on screen, read back from the labels."""
        out = {}
        for i in range(self.counts.count()):
            item = self.counts.itemAt(i)
            widget = item.widget() if item is not None else None
            if widget is not None and widget.objectName().startswith("count_"):
                out[widget.objectName().removeprefix("count_")] = int(
                    widget.text()  # type: ignore[attr-defined]
                )
        return out

    def show_seed(self, card: SeedCard) -> None:
        """Show one seed's two crops and probabilities, and frame it."""
        assert self.result is not None
        self.selected = card
        verdict = card.fused_class or "not classified"
        p = (
            ""
            if card.fused_probability is None
            else f" ({100 * card.fused_probability:.0f}%)"
        )
        flags = f"  ·  {', '.join(card.flags)}" if card.flags else ""
        self.seed_title.setText(
            f"Seed {card.index}: {verdict.replace('_', ' ')}{p}  ·  "
            f"{card.area_mm2:.1f} mm²{flags}"
        )
        for view in VIEWS:
            crop = card.crops[view]
            label = self.crops[view]
            _set_filled(label, crop is not None)
            if crop is None:
                label.clear()
                label.setText("not seen")
            else:
                label.setPixmap(
                    QPixmap.fromImage(to_qimage(crop)).scaled(
                        120,
                        120,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                )
            self.bars[view].set_probabilities(
                card.probabilities[view], self.result.colours
            )
            self.views[view].set_highlight(card.boxes[view])

    def _clear_seed(self) -> None:
        self.selected = None
        self.seed_title.setText("Click a seed in either image to see it here")
        for view in VIEWS:
            self.crops[view].clear()
            _set_filled(self.crops[view], False)
            self.bars[view].set_probabilities(None, {})

    def clear_result(self) -> None:
        """Go back to the live views after a decision."""
        self.result = None
        self._set_decision(False)
        self.purity.setText("No sample yet")
        _set_empty(self.purity, True)
        self.purity_note.setText("Capture a sample to see its purity")
        self.warnings.hide()
        self._clear_counts()
        self._clear_seed()
        for view, pane in self.views.items():
            pane.set_highlight(None)
            pane.caption = f"{view.capitalize()} camera  ·  live"
        self._update_capture()

    def _clear_counts(self) -> None:
        while self.counts.count():
            item = self.counts.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]

    def capture_done(self) -> None:
        """Hide the progress of a capture that ended without a result."""
        if self.result is None:
            self.set_busy(False)


def _set_filled(label: QLabel, filled: bool) -> None:
    label.setProperty("filled", filled)
    label.style().polish(label)  # type: ignore[union-attr]


def _set_empty(label: QLabel, empty: bool) -> None:
    label.setProperty("empty", empty)
    label.style().polish(label)  # type: ignore[union-attr]
