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


@pytest.fixture(scope="session")
def untrained_bundle(tmp_path_factory):
    """A valid maize bundle with untrained weights, for the pipeline's mechanics.

    Accuracy is measured by the benchmarks on trained bundles; these tests check
    what does not depend on it (counts, storage, formats, tamper checks).
    """
    import torch

    from appliance.bundle import save_bundle
    from appliance.classifier import CALIBRATION_KEY
    from models.classifier.train import init_network, make_info

    info = make_info(
        ("pure", "broken", "discolored", "silkcut"),
        ("pure",),
        32,
        name="maize-sim",
        version="test",
        metrics={
            "accuracy": 0.9,
            "confusion": [[90, 5, 3, 2], [4, 90, 3, 3], [3, 3, 92, 2], [2, 3, 3, 92]],
        },
    )
    net = init_network(info, seed=0)
    state = dict(net.state_dict())
    rng = np.random.default_rng(0)
    state[CALIBRATION_KEY] = torch.from_numpy(
        rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    )
    path = tmp_path_factory.mktemp("models") / "maize-sim.safetensors"
    save_bundle(path, info, state)
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch, untrained_bundle):
    """A fresh appliance data directory with the maize bundle installed."""
    import shutil

    root = tmp_path / "data"
    (root / "models").mkdir(parents=True)
    shutil.copy(untrained_bundle, root / "models" / "maize-sim.safetensors")
    monkeypatch.setenv("SEEDQA_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def bench(tmp_path_factory, untrained_bundle):
    """A data directory with two captured samples and one account per role.

    Read-only: tests that change records work on `Bench.copy`. See
    `tests.appliance.records_bench`.
    """
    from tests.appliance.records_bench import build_bench

    yield from build_bench(tmp_path_factory.mktemp("bench") / "data", untrained_bundle)
