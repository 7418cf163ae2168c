"""The history worker: lists, shows and exports stored samples off the GUI thread."""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import pyqtSignal, pyqtSlot

from appliance.exports import ExportFormat, export_sample, stored_report
from appliance.overlay import boxed_view
from appliance.settings import Settings
from appliance.store import Database, ImageStore, get_sample, list_samples
from ui.model import Heartbeats, HistoryFilter, StepLog
from ui.workers import HEARTBEAT_MS, Worker, to_qimage

log = logging.getLogger(__name__)


class HistoryWorker(Worker):
    """Lists, shows and exports stored samples, on a thread of its own."""

    listed = pyqtSignal(object)  # list[SampleListing]
    detail = pyqtSignal(object, object)  # report dict, dict[View, QImage]
    exported = pyqtSignal(object)  # list[Path]

    def __init__(
        self,
        settings: Settings,
        *,
        steps: StepLog,
        heartbeats: Heartbeats | None = None,
    ) -> None:
        super().__init__("ui.history", steps=steps, heartbeats=heartbeats)
        self.settings = settings
        self._db: Database | None = None
        self._images = ImageStore(settings.images_dir)

    def _database(self) -> Database:
        if self._db is None:
            self.step("database.open")
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = Database.open(self.settings.database_url)
        return self._db

    @pyqtSlot()
    def start(self) -> None:
        """Start beating."""
        self.every(HEARTBEAT_MS, self.beat)

    @pyqtSlot(object)
    def query(self, where: HistoryFilter) -> None:
        """List the stored samples that pass the filter."""
        with self.guard("Cannot list the samples"):
            db = self._database()
            self.step("database.list")
            rows = list_samples(
                db,
                lot=where.lot,
                operator=where.operator,
                recipe=where.recipe,
                since=where.since,
                until=where.until,
            )
            self.listed.emit(rows)

    @pyqtSlot(int)
    def show(self, sample_id: int) -> None:
        """Load one sample's report and both views, boxed by class."""
        with self.guard(f"Cannot show sample {sample_id}"):
            db = self._database()
            self.step("database.detail")
            report = stored_report(db, sample_id)
            record = get_sample(db, sample_id)
            classes = tuple((report["sample"].get("model") or {}).get("classes", ()))
            views = {}
            for capture in record.captures:
                rgb = self._images.read_image(capture.image_sha256)
                views[capture.view] = to_qimage(
                    boxed_view(rgb, report["seeds"], capture.view, classes)
                )
            self.detail.emit(report, views)

    @pyqtSlot(object, str, object)
    def export(self, sample_ids: list[int], fmt: ExportFormat, folder: Path) -> None:
        """Export each sample to ``<folder>/sample-<id>-<lot>-<code>.<fmt>``."""
        with self.guard("Export failed"):
            db = self._database()
            written = []
            for sample_id in sample_ids:
                self.step("database.export")
                record = get_sample(db, sample_id)
                name = f"sample-{sample_id}-{record.lot}-{record.code}.{fmt}"
                safe = name.replace("/", "_")
                written.append(
                    export_sample(
                        db, self._images, sample_id, fmt=fmt, out=folder / safe
                    )
                )
            self.exported.emit(written)

    @pyqtSlot()
    def stop(self) -> None:
        """Close the database; the thread may end after this."""
        self.stop_timers()
        if self._db is not None:
            self._db.close()
            self._db = None
        self.stopped.emit()
