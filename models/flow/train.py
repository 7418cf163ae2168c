"""Train a flow by maximum likelihood, with checkpoints and resume; score images.

A model file is a checkpoint: the model's shape, its weights, the optimiser state,
the step reached and how the data were made, so training can resume from it and
every other command can load it.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from appliance.files import write_atomic
from models.flow.model import FlowConfig, FlowModel, bits_per_dim, dequantise

log = logging.getLogger(__name__)

FORMAT = "seedqa-flow"
FORMAT_VERSION = 1


class FlowFileError(ValueError):
    """A model file is missing, not a flow checkpoint, or does not fit the data."""


@dataclass(frozen=True)
class TrainConfig:
    """How a flow is trained.

    Attributes
    ----------
    iterations : int
        Optimiser steps in all (a resumed run stops at the same total).
    batch_size : int
        Images per step.
    lr : float
        Adam learning rate after warm-up.
    warmup : int
        Steps of linear learning-rate warm-up.
    grad_clip : float
        Largest gradient norm.
    seed : int
        Seed of the weights, the batches and the dequantisation noise.
    checkpoint_every : int
        Steps between checkpoints.
    """

    iterations: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    grad_clip: float = 50.0
    seed: int = 0
    checkpoint_every: int = 200


@dataclass(frozen=True)
class TrainResult:
    """A trained model and its training curve.

    Attributes
    ----------
    model : FlowModel
    step : int
        Steps done.
    history : list of (int, float)
        (step, training bits/dim averaged since the previous entry).
    """

    model: FlowModel
    step: int
    history: list[tuple[int, float]]


def _batch(n: int, size: int, seed: int, step: int) -> NDArray[np.int64]:
    # Drawn from the step number, so a resumed run sees the same batches.
    return np.random.default_rng([seed, step]).choice(
        n, size=min(size, n), replace=False
    )


def train_flow(
    config: FlowConfig,
    images: NDArray[np.uint8],
    train: TrainConfig,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    data: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train a flow of shape `config` on uint8 `images`, (N, C, S, S).

    Parameters
    ----------
    checkpoint : Path, optional
        Written every ``train.checkpoint_every`` steps and at the end.
    resume : bool
        Continue from `checkpoint` when it exists (its model shape wins).
    data : dict, optional
        How the images were made, stored in the checkpoint.
    progress : callable, optional
        Called as ``progress(step, iterations, bits_per_dim)`` after every step.

    Raises
    ------
    FlowFileError
        If the checkpoint to resume from is not a flow checkpoint, or its images
        have another shape.
    """
    expected = (config.in_channels, config.size, config.size)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise FlowFileError(
            f"the model takes images of shape {expected}, got {images.shape[1:]}"
        )
    torch.manual_seed(train.seed)
    model = FlowModel(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=train.lr)
    step, history = 0, []
    if resume and checkpoint is not None and checkpoint.is_file():
        state = read_checkpoint(checkpoint)
        if FlowConfig.from_dict(state["config"]) != config:
            log.warning("resuming %s with its own model shape", checkpoint)
            config = FlowConfig.from_dict(state["config"])
            model = FlowModel(config)
            optimiser = torch.optim.Adam(model.parameters(), lr=train.lr)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), [tuple(h) for h in state["history"]]
        log.info("resumed %s at step %d", checkpoint, step)
    else:
        _initialise(model, images, train.seed)

    tensor = torch.from_numpy(images)
    model.train()
    running: list[float] = []
    while step < train.iterations:
        for group in optimiser.param_groups:
            group["lr"] = train.lr * min(1.0, (step + 1) / max(train.warmup, 1))
        noise = torch.Generator().manual_seed(train.seed * 1_000_003 + step)
        batch = tensor[_batch(len(tensor), train.batch_size, train.seed, step)]
        loss = bits_per_dim(model, batch, noise).mean()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"training diverged at step {step} (bits/dim {loss.item()}); "
                f"lower --lr or resume from the last checkpoint"
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimiser.step()
        step += 1
        running.append(loss.item())
        if progress:
            progress(step, train.iterations, loss.item())
        if step % train.checkpoint_every == 0 or step == train.iterations:
            history.append((step, float(np.mean(running))))
            running = []
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint, model, optimiser, step, history, train, data or {}
                )
    model.eval()
    return TrainResult(model, step, history)


@torch.no_grad()
def _initialise(model: FlowModel, images: NDArray[np.uint8], seed: int) -> None:
    # Actnorm sets itself from the first batch it sees: give it a large one.
    pick = np.random.default_rng(seed).permutation(len(images))[:512]
    noise = torch.Generator().manual_seed(seed)
    model.encode(dequantise(torch.from_numpy(images[pick]), noise))


def save_checkpoint(
    path: Path,
    model: FlowModel,
    optimiser: torch.optim.Optimizer,
    step: int,
    history: list[tuple[int, float]],
    train: TrainConfig,
    data: dict[str, Any],
) -> None:
    """Write a model file whole or not at all."""
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimiser.state_dict(),
            "step": step,
            "history": [list(h) for h in history],
            "train": asdict(train),
            "data": data,
        },
        buffer,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    log.debug("checkpoint %s at step %d", path, step)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a model file.

    Raises
    ------
    FlowFileError
        If the file is missing or not a flow model file.
    """
    path = Path(path)
    if not path.is_file():
        raise FlowFileError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign file
        raise FlowFileError(
            f"{path} is not a flow model file ({exc.__class__.__name__}); "
            f"give a file written by `seedqa-models flow train`"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FlowFileError(
            f"{path} is not a flow model file; give a file written by "
            f"`seedqa-models flow train`"
        )
    return state


def load_model(path: Path) -> tuple[FlowModel, dict[str, Any]]:
    """Return the model stored in `path`, in eval mode, and the whole checkpoint."""
    state = read_checkpoint(path)
    model = FlowModel(FlowConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


@torch.no_grad()
def evaluate_bits_per_dim(
    model: FlowModel,
    images: NDArray[np.uint8],
    *,
    batch_size: int = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.float64]:
    """Return each image's bits per dimension, (N,), with fixed dequantisation noise."""
    noise = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size])
        out.append(bits_per_dim(model, batch, noise).double().numpy())
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros(0)


def auroc(negative: NDArray[np.floating], positive: NDArray[np.floating]) -> float:
    """Return the area under the ROC curve of a score that should rank `positive` high.

    The probability that a random positive scores above a random negative, ties
    counted half (the Mann-Whitney U statistic over the two sizes).

    Raises
    ------
    ValueError
        If either group is empty.
    """
    if len(negative) == 0 or len(positive) == 0:
        raise ValueError(
            f"AUROC needs both groups, got {len(negative)} negatives and "
            f"{len(positive)} positives"
        )
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([negative, positive]))
    n_neg, n_pos = len(negative), len(positive)
    u = ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_neg * n_pos))
