"""Make docs/screenshots/*.png from the real app, offscreen, on the simulated rig.

Usage::

    SEEDQA_DATA_DIR=/tmp/shots-data python docs/make_screenshots.py [--out DIR]

The data directory needs the maize model bundle (``seedqa-models recipe build
maize``); samples captured here are stored in it. The script captures a sample,
clicks a seed, takes the Inspect screen, accepts, captures and accepts two more,
then takes the History screen with the first sample selected.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import QCoreApplication  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from appliance.settings import Settings  # noqa: E402
from ui.app import MainWindow  # noqa: E402
from ui.style import app_font  # noqa: E402

log = logging.getLogger("make_screenshots")


def wait_for(test: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until `test()` is true."""
    deadline = time.monotonic() + timeout_s
    while not test():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        QCoreApplication.processEvents()
        time.sleep(0.02)


def settle(seconds: float = 0.3) -> None:
    """Let pending events and repaints run."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def capture(window: MainWindow, lot: str, code: str, operator: str) -> None:
    """Type a sample's fields, press Capture and wait for the result."""
    screen = window.inspect
    screen.fields["lot"].setText(lot)
    screen.fields["code"].setText(code)
    screen.fields["operator"].setText(operator)
    wait_for(screen.capture_button.isEnabled, 120, "the bench to be ready")
    screen.capture_button.click()
    wait_for(lambda: screen.result is not None, 300, f"the result of {code}")


def accept(window: MainWindow) -> None:
    """Accept the pending result and wait until it is saved."""
    before = window.inspect.hint.text()
    window.inspect.accept_button.click()
    wait_for(lambda: window.inspect.hint.text() != before, 60, "the save")


def main() -> int:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "screenshots"
    )
    parser.add_argument("--seed", type=int, default=11, help="first sample seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)

    app = QApplication([sys.argv[0]])
    app.setFont(app_font())
    window = MainWindow(Settings.load(), seed=args.seed, live_interval_ms=400)
    window.resize(1600, 980)
    window.show()
    screen = window.inspect
    wait_for(lambda: all(v.has_image() for v in screen.views.values()), 120, "live")
    settle()
    window.grab().save(str(args.out / "inspect-live.png"))

    capture(window, "MZ-2026-0142", "S-0001", "Ana Silva")
    result = screen.result
    assert result is not None
    flagged = [c for c in result.seeds.values() if c.fused_class != "pure"]
    card = (flagged or list(result.seeds.values()))[0]
    screen.show_seed(card)
    settle()
    window.grab().save(str(args.out / "inspect-result.png"))

    accept(window)
    for code in ("S-0002", "S-0003"):
        capture(window, "MZ-2026-0142", code, "Ana Silva")
        accept(window)
    window.tabs.setCurrentWidget(window.history)
    wait_for(lambda: len(window.history.rows) >= 3, 60, "the history")
    window.history.table.selectRow(len(window.history.rows) - 1)
    wait_for(lambda: window.history.detail_image.has_image(), 60, "the detail")
    settle()
    window.grab().save(str(args.out / "history.png"))
    window.close()
    log.info("screenshots written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
