"""Training the conditional GAN: hinge loss, EMA generator, checkpoints and resume.

Every random draw of step ``t`` (real batch, noise, classes, augmentation) comes
from a generator seeded by the run's seed and ``t``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one. Checkpoints are safetensors
files (the three networks and both optimisers' moments) with the rest of the
state as JSON in their header: nothing is pickled.
"""

from __future__ import annotations

import copy
import json
import logging
import time
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
from tqdm import tqdm

from appliance.files import write_atomic
from appliance.imageio import write_png
from models.gan.augment import POLICIES, diff_augment
from models.gan.generator_file import save_generator, standing_statistics
from models.gan.network import Discriminator, GanShape, Generator
from models.gan.sampling import grid, to_uint8

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "seedqa.gan.checkpoint"

#: Steps per logged mean loss.
LOG_EVERY = 50


@dataclass(frozen=True)
class GanConfig:
    """How to train the GAN.

    Attributes
    ----------
    size, channels, z_dim, embed_dim : int
        The networks' shape (see `GanShape`).
    iterations : int
        Discriminator-and-generator steps.
    batch_size : int
        Real images (and as many generated ones) per step.
    lr_g, lr_d : float
        Adam learning rates of the generator and discriminator.
    beta1, beta2 : float
        Adam's moment decays.
    ema_decay : float
        Decay of the exponential moving average of the generator's weights; the
        effective decay ramps up from 0 over the first steps.
    augment : tuple of str
        Differentiable augmentations (see `diff_augment`); empty for none.
    balanced : bool
        Draw real images class-balanced, so rare classes are seen as often.
    seed : int
        Seeds every random choice of the run.
    """

    size: int = 64
    channels: int = 16
    z_dim: int = 80
    embed_dim: int = 64
    iterations: int = 2000
    batch_size: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.999
    ema_decay: float = 0.999
    augment: tuple[str, ...] = POLICIES
    balanced: bool = True
    seed: int = 0

    def shape(self, n_classes: int) -> GanShape:
        """Return the networks' shape for `n_classes` classes."""
        return GanShape(n_classes, self.size, self.channels, self.z_dim, self.embed_dim)


@dataclass
class GanHistory:
    """Mean losses per logging interval, and the losses of the current one."""

    step: list[int] = field(default_factory=list)
    loss_d: list[float] = field(default_factory=list)
    loss_g: list[float] = field(default_factory=list)
    pending_d: list[float] = field(default_factory=list)
    pending_g: list[float] = field(default_factory=list)

    def add(self, loss_d: float, loss_g: float) -> None:
        """Record one step's losses."""
        self.pending_d.append(loss_d)
        self.pending_g.append(loss_g)

    def close_interval(self, step: int) -> None:
        """Turn the pending losses into one logged mean at `step`."""
        if not self.pending_d:
            return
        self.step.append(step)
        self.loss_d.append(float(np.mean(self.pending_d)))
        self.loss_g.append(float(np.mean(self.pending_g)))
        self.pending_d, self.pending_g = [], []


@dataclass
class GanState:
    """The three networks, the optimisers and how far training has gone."""

    generator: Generator
    discriminator: Discriminator
    ema: Generator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    step: int = 0
    history: GanHistory = field(default_factory=GanHistory)


def new_state(shape: GanShape, config: GanConfig) -> GanState:
    """Return freshly initialised networks and optimisers, seeded by the config."""
    torch.manual_seed(config.seed)
    g = Generator(shape)
    d = Discriminator(shape)
    ema = copy.deepcopy(g).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    betas = (config.beta1, config.beta2)
    return GanState(
        g,
        d,
        ema,
        torch.optim.Adam(g.parameters(), lr=config.lr_g, betas=betas),
        torch.optim.Adam(d.parameters(), lr=config.lr_d, betas=betas),
    )


