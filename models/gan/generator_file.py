"""The trained generator as a file: EMA weights, shape, classes and provenance.

One safetensors file; its header holds, under ``seedqa.gan``, a JSON document with
the networks' shape, class names, training configuration, the data it learnt from
and its loss history. No pickle is read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from appliance.files import write_atomic
from models.gan.network import GanShape, Generator

log = logging.getLogger(__name__)

METADATA_KEY = "seedqa.gan"
FORMAT = "seedqa-gan-generator"


class GeneratorFileError(ValueError):
    """A file is not a generator written by `seedqa-models gan train`."""


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator file says about its network.

    Attributes
    ----------
    shape : GanShape
    classes : tuple of str
        Class names, in the order of the class indices.
    config : dict
        The training configuration.
    trained_on : dict
        The training data: counts per class, source, time.
    """

    shape: GanShape
    classes: tuple[str, ...]
    config: dict[str, Any]
    trained_on: dict[str, Any]


def standing_statistics(
    generator: Generator,
    n_classes: int,
    z_dim: int,
    *,
    seed: int,
    batches: int = 16,
    batch_size: int = 64,
) -> None:
    """Replace the batch-norm running statistics by averages over fresh samples.

    "Large Scale GAN Training for High Fidelity Natural Image Synthesis" samples
    with such standing statistics: the running averages collected while the
    weights moved fit the EMA weights poorly. Classes are drawn uniformly.
    """
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = {m: m.momentum for m in norms}
    rng = torch.Generator().manual_seed(seed + 7919)
    generator.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
        m.train()
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn((batch_size, z_dim), generator=rng)
            y = torch.randint(0, n_classes, (batch_size,), generator=rng)
            generator(z, y)
    for m in norms:
        m.momentum = saved[m]
        m.eval()


def save_generator(
    path: Path,
    generator: Generator,
    *,
    classes: tuple[str, ...],
    config: dict[str, Any],
    trained_on: dict[str, Any],
    history: dict[str, Any],
) -> None:
    """Write `generator` (in evaluation mode) and its description, atomically."""
    meta = {
        "format": FORMAT,
        "shape": asdict(generator.shape),
        "classes": list(classes),
        "config": config,
        "trained_on": trained_on,
        "history": history,
    }
    tensors = {k: v.detach().contiguous() for k, v in generator.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save(tensors, metadata={METADATA_KEY: json.dumps(meta)}))
    log.info("generator written to %s", path)


def load_generator(path: Path) -> tuple[Generator, GeneratorInfo]:
    """Read a generator file; return the network in evaluation mode and its info.

    Raises
    ------
    GeneratorFileError
        If the file does not exist, is not safetensors, or is not a generator.
    """
    path = Path(path)
    if not path.is_file():
        raise GeneratorFileError(
            f"generator file {path} does not exist; train one with "
            "`seedqa-models gan train`"
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(METADATA_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise GeneratorFileError(f"{path} is not a safetensors file: {exc}") from exc
    if raw is None or json.loads(raw).get("format") != FORMAT:
        raise GeneratorFileError(
            f"{path} is not a generator written by `seedqa-models gan train`"
        )
    meta = json.loads(raw)
    shape = GanShape(**meta["shape"])
    generator = Generator(shape)
    try:
        generator.load_state_dict(tensors)
    except RuntimeError as exc:
        raise GeneratorFileError(
            f"{path}: its weights do not fit its stated shape ({exc})"
        ) from exc
    for p in generator.parameters():
        p.requires_grad_(False)
    info = GeneratorInfo(
        shape, tuple(meta["classes"]), meta["config"], meta["trained_on"]
    )
    return generator.eval(), info
