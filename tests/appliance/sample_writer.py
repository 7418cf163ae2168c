"""Save samples in a loop until killed; the victim process of the crash-safety test.

Run as ``python tests/appliance/sample_writer.py DB_URL IMAGE_DIR REPORT_FILE
START_INDEX``. Sample ``START_INDEX``, then the next index and so on, is saved with
`save_sample`; after each save returns, the line ``index,id,top_sha,bottom_sha`` is
appended to REPORT_FILE and fsynced, so a line in the report is a sample the process
had reported saved. Every sample is a pure function of its index (`planned_sample`),
so the test can regenerate what each stored row and image must hold.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from appliance.store import (
    CaptureInput,
    Database,
    ImageStore,
    encode_png,
    save_sample,
)

#: Capture images are (IMAGE_HEIGHT, IMAGE_WIDTH, 3) uint8 RGB.
IMAGE_HEIGHT, IMAGE_WIDTH = 48, 64
SEED_COUNT_RANGE = (20, 50)
FUSED_CLASSES = ("pure", "broken", "weed", "inert")
RIG_NAME = "crash-rig"
LOT = "CRASH-LOT"
BASE_TIME = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class PlannedSample:
    """Everything `save_sample` is given for sample `index`."""

    index: int
    code: str
    captured_at: datetime
    top_image: NDArray[np.uint8]
    bottom_image: NDArray[np.uint8]
    seeds: list[dict[str, Any]]
    summary: dict[str, Any]

    def captures(self) -> list[CaptureInput]:
        return [
            CaptureInput("top", "TOP-001", self.top_image, self.captured_at, 1200.0),
            CaptureInput(
                "bottom",
                "BOT-002",
                self.bottom_image,
                self.captured_at + timedelta(milliseconds=5),
                900.5,
            ),
        ]

    def image_shas(self) -> tuple[str, str]:
        """Return the SHA-256 of the (top, bottom) PNG files the store must hold."""
        return (
            hashlib.sha256(encode_png(self.top_image)).hexdigest(),
            hashlib.sha256(encode_png(self.bottom_image)).hexdigest(),
        )


def planned_sample(index: int) -> PlannedSample:
    """Return sample `index`, its images and seeds drawn from an RNG seeded by it."""
    rng = np.random.default_rng(index)
    shape = (IMAGE_HEIGHT, IMAGE_WIDTH, 3)
    top_image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    bottom_image = rng.integers(0, 256, size=shape, dtype=np.uint8)

    low, high = SEED_COUNT_RANGE
    n_seeds = int(rng.integers(low, high + 1))
    seeds = []
    for order, seed_index in enumerate(rng.permutation(n_seeds)):
        x, y = (int(v) for v in rng.integers(0, 40, size=2))
        seeds.append(
            {
                "index": int(seed_index),
                "top_label": order + 1,
                "bottom_label": None if order % 7 == 3 else order + 2,
                "top_bbox": [x, y, 8, 6],
                "bottom_bbox": [x + 1, y, 8, 6],
                "area_mm2": float(rng.uniform(20.0, 60.0)),
                "fused_class": FUSED_CLASSES[order % len(FUSED_CLASSES)],
                "flags": ["touching"] if order % 5 == 0 else [],
                "data": {"p_top": [float(p) for p in rng.dirichlet([1.0] * 4)]},
            }
        )

    return PlannedSample(
        index=index,
        code=f"S{index:07d}",
        captured_at=BASE_TIME + timedelta(seconds=index),
        top_image=top_image,
        bottom_image=bottom_image,
        seeds=seeds,
        summary={"index": index, "n_seeds": n_seeds},
    )


def save_planned(db: Database, image_store: ImageStore, planned: PlannedSample) -> int:
    """Save `planned` with `save_sample` and return the new sample's id."""
    return save_sample(
        db,
        image_store,
        rig_name=RIG_NAME,
        rig_kind="simulated",
        top_serial="TOP-001",
        bottom_serial="BOT-002",
        calibration_id=None,
        lot=LOT,
        code=planned.code,
        recipe="maize-purity",
        operator="crash-test",
        captured_at=planned.captured_at,
        captures=planned.captures(),
        seeds=planned.seeds,
        summary=planned.summary,
    )


def _append_durably(fd: int, line: str) -> None:
    os.write(fd, line.encode("ascii"))
    os.fsync(fd)


def main(argv: list[str]) -> None:
    db_url, image_dir, report_file, start_index = argv
    db = Database.open(db_url)
    image_store = ImageStore(Path(image_dir))
    report = os.open(report_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    index = int(start_index)
    while True:
        planned = planned_sample(index)
        sample_id = save_planned(db, image_store, planned)
        top_sha, bottom_sha = planned.image_shas()
        _append_durably(report, f"{index},{sample_id},{top_sha},{bottom_sha}\n")
        index += 1


if __name__ == "__main__":
    main(sys.argv[1:])
