"""The bench app's capture time and how responsive its window stays meanwhile.

Opens the real window offscreen on the full-size simulated rig (2448x2048, 200
kernels) and captures N samples through the Capture button. Prints, per sample:
seconds from the click to the result on screen; the same sample measured headless
by `appliance.samples.inspect_sample` in the same process (the baseline) and the
ratio; and the longest and the 99th-percentile gap between ticks of a 10 ms timer
on the GUI thread during the capture (how long the window could not repaint).

    SEEDQA_DATA_DIR=DIR .venv/bin/python bench/ui_capture.py [--samples N]

DIR must hold the maize model (``seedqa-models recipe build maize``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PyQt6.QtCore import QCoreApplication, QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from appliance import recipes  # noqa: E402
from appliance.calibrations import current_calibration  # noqa: E402
from appliance.classifier import classifier_for  # noqa: E402
from appliance.rigs import open_rig  # noqa: E402
from appliance.samples import SampleInfo, inspect_sample  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.store import Database, ImageStore  # noqa: E402
from ui.app import MainWindow  # noqa: E402


def pump_until(test, timeout_s: float) -> None:
    """Run the GUI event loop until `test()` is true."""
    deadline = time.monotonic() + timeout_s
    while not test():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s} s")
        QCoreApplication.processEvents()
        time.sleep(0.002)


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description="bench app capture timing")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=500, help="first sample seed")
    args = parser.parse_args()
    source = Settings.load()
    if not (source.models_dir / "maize-sim.safetensors").is_file():
        print(f"no maize model in {source.models_dir}; build it first")
        return 2

    # A scratch copy of the data dir, so the benchmark stores nothing of its own.
    scratch = Path(tempfile.mkdtemp(prefix="seedqa-bench-"))
    (scratch / "models").mkdir()
    (scratch / "models" / "maize-sim.safetensors").symlink_to(
        source.models_dir / "maize-sim.safetensors"
    )
    os.environ["SEEDQA_DATA_DIR"] = str(scratch)
    settings = Settings.load()

    app = QApplication([sys.argv[0]])
    window = MainWindow(settings, seed=args.seed, live_interval_ms=500)
    window.show()
    screen = window.inspect
    screen.fields["lot"].setText("BENCH-1")
    screen.fields["operator"].setText("Bench")

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    app_s = []
    gaps_ms: list[float] = []
    for i in range(args.samples):
        screen.fields["code"].setText(f"S-{i + 1:04d}")
        pump_until(screen.capture_button.isEnabled, 300)
        ticks.clear()
        start = time.perf_counter()
        screen.capture_button.click()
        pump_until(lambda: screen.result is not None, 600)
        app_s.append(time.perf_counter() - start)
        gaps_ms += list(np.diff(ticks) * 1000)
        screen.accept_button.click()
        pump_until(lambda: screen.result is None, 60)
    timer.stop()
    window.shutdown()
    app.quit()

    # The baseline: the same samples (same seeds) measured headless.
    recipe = recipes.get("maize")
    classifier = classifier_for(recipe, settings.models_dir)
    with Database.open(settings.database_url) as db:
        calibration = current_calibration(
            db, ImageStore(settings.images_dir), "simulated"
        )
    # The app laid one sample on the plate before its first capture.
    handle = open_rig("simulated", seed=args.seed + 1)
    headless_s = []
    for i in range(args.samples):
        info = SampleInfo.create(
            lot="BENCH-1", code=f"S-{i + 1:04d}", recipe="maize", operator="Bench"
        )
        start = time.perf_counter()
        inspect_sample(handle, calibration, info, classifier=classifier, recipe=recipe)
        headless_s.append(time.perf_counter() - start)
    handle.close()

    print(f"samples                          {args.samples} (2448x2048, 200 kernels)")
    print(f"app: click to result, median     {np.median(app_s):.2f} s")
    print(f"headless inspect_sample, median  {np.median(headless_s):.2f} s")
    ratio = np.median(app_s) / np.median(headless_s)
    print(f"ratio app / headless             {ratio:.2f}")
    print(f"GUI thread gap, longest          {max(gaps_ms):.0f} ms")
    print(f"GUI thread gap, 99th percentile  {np.percentile(gaps_ms, 99):.0f} ms")
    print(f"GUI thread gap, median           {np.median(gaps_ms):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