def images_to_tensor(crops: NDArray[np.uint8]) -> torch.Tensor:
    """(N, S, S, 3) uint8 crops as (N, 3, S, S) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def train_gan(
    crops: NDArray[np.uint8],
    labels: NDArray[np.int64],
    classes: tuple[str, ...],
    config: GanConfig,
    *,
    out_dir: Path,
    resume: bool = False,
    checkpoint_every: int = 500,
    sample_every: int = 500,
    show_progress: bool = True,
    stop_after: int | None = None,
    trained_on: dict[str, Any] | None = None,
    on_step: Callable[[GanState], None] | None = None,
) -> GanState:
    """Train a conditional GAN on seed crops; write checkpoints, grids, generator.

    Parameters
    ----------
    crops : (N, S, S, 3) uint8 ndarray
        Seed crops on black, S equal to ``config.size``.
    labels : (N,) int ndarray
        Index into `classes`.
    out_dir : Path
        Receives ``checkpoint.safetensors`` (every `checkpoint_every` steps and at
        the end), ``samples/step_NNNNNN.png`` grids (one row per class, from the
        EMA generator) and, when all iterations are done, ``generator.safetensors``.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors`` if it exists.
    stop_after : int, optional
        Stop (with a checkpoint) after this many steps in total, as an
        interruption would; the generator file is then not written.

    Raises
    ------
    ValueError
        If the crops do not match the configured size, a class has no crops, or
        the checkpoint was written with another configuration.
    """
    size = config.size
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(
            f"expected crops of shape (N, {size}, {size}, 3), got {crops.shape}; "
            f"cut them at --size {size}"
        )
    counts = np.bincount(labels, minlength=len(classes))
    if (counts == 0).any():
        empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        raise ValueError(f"classes {empty} have no crops to learn from")

    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.safetensors"
    shape = config.shape(len(classes))
    state = new_state(shape, config)
    if resume and ckpt.exists():
        load_checkpoint(ckpt, state, config, classes)
        log.info("resumed %s at step %d", ckpt, state.step)

    real = images_to_tensor(crops)
    y_all = torch.from_numpy(labels.astype(np.int64))
    weights = torch.from_numpy(
        (1.0 / counts[labels]) if config.balanced else np.ones(len(labels))
    )
    end = (
        config.iterations if stop_after is None else min(stop_after, config.iterations)
    )
    bar = tqdm(
        total=end,
        initial=state.step,
        desc="GAN training",
        unit="step",
        disable=not show_progress,
        leave=False,
    )
    started = time.perf_counter()
    while state.step < end:
        rng = torch.Generator().manual_seed(config.seed * 1_000_003 + state.step)
        idx = torch.multinomial(weights, config.batch_size, True, generator=rng)
        loss_d, loss_g = _step(state, real[idx], y_all[idx], config, rng)
        state.history.add(loss_d, loss_g)
        state.step += 1
        bar.update(1)
        if state.step % LOG_EVERY == 0 or state.step == config.iterations:
            state.history.close_interval(state.step)
            bar.set_postfix(d=f"{loss_d:.3f}", g=f"{loss_g:.3f}")
            log.debug("step %d: D loss %.3f, G loss %.3f", state.step, loss_d, loss_g)
        if state.step % sample_every == 0 or state.step == end:
            write_png(
                out_dir / "samples" / f"step_{state.step:06d}.png",
                sample_grid(state.ema, len(classes), shape.z_dim, seed=config.seed),
            )
        if state.step % checkpoint_every == 0 or state.step == end:
            save_checkpoint(ckpt, state, config, classes)
        if on_step:
            on_step(state)
    bar.close()
    seconds = time.perf_counter() - started
    log.info("GAN trained to step %d in %.0f s", state.step, seconds)

    if state.step >= config.iterations:
        standing_statistics(state.ema, len(classes), shape.z_dim, seed=config.seed)
        save_generator(
            out_dir / "generator.safetensors",
            state.ema,
            classes=classes,
            config=asdict(config),
            trained_on={
                **(trained_on or {}),
                "counts": {c: int(n) for c, n in zip(classes, counts, strict=True)},
                "seconds_last_run": round(seconds, 1),
            },
            history=asdict(state.history),
        )
    return state


def _step(
    state: GanState,
    x_real: torch.Tensor,
    y: torch.Tensor,
    config: GanConfig,
    rng: torch.Generator,
) -> tuple[float, float]:
    """One discriminator and one generator update with the hinge loss."""
    g, d = state.generator, state.discriminator
    n = len(y)
    flip = torch.rand((n, 1, 1, 1), generator=rng) < 0.5
    x_real = torch.where(flip, x_real.flip(3), x_real)
    z = torch.randn((n, config.z_dim), generator=rng)

    g.train()
    d.train()
    with torch.no_grad():
        x_fake = g(z, y)
    real_score = d(diff_augment(x_real, config.augment, rng), y)
    fake_score = d(diff_augment(x_fake, config.augment, rng), y)
    loss_d = F.relu(1.0 - real_score).mean() + F.relu(1.0 + fake_score).mean()
    state.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    state.opt_d.step()

    z = torch.randn((n, config.z_dim), generator=rng)
    y_fake = torch.multinomial(
        torch.ones(state.generator.shape.n_classes), n, True, generator=rng
    )
    loss_g = -d(diff_augment(g(z, y_fake), config.augment, rng), y_fake).mean()
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()

    _update_ema(state, config.ema_decay)
    return loss_d.item(), loss_g.item()


def _update_ema(state: GanState, decay: float) -> None:
    """Move the EMA generator towards the generator; copy its buffers."""
    ramp = min(decay, (1.0 + state.step) / (10.0 + state.step))
    with torch.no_grad():
        for e, p in zip(
            state.ema.parameters(), state.generator.parameters(), strict=True
        ):
            e.lerp_(p, 1.0 - ramp)
        for e, b in zip(state.ema.buffers(), state.generator.buffers(), strict=True):
            e.copy_(b)


def sample_grid(
    generator: Generator, n_classes: int, z_dim: int, *, seed: int, per_class: int = 8
) -> NDArray[np.uint8]:
    """One row of `per_class` images per class from a copy of `generator`.

    The copy gets standing batch statistics first, so the grid shows what the
    generator file would produce.
    """
    g = copy.deepcopy(generator)
    standing_statistics(g, n_classes, z_dim, seed=seed, batches=4)
    rng = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    z = torch.randn((len(y), z_dim), generator=rng)
    with torch.no_grad():
        images = to_uint8(g.eval()(z, y))
    return grid(images, per_class)


def save_checkpoint(
    path: Path, state: GanState, config: GanConfig, classes: tuple[str, ...]
) -> None:
    """Write the whole training state as a safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, net in (
        ("g", state.generator),
        ("d", state.discriminator),
        ("ema", state.ema),
    ):
        for k, v in net.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.detach().contiguous()
    groups = {}
    for prefix, opt in (("opt_g", state.opt_g), ("opt_d", state.opt_d)):
        opt_state = opt.state_dict()
        groups[prefix] = opt_state["param_groups"]
        for pid, s in opt_state["state"].items():
            for key, value in s.items():
                tensors[f"{prefix}.{pid}.{key}"] = torch.as_tensor(value).contiguous()
    meta = {
        "step": state.step,
        "config": asdict(config),
        "classes": list(classes),
        "param_groups": groups,
        "history": asdict(state.history),
    }
    data = save(tensors, metadata={CHECKPOINT_KEY: json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def load_checkpoint(
    path: Path, state: GanState, config: GanConfig, classes: tuple[str, ...]
) -> None:
    """Restore in place the state written by `save_checkpoint`.

    Raises
    ------
    ValueError
        If the checkpoint was written with another configuration or classes.
    """
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {})[CHECKPOINT_KEY])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    expected = json.loads(json.dumps(asdict(config)))
    if meta["config"] != expected or meta["classes"] != list(classes):
        raise ValueError(
            f"checkpoint {path} was written with another configuration or classes "
            f"({meta['config']}, {meta['classes']}); delete it or train with the "
            "same settings"
        )
    for prefix, net in (
        ("g", state.generator),
        ("d", state.discriminator),
        ("ema", state.ema),
    ):
        n = len(prefix) + 1
        net.load_state_dict(
            {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        )
    for prefix, opt in (("opt_g", state.opt_g), ("opt_d", state.opt_d)):
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix + "."):
                _, pid, name = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = value
        opt.load_state_dict(
            {"state": opt_state, "param_groups": meta["param_groups"][prefix]}
        )
    state.step = int(meta["step"])
    state.history = GanHistory(**meta["history"])
