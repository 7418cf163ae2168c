"""Training the ResNet18 seed classifier on crops, with checkpoints and resume.

Every random choice (initial weights, sampling order, augmentation) is drawn from
generators seeded by the run's seed and the epoch number, so a run resumed from a
checkpoint at an epoch boundary continues exactly as an uninterrupted one.
Checkpoints are safetensors files (weights, optimiser moments) with the rest of
the state as JSON in their header: nothing is pickled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray
from safetensors import safe_open
from safetensors.torch import save
from torch import nn
from tqdm import tqdm

from appliance.bundle import BundleInfo
from appliance.classifier import build_network, to_tensor
from appliance.files import write_atomic

log = logging.getLogger(__name__)

#: ImageNet statistics, kept so that ImageNet weights can initialise the network.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes
    ----------
    epochs : int
        Passes over the training crops.
    batch_size : int
        Crops per step.
    lr : float
        Peak learning rate of the one-cycle schedule (AdamW).
    weight_decay : float
        AdamW's decoupled weight decay.
    balanced : bool
        Draw crops with probability inverse to their class's frequency.
    label_smoothing : float
        Cross-entropy label smoothing.
    seed : int
        Seeds every random choice of the run.
    class_weighted : bool
        Weigh each crop's loss inverse to its class's frequency (normalised so
        the mean weight over the training crops is 1).
    epoch_crops : int
        Crops drawn per epoch; 0 for all of them. Fixes the number of steps, so
        runs on sets of different sizes get the same training budget.
    light_jitter : float
        Scales the ranges of the brightness, contrast and saturation changes of
        `augment` (1: +-20%, +-20%, +-30%; 0: none). A bench whose light is
        fixed, or a class told apart by its colour, wants less.
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    balanced: bool = False
    label_smoothing: float = 0.05
    seed: int = 0
    class_weighted: bool = False
    epoch_crops: int = 0
    light_jitter: float = 1.0


@dataclass
class History:
    """Loss and accuracy per epoch."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def augment(
    batch: NDArray[np.uint8], generator: torch.Generator, *, light: float = 1.0
) -> NDArray[np.uint8]:
    """Random flips, quarter turns excluded, small rotations, scale, light and colour.

    Crops are already turned upright, so flips and small rotations cover how a
    seed can lie; brightness, contrast and saturation changes, their ranges
    scaled by `light`, cover the light.
    """
    import cv2

    n, size = len(batch), batch.shape[1]
    r = torch.rand((n, 7), generator=generator).numpy()
    out = np.empty_like(batch)
    for i in range(n):
        img = batch[i]
        if r[i, 0] < 0.5:
            img = img[:, ::-1]
        if r[i, 1] < 0.5:
            img = img[::-1]
        angle = (r[i, 2] - 0.5) * 30.0
        scale = 0.9 + 0.2 * r[i, 3]
        m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (size, size))
        f = img.astype(np.float32)
        f *= 1.0 + light * 0.4 * (r[i, 4] - 0.5)  # brightness
        mean = f.mean()
        f = (f - mean) * (1.0 + light * 0.4 * (r[i, 5] - 0.5)) + mean  # contrast
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * (1.0 + light * 0.6 * (r[i, 6] - 0.5))  # saturation
        f[img.max(axis=2) == 0] = 0  # the background stays black
        out[i] = np.clip(f, 0, 255).astype(np.uint8)
    return out


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse; return whether it could.

    Every training step frees and reallocates tens of megabytes of activations
    and gradients. By default glibc gives large blocks back to the kernel and
    takes them anew, zeroed page by page: about 5% of a training run's CPU time
    here went to those page faults. Raising its mmap and trim thresholds (the
    in-process form of the tuning PyTorch's performance guide reaches with
    another allocator) keeps the blocks; the process keeps its peak memory.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    m_trim_threshold, m_mmap_threshold, one_gib = -1, -3, 1 << 30
    kept = bool(mallopt(m_mmap_threshold, one_gib)) and bool(
        mallopt(m_trim_threshold, one_gib)
    )
    log.debug("malloc keeps freed memory: %s", kept)
    return kept


def make_info(
    classes: tuple[str, ...], pure_classes: tuple[str, ...], size: int, **extra: Any
) -> BundleInfo:
    """Return the bundle description of a network trained here."""
    return BundleInfo(
        architecture="resnet18",
        classes=classes,
        pure_classes=pure_classes,
        input_size=size,
        mean=MEAN,
        std=STD,
        **extra,
    )


