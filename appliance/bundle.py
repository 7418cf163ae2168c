"""Model bundles: a classifier's weights and everything needed to use and trust them.

A bundle is one safetensors file. Its tensors are the network's weights; its header
metadata holds, under the key ``seedqa.bundle``, a JSON document with the
architecture, class names, which classes count as pure, the input size and
normalisation, how crops are cut, the data it was trained on and its validation
metrics (confusion matrix included), and the SHA-256 of the weights. Loading checks
all of it, so a changed, truncated or foreign file is refused; no pickle is ever
read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from appliance.files import write_atomic

log = logging.getLogger(__name__)

FORMAT = "seedqa-model-bundle"
FORMAT_VERSION = 1
METADATA_KEY = "seedqa.bundle"
ARCHITECTURES = ("resnet18",)

#: Flips of a crop a classifier may also look at (see `BundleInfo`).
TEST_TIME_FLIPS = ("hflip", "vflip", "rot180")


class BundleError(ValueError):
    """A file is not a valid model bundle, or it has been changed."""


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle says about its model.

    Attributes
    ----------
    architecture : str
        Network name (``"resnet18"``).
    classes : tuple of str
        Output classes, in the network's order.
    pure_classes : tuple of str
        Classes that count as pure seed in a physical-purity report.
    input_size : int
        Side of the square crops the network takes, pixels.
    mean, std : tuple of float
        Per-channel normalisation of RGB in [0, 1].
    crop : dict
        How seed crops are cut (``margin``: side over the seed's extent).
    trained_on : dict
        Description of the training data (source, counts per class, seed).
    metrics : dict
        Validation metrics: ``accuracy``, ``confusion`` (rows are the truth), ...
    name, version : str
        Human-readable identity, e.g. ``maize-sim`` and ``1``.
    numeric_format : {"fp32", "int8"}
        Arithmetic recommended at inference, chosen by validation accuracy.
    test_time_flips : tuple of {"hflip", "vflip", "rot180"}
        Flipped copies of each crop whose class probabilities are averaged with
        the crop's own at inference, chosen by validation accuracy; empty for none.
    """

    architecture: str
    classes: tuple[str, ...]
    pure_classes: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: dict[str, Any] = field(default_factory=lambda: {"margin": 1.15})
    trained_on: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = "model"
    version: str = "1"
    numeric_format: str = "fp32"
    test_time_flips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(
                f"architecture {self.architecture!r} is not one of {ARCHITECTURES}"
            )
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            problems.append(
                f"classes must be two or more distinct names: {self.classes}"
            )
        if not set(self.pure_classes) <= set(self.classes) or not self.pure_classes:
            problems.append(
                f"pure classes {self.pure_classes} must be some of {self.classes}"
            )
        if not 16 <= self.input_size <= 512:
            problems.append(f"input size {self.input_size} is outside 16..512 px")
        if self.numeric_format not in ("fp32", "int8"):
            problems.append(
                f"numeric format {self.numeric_format!r} is not fp32 or int8"
            )
        flips = self.test_time_flips
        if not set(flips) <= set(TEST_TIME_FLIPS) or len(set(flips)) != len(flips):
            problems.append(
                f"test-time flips {list(flips)} must be distinct names among "
                f"{list(TEST_TIME_FLIPS)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std must be three numbers, std positive")
        for key in ("confusion", "fused_confusion"):
            confusion = self.metrics.get(key)
            if confusion is None:
                continue
            shape = np.asarray(confusion).shape
            if shape != (len(self.classes), len(self.classes)):
                problems.append(
                    f"{key} matrix is {shape}, expected {len(self.classes)} square"
                )
        if problems:
            raise BundleError("invalid bundle description: " + "; ".join(problems))

    @property
    def purity_confusion(self) -> list[list[int]] | None:
        """The confusion matrix (rows the truth) purity is corrected with.

        That of fused seed verdicts where the build could measure it (seeds seen
        from both sides, as on the rig), else that of single views.
        """
        found = self.metrics.get("fused_confusion", self.metrics.get("confusion"))
        return None if found is None else [[int(v) for v in row] for row in found]

    @property
    def pure_mask(self) -> NDArray[np.bool_]:
        """(C,) bool array, True for pure classes."""
        return np.array([c in self.pure_classes for c in self.classes])

    def to_json(self) -> dict[str, Any]:
        """Plain-data form, as stored in the file."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "classes": list(self.classes),
            "pure_classes": list(self.pure_classes),
            "input_size": self.input_size,
            "numeric_format": self.numeric_format,
            "test_time_flips": list(self.test_time_flips),
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "crop": dict(self.crop),
            "trained_on": dict(self.trained_on),
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleInfo:
        """Parse the stored form, refusing other formats and missing fields."""
        if data.get("format") != FORMAT:
            raise BundleError("not a seedqa model bundle (no seedqa format marker)")
        if data.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {data.get('format_version')!r} is not "
                f"supported (expected {FORMAT_VERSION}); rebuild the model"
            )
        try:
            norm = data["normalisation"]
            return cls(
                architecture=str(data["architecture"]),
                classes=tuple(str(c) for c in data["classes"]),
                pure_classes=tuple(str(c) for c in data["pure_classes"]),
                input_size=int(data["input_size"]),
                mean=_three(norm["mean"]),
                std=_three(norm["std"]),
                crop=dict(data.get("crop", {})),
                trained_on=dict(data.get("trained_on", {})),
                metrics=dict(data.get("metrics", {})),
                name=str(data.get("name", "model")),
                version=str(data.get("version", "1")),
                numeric_format=str(data.get("numeric_format", "fp32")),
                test_time_flips=tuple(str(f) for f in data.get("test_time_flips", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"bundle description is incomplete: {exc!r}") from exc


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: its description, weights and the file's SHA-256."""

    info: BundleInfo
    state_dict: dict[str, torch.Tensor]
    sha256: str
    path: Path | None = None


