"""A small simulated rig: 1224x1024 px at 5 px/mm, 40 kernels a sample.

A quarter of the full sensor's pixels keeps tests that capture whole samples
fast; the pipeline is the same.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.rigs import RigHandle
from drivers.scene import SampleSpec, default_geometry
from drivers.simulated import SimulatedBench, simulated_rig

GEOMETRY = default_geometry(image_size=(1224, 1024), px_per_mm=5.0)
SPEC = SampleSpec(n_kernels=40)


def open_small_rig(seed: int = 0) -> RigHandle:
    """Open a small simulated rig whose first sample has seed `seed`."""
    bench = SimulatedBench(geometry=GEOMETRY, spec=SPEC, seed=seed)
    rig, _ = simulated_rig(bench=bench)
    rig.open()
    return RigHandle("simulated", rig, bench)


def small_rig_opener(seed: int = 0) -> Callable[[], RigHandle]:
    """Return a function that opens a small simulated rig (for the app)."""
    return lambda: open_small_rig(seed)
