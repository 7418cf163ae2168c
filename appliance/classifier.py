"""The seed classifier at inference: a torchvision ResNet18 over batches of crops.

Fast on a small CPU: crops are batched, tensors are channels-last, gradients are
off (`torch.inference_mode`), and when the bundle says its 8-bit version keeps the
accuracy, the network is quantised to int8 at load time, calibrated on crops the
bundle carries.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torchvision.models import resnet18

from appliance.bundle import (
    TEST_TIME_FLIPS,
    Bundle,
    BundleError,
    BundleInfo,
    load_bundle,
)
from appliance.recipes import BundleMissing, Recipe

log = logging.getLogger(__name__)

NumericFormat = Literal["auto", "fp32", "int8"]

#: State-dict prefix of the calibration crops a bundle carries for int8 use.
CALIBRATION_KEY = "calibration.crops"


def build_network(info: BundleInfo) -> nn.Module:
    """Return an untrained network of the bundle's architecture and class count."""
    if info.architecture != "resnet18":
        raise BundleError(f"architecture {info.architecture!r} is not supported")
    return resnet18(weights=None, num_classes=len(info.classes))


def to_tensor(crops: NDArray[np.uint8], info: BundleInfo) -> torch.Tensor:
    """(N, S, S, 3) uint8 crops as a normalised (N, 3, S, S) channels-last tensor."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
    x = x.float().div_(255.0)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def network_weights(bundle: Bundle) -> dict[str, torch.Tensor]:
    """Return the bundle's network tensors (without its calibration crops)."""
    return {
        k: v for k, v in bundle.state_dict.items() if not k.startswith("calibration.")
    }


class SeedClassifier:
    """Class probabilities for seed crops, from a model bundle.

    Parameters
    ----------
    bundle : Bundle
        A loaded, checked bundle.
    numeric : {"auto", "fp32", "int8"}
        Arithmetic of the network; "auto" follows the bundle's recommendation.
    batch_size : int
        Crops per forward pass.
    flips : tuple of str, optional
        Test-time flips to average over; default: the bundle's choice.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        numeric: NumericFormat = "auto",
        batch_size: int = 128,
        flips: tuple[str, ...] | None = None,
    ) -> None:
        self.bundle = bundle
        self.info = bundle.info
        self.batch_size = batch_size
        self.flips = self.info.test_time_flips if flips is None else tuple(flips)
        if not set(self.flips) <= set(TEST_TIME_FLIPS):
            raise ValueError(
                f"test-time flips {list(self.flips)} must be among {TEST_TIME_FLIPS}"
            )
        net = build_network(self.info)
        try:
            net.load_state_dict(network_weights(bundle), strict=True)
        except RuntimeError as exc:
            raise BundleError(
                f"bundle {self.info.name} v{self.info.version}: its weights do not fit "
                f"a {self.info.architecture} with {len(self.info.classes)} classes "
                f"({str(exc).splitlines()[0]})"
            ) from exc
        net.eval()
        if numeric == "auto":
            numeric = "int8" if self.info.numeric_format == "int8" else "fp32"
        self.numeric: NumericFormat = numeric
        if numeric == "int8":
            crops = bundle.state_dict.get(CALIBRATION_KEY)
            if crops is None:
                raise BundleError(
                    f"bundle {self.info.name} has no calibration crops for int8; "
                    "use fp32 or rebuild the bundle"
                )
            self.network = quantize_int8(net, crops.numpy(), self.info)
        else:
            self.network = net.to(memory_format=torch.channels_last)
        log.info(
            "classifier %s v%s ready (%s, %d px, %s, test-time flips: %s)",
            self.info.name,
            self.info.version,
            self.info.architecture,
            self.info.input_size,
            numeric,
            ", ".join(self.flips) or "none",
        )

    def predict(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Class probabilities, (N, C) float32, for (N, S, S, 3) uint8 crops.

        With test-time flips, each crop's probabilities are the mean over the
        crop and its flipped copies, all in the same forward passes.
        """
        size = self.info.input_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected crops of shape (N, {size}, {size}, 3), got {crops.shape}"
            )
        return predict_probs(
            self.network,
            self.info,
            crops,
            flips=self.flips,
            batch_size=self.batch_size,
        )


def flip_crops(crops: NDArray[np.uint8], flip: str) -> NDArray[np.uint8]:
    """Return (N, S, S, 3) crops flipped left-right, top-bottom or turned 180°."""
    if flip == "hflip":
        return crops[:, :, ::-1]
    if flip == "vflip":
        return crops[:, ::-1, :]
    if flip == "rot180":
        return crops[:, ::-1, ::-1]
    raise ValueError(f"unknown flip {flip!r}; expected one of {TEST_TIME_FLIPS}")


def predict_probs(
    network: nn.Module,
    info: BundleInfo,
    crops: NDArray[np.uint8],
    *,
    flips: tuple[str, ...] = (),
    batch_size: int = 128,
) -> NDArray[np.float32]:
    """Softmax of `network` over crops, averaged with their `flips`, (N, C)."""
    out = np.empty((len(crops), len(info.classes)), np.float32)
    copies = 1 + len(flips)
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            batch = crops[start : start + batch_size]
            views = [batch] + [flip_crops(batch, f) for f in flips]
            x = to_tensor(np.concatenate(views) if flips else batch, info)
            probs = torch.softmax(network(x), 1).view(copies, len(batch), -1)
            out[start : start + len(batch)] = probs.mean(0).numpy()
    return out


def classifier_for(
    recipe: Recipe, models_dir: Path, *, numeric: NumericFormat = "auto"
) -> SeedClassifier:
    """Load the recipe's installed bundle and check it fits the recipe.

    Raises
    ------
    BundleMissing
        If the bundle is not installed; the message gives the command that builds
        it.
    BundleError
        If the bundle is damaged or its classes are not the recipe's.
    """
    path = recipe.bundle_path(models_dir)
    if not path.is_file():
        raise BundleMissing(
            f"recipe {recipe.name} has no model bundle at {path}; build it with "
            f"`seedqa-models recipe build {recipe.name}`"
        )
    bundle = load_bundle(path)
    if tuple(bundle.info.classes) != recipe.classes:
        raise BundleError(
            f"bundle {path} has classes {list(bundle.info.classes)}, but recipe "
            f"{recipe.name} expects {list(recipe.classes)}; rebuild the bundle"
        )
    return SeedClassifier(bundle, numeric=numeric)


def quantize_int8(
    net: nn.Module, calibration_crops: NDArray[np.uint8], info: BundleInfo
) -> nn.Module:
    """Post-training static int8 quantisation (FX graph mode, x86 backend).

    Activation ranges are observed on `calibration_crops`, so the result depends
    only on the bundle.
    """
    # Limitation: torch.ao.quantization is deprecated in favour of torchao's
    # PT2E flow, whose CPU speed-up needs torch.compile; the FX flow still works in
    # the pinned torch and gives about 2x on an AVX2 CPU without compiling.
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    example = to_tensor(calibration_crops[:2], info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        prepared = prepare_fx(
            copy.deepcopy(net).eval(), get_default_qconfig_mapping("x86"), (example,)
        )
        with torch.inference_mode():
            for start in range(0, len(calibration_crops), 64):
                prepared(to_tensor(calibration_crops[start : start + 64], info))
        return convert_fx(prepared)