def _three(values: Sequence[Any]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_bundle(
    path: Path, info: BundleInfo, state_dict: Mapping[str, torch.Tensor]
) -> str:
    """Write a bundle file atomically; return the file's SHA-256.

    Parameters
    ----------
    path : Path
        Destination, conventionally ``NAME.safetensors``.
    info : BundleInfo
        The model's description.
    state_dict : dict of str to Tensor
        The network's weights and buffers.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = info.to_json()
    meta["weights_sha256"] = weights_sha256(tensors)
    data = save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    sha = hashlib.sha256(data).hexdigest()
    log.info(
        "model bundle %s v%s written to %s (%s)",
        info.name,
        info.version,
        path,
        sha[:12],
    )
    return sha


def load_bundle(path: Path) -> Bundle:
    """Read and check a bundle file.

    Raises
    ------
    BundleError
        If the file is missing, not safetensors, not a seedqa bundle, of an
        unsupported version, inconsistent, or if its weights do not match the
        SHA-256 it records (the file was changed).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read model bundle {path}: {exc}") from exc
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(
            f"{path} is not a safetensors model bundle ({exc}); only bundles "
            "written by seedqa-models can be loaded"
        ) from exc
    if METADATA_KEY not in meta:
        raise BundleError(f"{path} is a safetensors file but not a seedqa model bundle")
    try:
        data = json.loads(meta[METADATA_KEY])
    except ValueError as exc:
        raise BundleError(f"{path}: bundle description is not JSON: {exc}") from exc
    info = BundleInfo.from_json(data)
    if data.get("weights_sha256") != weights_sha256(tensors):
        raise BundleError(
            f"{path}: the weights do not match the bundle's SHA-256; the file was "
            "changed or damaged; reinstall the model"
        )
    sha = hashlib.sha256(raw).hexdigest()
    log.debug("model bundle %s v%s loaded from %s", info.name, info.version, path)
    return Bundle(info=info, state_dict=tensors, sha256=sha, path=path)
