"""Monte Carlo dropout predictions of the ResNet18 seed classifier.

Dropout sits before the final layer only: the convolutional features of each crop
are computed once, in evaluation mode, and each of K draws multiplies them by one
dropout mask before the final layer. Draw k uses the same mask for every pool
item, so the K predictions of two items come from the same K sampled networks, as
BatchBALD's joint entropies require ("BatchBALD: Efficient and Diverse Batch
Acquisition for Deep Bayesian Active Learning"). With the features computed
once, K draws cost one small matrix product more than a single prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray
from torch import nn
from torch.utils.hooks import RemovableHandle

from appliance.bundle import Bundle, BundleInfo
from appliance.classifier import build_network, network_weights, to_tensor

log = logging.getLogger(__name__)

#: Dropout rate before the final layer, at training and for the MC draws.
DEFAULT_DROPOUT = 0.5

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class PoolPredictions:
    """What the network says about every pool item.

    Attributes
    ----------
    log_probs : (N, K, C) float32 tensor
        Log class probabilities under each of K dropout draws.
    features : (N, D) float32 ndarray
        Penultimate-layer features (D = 512 for ResNet18).
    mean_probs : (N, C) float32 ndarray
        Class probabilities of the network without dropout (its suggestion).
    """

    log_probs: torch.Tensor
    features: NDArray[np.float32]
    mean_probs: NDArray[np.float32]


def add_training_dropout(net: nn.Module, p: float = DEFAULT_DROPOUT) -> RemovableHandle:
    """Apply dropout to the input of the final layer ``fc`` while training.

    A forward pre-hook, so the network's weights keep the names of
    `appliance.classifier.build_network` and its bundles load unchanged. In
    evaluation mode the hook does nothing.

    Returns
    -------
    RemovableHandle
        Call ``remove()`` to take the dropout off again.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    fc = _final_layer(net)

    def dropout(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple:
        if not net.training:
            return inputs
        return (F.dropout(inputs[0], p, training=True), *inputs[1:])

    return fc.register_forward_pre_hook(dropout)


def _final_layer(net: nn.Module) -> nn.Linear:
    fc = getattr(net, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(
            "expected a ResNet with a linear final layer `fc`, got "
            f"{type(net).__name__}"
        )
    return fc


def network_from_bundle(bundle: Bundle) -> nn.Module:
    """Return the bundle's network in fp32, evaluation mode."""
    net = build_network(bundle.info)
    net.load_state_dict(network_weights(bundle), strict=True)
    return net.eval()


def features(
    net: nn.Module,
    info: BundleInfo,
    crops: NDArray[np.uint8],
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> NDArray[np.float32]:
    """Penultimate-layer features of (N, S, S, 3) uint8 crops, (N, D) float32."""
    fc = _final_layer(net)
    out = np.empty((len(crops), fc.in_features), np.float32)
    captured: list[torch.Tensor] = []
    handle = fc.register_forward_pre_hook(lambda m, inputs: captured.append(inputs[0]))
    net.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                captured.clear()
                net(to_tensor(crops[start : start + batch_size], info))
                out[start : start + len(captured[0])] = captured[0].numpy()
                if progress:
                    progress(min(start + batch_size, len(crops)), len(crops))
    finally:
        handle.remove()
    return out


def dropout_masks(
    num_draws: int, width: int, *, p: float = DEFAULT_DROPOUT, seed: int = 0
) -> torch.Tensor:
    """Return K inverted-dropout masks, (K, D) float32: 0 or 1 / (1 - p)."""
    if num_draws < 1:
        raise ValueError(f"need at least one dropout draw, got {num_draws}")
    generator = torch.Generator().manual_seed(seed)
    keep = torch.rand((num_draws, width), generator=generator) >= p
    return keep.float() / (1.0 - p)


def mc_log_probs(
    net: nn.Module, feats: NDArray[np.float32], masks: torch.Tensor
) -> torch.Tensor:
    """Log class probabilities under each mask, (N, K, C) float32.

    Draw k's logits are ``fc(features * masks[k])``: one mask for the whole pool.
    """
    fc = _final_layer(net)
    weight, bias = fc.weight.detach(), fc.bias.detach()
    k, c = masks.shape[0], weight.shape[0]
    # Fold each mask into the weights: (K*C, D), one product for all draws.
    folded = (masks[:, None, :] * weight[None]).reshape(k * c, -1)
    x = torch.from_numpy(np.ascontiguousarray(feats))
    logits = (x @ folded.t()).reshape(len(x), k, c) + bias
    return torch.log_softmax(logits, dim=2)


def predict_pool(
    net: nn.Module,
    info: BundleInfo,
    crops: NDArray[np.uint8],
    *,
    num_draws: int = 20,
    p: float = DEFAULT_DROPOUT,
    seed: int = 0,
    progress: Progress | None = None,
) -> PoolPredictions:
    """Run the network over the pool once and draw K dropout predictions.

    Parameters
    ----------
    net : nn.Module
        A ResNet18 as built by `appliance.classifier.build_network`.
    info : BundleInfo
        Its input size and normalisation.
    crops : (N, S, S, 3) uint8 ndarray
        The pool's crops.
    num_draws : int
        K, the dropout draws.
    p : float
        Dropout rate before the final layer.
    seed : int
        Seeds the masks.
    """
    feats = features(net, info, crops, progress=progress)
    return predict_features(net, feats, num_draws=num_draws, p=p, seed=seed)


def predict_features(
    net: nn.Module,
    feats: NDArray[np.float32],
    *,
    num_draws: int = 20,
    p: float = DEFAULT_DROPOUT,
    seed: int = 0,
) -> PoolPredictions:
    """Draw K dropout predictions of `net`'s final layer ``fc`` on `feats`.

    `net` may be any module whose ``fc`` is its final linear layer: a ResNet18 or
    a head trained on frozen features.
    """
    masks = dropout_masks(num_draws, feats.shape[1], p=p, seed=seed)
    log_probs = mc_log_probs(net, feats, masks)
    fc = _final_layer(net)
    with torch.inference_mode():
        plain = torch.softmax(fc(torch.from_numpy(feats)), dim=1).numpy()
    return PoolPredictions(log_probs, feats, plain.astype(np.float32))
