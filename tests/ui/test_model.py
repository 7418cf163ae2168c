"""What the screens show, worded and built without Qt."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from appliance.fusion import LOW_CONFIDENCE
from appliance.matching import BOTTOM_ONLY, TOP_ONLY
from appliance.segmentation import BORDER, CLUMP
from ui.model import StepLog, age_text, calibration_status, warning_texts

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_ages_are_said_in_the_largest_whole_unit():
    assert age_text(NOW - timedelta(seconds=20), now=NOW) == "just now"
    assert age_text(NOW - timedelta(minutes=7), now=NOW) == "7 min ago"
    assert age_text(NOW - timedelta(hours=5), now=NOW) == "5 h ago"
    assert age_text(NOW - timedelta(days=1), now=NOW) == "24 h ago"
    assert age_text(NOW - timedelta(days=3), now=NOW) == "3 days ago"


def test_an_old_calibration_is_a_warning_with_what_to_do():
    fresh = calibration_status(4, NOW - timedelta(days=2), now=NOW)
    old = calibration_status(4, NOW - timedelta(days=45), now=NOW)

    assert (fresh.level, fresh.text) == ("ok", "v4, 2 days ago")
    assert old.level == "warning"
    assert "recalibrate" in old.advice


def test_flags_are_worded_for_the_operator():
    texts = warning_texts(
        {TOP_ONLY: 2, BOTTOM_ONLY: 1, CLUMP: 1, BORDER: 4, LOW_CONFIDENCE: 3}
    )

    assert texts[0].startswith("3 seed(s) seen from one side only")
    assert any(t.startswith("1 clump(s)") and "recapture" in t for t in texts)
    assert any(t.startswith("4 seed(s) on the edge") for t in texts)
    assert any(t.startswith("3 low-confidence") for t in texts)
    assert warning_texts({}) == ()


def test_the_step_log_records_the_thread_of_each_step():
    log = StepLog()
    log.record("on the main thread")
    worker = threading.Thread(target=log.record, args=("elsewhere",), name="w")
    worker.start()
    worker.join()

    by_name = {step.name: step for step in log.steps}
    assert by_name["on the main thread"].thread_id == threading.main_thread().ident
    assert by_name["elsewhere"].thread_name == "w"
    assert by_name["elsewhere"].thread_id != threading.main_thread().ident


def test_the_history_filter_covers_whole_days_in_utc(qtbot, tmp_path):
    from PyQt6.QtCore import QDate

    from ui.history_screen import HistoryScreen

    screen = HistoryScreen(["maize", "wheat"], tmp_path)
    qtbot.addWidget(screen)
    screen.lot.setText(" MZ-1 ")
    screen.recipe.setCurrentIndex(screen.recipe.findData("wheat"))
    assert screen.current_filter().since is None

    screen.use_dates.setChecked(True)
    screen.since.setDate(QDate(2026, 11, 30))
    screen.until.setDate(QDate(2026, 12, 2))
    where = screen.current_filter()

    assert (where.lot, where.operator, where.recipe) == ("MZ-1", None, "wheat")
    assert where.since == datetime(2026, 11, 30, tzinfo=UTC)
    assert where.until == datetime(2026, 12, 3, tzinfo=UTC)