def init_network(
    info: BundleInfo, *, seed: int, init_weights: Path | None = None
) -> nn.Module:
    """Return a fresh network, from scratch or from a local ImageNet weights file.

    The weights file may be safetensors or a PyTorch state dict, read with
    ``weights_only=True`` (no arbitrary pickle). The classification layer is
    always new.
    """
    torch.manual_seed(seed)
    net = build_network(info)
    if init_weights is not None:
        path = Path(init_weights)
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as fh:
                state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise ValueError(
                f"{path} is not a ResNet18 state dict (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
        log.info("network initialised from %s", path)
    return net.to(memory_format=torch.channels_last)


def train(
    net: nn.Module,
    info: BundleInfo,
    train_crops: NDArray[np.uint8],
    train_labels: NDArray[np.int64],
    val_crops: NDArray[np.uint8],
    val_labels: NDArray[np.int64],
    config: TrainConfig,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[int, History], None] | None = None,
) -> History:
    """Train `net` in place; return the loss and accuracy history.

    Parameters
    ----------
    checkpoint : Path, optional
        Written after every epoch (atomically); read first when `resume` is set.
    resume : bool
        Continue from `checkpoint` if it exists.
    """
    keep_freed_memory()
    per_epoch = config.epoch_crops or len(train_labels)
    if not config.balanced and per_epoch > len(train_labels):
        raise ValueError(
            f"epoch_crops {per_epoch} exceeds the {len(train_labels)} training "
            "crops; lower it or use balanced sampling"
        )
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    history, start = History(), 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        start, history = load_checkpoint(checkpoint, net, optimiser, schedule, config)
        log.info("resumed from %s after epoch %d", checkpoint, start)

    weights = _sampling_weights(train_labels, len(info.classes), config.balanced)
    loss_weight = (
        torch.from_numpy(class_loss_weights(train_labels, len(info.classes)))
        if config.class_weighted
        else None
    )
    for epoch in range(start, config.epochs):
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.multinomial(
            torch.from_numpy(weights),
            per_epoch,
            replacement=config.balanced,
            generator=generator,
        ).numpy()
        net.train()
        losses, correct = [], 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not show_progress,
            leave=False,
            unit="batch",
        )
        for step in bar:
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            crops = augment(train_crops[idx], generator, light=config.light_jitter)
            x = to_tensor(crops, info)
            y = torch.from_numpy(train_labels[idx])
            logits = net(x)
            loss = F.cross_entropy(
                logits,
                y,
                weight=loss_weight,
                label_smoothing=config.label_smoothing,
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        history.train_loss.append(float(np.mean(losses)))
        history.train_accuracy.append(correct / len(order))
        val_loss, val_acc = evaluate_loss(net, info, val_crops, val_labels)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_acc)
        log.info(
            "epoch %d/%d: train loss %.3f, accuracy %.3f; validation loss %.3f, "
            "accuracy %.3f",
            epoch + 1,
            config.epochs,
            history.train_loss[-1],
            history.train_accuracy[-1],
            val_loss,
            val_acc,
        )
        if checkpoint is not None:
            save_checkpoint(
                checkpoint, net, optimiser, schedule, epoch + 1, history, config
            )
        if on_epoch:
            on_epoch(epoch + 1, history)
    return history


def predict_logits(
    net: nn.Module, info: BundleInfo, crops: NDArray[np.uint8], batch_size: int = 256
) -> torch.Tensor:
    """Logits of the network in evaluation mode, (N, C)."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            out.append(net(to_tensor(crops[start : start + batch_size], info)))
    return torch.cat(out) if out else torch.zeros((0, len(info.classes)))


def evaluate_loss(
    net: nn.Module,
    info: BundleInfo,
    crops: NDArray[np.uint8],
    labels: NDArray[np.int64],
) -> tuple[float, float]:
    """Cross-entropy and accuracy on held-out crops."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(net, info, crops)
    y = torch.from_numpy(labels)
    return float(F.cross_entropy(logits, y)), float(
        (logits.argmax(1) == y).float().mean()
    )


def class_loss_weights(
    labels: NDArray[np.int64], n_classes: int
) -> NDArray[np.float32]:
    """Per-class loss weights (C,), inverse to class frequency, mean 1 per crop.

    A class absent from `labels` gets weight 0 (it contributes no loss anyway).
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    inverse = np.divide(1.0, counts, out=np.zeros(n_classes), where=counts > 0)
    return (inverse * len(labels) / max(1, int((counts > 0).sum()))).astype(np.float32)


def _sampling_weights(
    labels: NDArray[np.int64], n_classes: int, balanced: bool
) -> NDArray[np.float64]:
    if not balanced:
        return np.ones(len(labels))
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return 1.0 / counts[labels]


def save_checkpoint(
    path: Path,
    net: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    history: History,
    config: TrainConfig,
) -> None:
    """Write the training state after `epoch` as a safetensors file, atomically."""
    tensors = {
        f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()
    }
    opt_state = optimiser.state_dict()
    for pid, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).contiguous()
    meta = {
        "epoch": epoch,
        "history": asdict(history),
        "config": asdict(config),
        "param_groups": opt_state["param_groups"],
        "schedule": {k: v for k, v in schedule.state_dict().items() if _jsonable(v)},
    }
    data = save(tensors, metadata={"seedqa.checkpoint": json.dumps(meta)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def load_checkpoint(
    path: Path,
    net: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
) -> tuple[int, History]:
    """Restore the state written by `save_checkpoint`; return (epoch, history).

    Raises
    ------
    ValueError
        If the checkpoint was written with another training configuration.
    """
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {})["seedqa.checkpoint"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    if meta["config"] != asdict(config):
        raise ValueError(
            f"checkpoint {path} was written with another configuration "
            f"({meta['config']}); delete it or train with the same settings"
        )
    net.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    full = schedule.state_dict()
    full.update(meta["schedule"])
    schedule.load_state_dict(full)
    return int(meta["epoch"]), History(**meta["history"])


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
