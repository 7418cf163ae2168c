"""Fixtures shared by the test packages: simulated samples and a calibration.

Rendering a full 2448x2048 sample takes a few seconds, so the samples and the
calibration are made once per test session and shared, read-only.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from calibration import CalibrationRecord, calibrate  # noqa: E402
from drivers.simulated import RenderedScene, simulated_rig  # noqa: E402

#: Seeds of the shared samples; fixed, so every run sees the same plates.
SAMPLE_SEEDS = (101, 102, 103)


@pytest.fixture(scope="session")
def samples() -> list[RenderedScene]:
    """Three simulated 200-kernel samples, 10% of kernels touching."""
    _, bench = simulated_rig()
    return [bench.lay_sample(seed=s) for s in SAMPLE_SEEDS]


@pytest.fixture(scope="session")
def calibration() -> CalibrationRecord:
    """The simulated rig's calibration, computed from its own captures."""
    rig, bench = simulated_rig()
    with rig:
        bench.clear()
        blank = rig.capture()
        bench.lay_target()
        target = rig.capture()
    return calibrate(blank, target, rig=rig.name)


def gt_kernel_of(
    region_mask: np.ndarray, bbox: tuple[int, int, int, int], labels: np.ndarray
) -> int:
    """The ground-truth kernel (label) covering most of a region, 0 for none."""
    r0, c0, r1, c1 = bbox
    values = labels[r0:r1, c0:c1][region_mask]
    values = values[values > 0]
    return int(np.bincount(values).argmax()) if values.size else 0
