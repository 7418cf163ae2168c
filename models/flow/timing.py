"""Sampling speed of the flow variants, measured in one process on one CPU.

Shared by ``seedqa-models flow bench`` and ``bench/flow.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from models.flow.convs import CInCConv2d, EmergingConv2d
from models.flow.model import FlowConfig, FlowModel, parameter_count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """One measured case: the best of `repeats` runs, seconds."""

    name: str
    seconds: float
    parameters: int = 0


def best_of(run: Callable[[], object], repeats: int) -> float:
    """Return the fastest of `repeats` timed calls of `run`, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _warm(model: FlowModel, config: FlowConfig, seed: int) -> None:
    # Actnorm sets itself on the first batch; perturb every weight so that no
    # layer is the identity it starts as and every solve does real work.
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(8, config.in_channels, config.size, config.size, generator=generator)
    with torch.no_grad():
        model.encode(x - 0.5)
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))


def time_sampling(
    config: FlowConfig,
    *,
    n: int = 100,
    repeats: int = 2,
    seed: int = 0,
    sequential: bool = False,
) -> Timing:
    """Time drawing `n` images from an untrained `config` model.

    Speed does not depend on training, only on the shapes and the depth.
    """
    torch.manual_seed(seed)
    model = FlowModel(config).eval()
    _warm(model, config, seed)

    def run() -> None:
        model.sample(
            n,
            temperature=0.7,
            generator=torch.Generator().manual_seed(seed),
            sequential=sequential,
        )

    seconds = best_of(run, repeats)
    name = f"{config.mixing}+{config.coupling}" + (" sequential" if sequential else "")
    log.info("sampling %d images with %s: %.3f s", n, name, seconds)
    return Timing(name, seconds, parameter_count(model))


def time_layer_inverse(
    channels: int, size: int, *, batch: int, repeats: int = 3, seed: int = 0
) -> dict[str, float]:
    """Time one CInC and one Emerging 3x3 convolution on (batch, C, size, size).

    Returns seconds for the CInC forward pass (the floor an inverse is held to)
    and for the fast (wavefront) and sequential (pixel by pixel) inverse of each.
    """
    torch.manual_seed(seed)
    cinc, emerging = CInCConv2d(channels), EmergingConv2d(channels)
    y = torch.randn(batch, channels, size, size)
    out = {}
    with torch.no_grad():
        out["cinc forward"] = best_of(lambda: cinc(y), repeats)
        for name, layer in (("cinc", cinc), ("emerging", emerging)):
            out[f"{name} wavefront"] = best_of(lambda m=layer: m.inverse(y), repeats)
            out[f"{name} sequential"] = best_of(
                lambda m=layer: m.inverse_sequential(y), repeats
            )
    return out


def run_benchmark(
    *,
    n: int = 100,
    size: int = 32,
    levels: int = 3,
    steps: int = 8,
    hidden: int = 128,
    repeats: int = 2,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Time sampling `n` RGB images of `size` for every variant, and the inverses.

    Sets torch's thread count for the process to `threads`.

    Returns
    -------
    dict
        ``sampling``: seconds per variant (Glow, Emerging and CInC with their
        fast inverses; Emerging and CInC with their pixel-by-pixel ones);
        ``layer_inverse_s``: one 3x3 layer on a (n, 12, size, size) tensor, and
        ``layer_inverse_one_image_s`` on one image;
        ``ratios``: the figures the CInC paper compares; ``setup``.
    """
    torch.set_num_threads(threads)
    base = FlowConfig(
        in_channels=3, size=size, levels=levels, steps=steps, hidden=hidden
    )
    cases = [
        (replace(base, mixing="glow"), False),
        (replace(base, mixing="emerging"), False),
        (replace(base, mixing="cinc"), False),
        (replace(base, mixing="emerging"), True),
        (replace(base, mixing="cinc"), True),
    ]
    sampling = {}
    for config, sequential in cases:
        t = time_sampling(config, n=n, repeats=repeats, sequential=sequential)
        sampling[t.name] = t.seconds
        if progress:
            progress(f"{t.name}: {t.seconds:.3f} s")
    layer = time_layer_inverse(12, size, batch=n, repeats=7)
    single = time_layer_inverse(12, size, batch=1, repeats=7)
    if progress:
        progress("single-layer inverses timed")

    cinc = sampling["cinc+affine"]
    ratios = {
        "cinc sampling, sequential / wavefront inverse": sampling[
            "cinc+affine sequential"
        ]
        / cinc,
        "cinc layer, sequential / wavefront inverse": layer["cinc sequential"]
        / layer["cinc wavefront"],
        "cinc layer, one image, sequential / wavefront inverse": single[
            "cinc sequential"
        ]
        / single["cinc wavefront"],
        "cinc layer, wavefront inverse / forward": layer["cinc wavefront"]
        / layer["cinc forward"],
        "cinc / emerging sampling (emerging sequential, as its paper)": cinc
        / sampling["emerging+affine sequential"],
        "cinc / emerging sampling (both wavefront)": cinc / sampling["emerging+affine"],
        "cinc / glow sampling": cinc / sampling["glow+affine"],
    }
    return {
        "setup": {
            "images": n,
            "shape": [3, size, size],
            "levels": levels,
            "steps": steps,
            "hidden": hidden,
            "threads": threads,
            "repeats": repeats,
            "torch": torch.__version__,
        },
        "sampling_s": sampling,
        "layer_inverse_s": layer,
        "layer_inverse_one_image_s": single,
        "ratios": ratios,
    }
