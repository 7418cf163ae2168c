"""The History screen: stored samples filtered, one sample's detail, exports."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QDate, Qt, pyqtSignal
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from appliance.store import SampleListing
from ui.model import HistoryFilter
from ui.widgets import ImageView, panel

COLUMNS = ("ID", "Captured (UTC)", "Lot", "Sample", "Recipe", "Operator", "Seeds")


class HistoryScreen(QWidget):
    """Browse and export stored samples; it shows and forwards, nothing more.

    Signals
    -------
    query_requested(HistoryFilter)
        The filter changed or Refresh was pressed.
    detail_requested(int)
        One sample was selected.
    export_requested(list of int, str, Path)
        Export the selected samples in a format into a folder.
    """

    query_requested = pyqtSignal(object)
    detail_requested = pyqtSignal(int)
    export_requested = pyqtSignal(object, str, object)

    def __init__(self, recipe_names: list[str], export_dir: Path) -> None:
        super().__init__()
        self.setObjectName("screen")
        self.rows: list[SampleListing] = []
        self.last_exported: list[Path] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(12)
        layout.addWidget(self._filter_panel(recipe_names))

        middle = QHBoxLayout()
        middle.setSpacing(14)
        table_frame, table_layout = panel("Samples")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        table_layout.addWidget(self.table)
        table_layout.addLayout(self._export_row(export_dir))
        middle.addWidget(table_frame, stretch=3)
        middle.addWidget(self._detail_panel(), stretch=2)
        layout.addLayout(middle, stretch=1)

    def _filter_panel(self, recipe_names: list[str]) -> QWidget:
        frame, layout = panel("Filter")
        row = QHBoxLayout()
        row.setSpacing(10)
        self.lot = QLineEdit()
        self.lot.setPlaceholderText("any lot")
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("any operator")
        self.recipe = QComboBox()
        self.recipe.addItem("any recipe", None)
        for name in recipe_names:
            self.recipe.addItem(name, name)
        self.use_dates = QCheckBox("Dates")
        today = QDate.currentDate()
        self.since = QDateEdit(today.addDays(-30))
        self.until = QDateEdit(today)
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
        self.use_dates.toggled.connect(self.since.setEnabled)
        self.use_dates.toggled.connect(self.until.setEnabled)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        for edit in (self.lot, self.operator):
            edit.returnPressed.connect(self.refresh)
        self.recipe.currentIndexChanged.connect(lambda _: self.refresh())
        self.use_dates.toggled.connect(lambda _: self.refresh())
        for label, widget in (
            ("Lot", self.lot),
            ("Operator", self.operator),
            ("Recipe", self.recipe),
        ):
            row.addWidget(QLabel(label))
            row.addWidget(widget, stretch=1)
        row.addWidget(self.use_dates)
        row.addWidget(self.since)
        row.addWidget(QLabel("to"))
        row.addWidget(self.until)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        return frame

    def _export_row(self, export_dir: Path) -> QHBoxLayout:
        row = QHBoxLayout()
        self.export_format = QComboBox()
        for fmt, label in (
            ("pdf", "PDF report"),
            ("csv", "CSV seeds"),
            ("json", "JSON"),
        ):
            self.export_format.addItem(label, fmt)
        self.export_dir = QLineEdit(str(export_dir))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.export_button = QPushButton("Export selected")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.request_export)
        row.addWidget(self.export_format)
        row.addWidget(self.export_dir, stretch=1)
        row.addWidget(browse)
        row.addWidget(self.export_button)
        self.export_note = QLabel("")
        self.export_note.setObjectName("figureNote")
        outer = QVBoxLayout()
        outer.addLayout(row)
        outer.addWidget(self.export_note)
        wrapper = QHBoxLayout()
        wrapper.addLayout(outer)
        return wrapper

    def _detail_panel(self) -> QWidget:
        frame, layout = panel("Detail")
        self.detail_title = QLabel("Select a sample")
        self.detail_title.setStyleSheet("font-size: 20px; font-weight: 700;")
        self.detail_text = QLabel("")
        self.detail_text.setWordWrap(True)
        self.detail_text.setTextFormat(Qt.TextFormat.RichText)
        self.detail_text.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.detail_image = ImageView("Top view", "No sample selected")
        layout.addWidget(self.detail_title)
        layout.addWidget(self.detail_text)
        layout.addWidget(self.detail_image, stretch=1)
        return frame

    # Forwarding.

    def current_filter(self) -> HistoryFilter:
        """Return the filter the fields describe."""
        since = until = None
        if self.use_dates.isChecked():
            since = _utc_midnight(self.since.date())
            until = _utc_midnight(self.until.date()) + timedelta(days=1)
        return HistoryFilter(
            lot=self.lot.text().strip() or None,
            operator=self.operator.text().strip() or None,
            recipe=self.recipe.currentData(),
            since=since,
            until=until,
        )

    def refresh(self) -> None:
        """Ask for the samples that pass the filter."""
        self.query_requested.emit(self.current_filter())

    def selected_ids(self) -> list[int]:
        """Return the ids of the selected rows, in table order."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [self.rows[r].id for r in rows if r < len(self.rows)]

    def request_export(self) -> None:
        """Export the selected samples in the chosen format and folder."""
        ids = self.selected_ids()
        folder = self.export_dir.text().strip()
        if not ids or not folder:
            self.export_note.setText("Select samples and a folder first.")
            return
        self.export_note.setText(f"Exporting {len(ids)} sample(s)...")
        self.export_button.setEnabled(False)
        self.export_requested.emit(ids, self.export_format.currentData(), Path(folder))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Export into", self.export_dir.text()
        )
        if folder:
            self.export_dir.setText(folder)

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        self.export_button.setEnabled(bool(ids))
        if len(ids) == 1:
            self.detail_requested.emit(ids[0])

    # Display.

    def show_rows(self, rows: list[SampleListing]) -> None:
        """Fill the table, newest first."""
        self.rows = list(rows)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (
                str(row.id),
                row.captured_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                row.lot,
                row.code,
                row.recipe,
                row.operator,
                str(row.seed_count),
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c in (0, 6):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        self.export_button.setEnabled(bool(self.selected_ids()))
        if not rows:
            self.detail_title.setText("No samples match the filter")

    def show_detail(self, report: dict[str, Any], views: dict[str, QImage]) -> None:
        """Show one stored sample's summary and its top view."""
        sample, summary = report["sample"], report["summary"]
        self.detail_title.setText(f"Sample {sample['code']}  ·  lot {sample['lot']}")
        lines = [
            f"{sample['recipe']} · {sample['operator']} · "
            f"{str(sample['captured_at'])[:16].replace('T', ' ')}",
        ]
        by_count = summary.get("purity_by_count")
        if by_count:
            lo, hi = by_count["ci95_pct"]
            lines.append(
                f"<span style='font-size:26px; font-weight:700'>"
                f"{by_count['value_pct']:.1f}% pure</span> "
                f"&nbsp;(95% interval {lo:.1f}-{hi:.1f}%)"
            )
        counts = summary.get("counts", {})
        if counts:
            lines.append(
                " · ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
            )
        flags = summary.get("flag_counts", {})
        if flags:
            lines.append(
                "<span style='color:#713f12'>flags: "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in flags.items())
                + "</span>"
            )
        model = sample.get("model") or {}
        lines.append(
            f"<span style='color:#5b6678'>model {model.get('name', '-')} "
            f"v{model.get('version', '-')} · calibration "
            f"v{sample['calibration']['version']} · rig {sample['rig']}</span>"
        )
        self.detail_text.setText("<br>".join(lines))
        self.detail_image.set_image(views.get("top"), "Top view")

    def show_exported(self, paths: list[Path]) -> None:
        """Say where the exports went."""
        self.last_exported = list(paths)
        self.export_button.setEnabled(bool(self.selected_ids()))
        if paths:
            self.export_note.setText(
                f"Exported {len(paths)} file(s) to {paths[0].parent}"
            )

    def export_failed(self) -> None:
        """Re-enable the export after a failure (the dialog says why)."""
        self.export_button.setEnabled(bool(self.selected_ids()))
        self.export_note.setText("Export failed.")


def _utc_midnight(date: QDate) -> datetime:
    return datetime.combine(
        datetime(date.year(), date.month(), date.day()).date(), time(0), UTC
    )
