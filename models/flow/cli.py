"""`seedqa-models flow train|sample|bpd|bench`: the CInC normalizing flow."""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `flow` builder and its actions to `sub`."""
    flow = sub.add_parser(
        "flow",
        help="the CInC normalizing flow (and its Glow and Emerging baselines)",
        description="Train, sample, score and time multi-scale normalizing flows.",
    )
    verbs = flow.add_subparsers(dest="verb", required=True, metavar="ACTION")

    p = verbs.add_parser(
        "train",
        help="train a flow by maximum likelihood",
        description="Train a flow on digits or seed crops. The model file is "
        "written every --checkpoint-every steps; --resume continues from it.",
    )
    _data_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.add_argument(
        "--mixing",
        choices=["glow", "emerging", "cinc"],
        default="cinc",
        help="the invertible convolution of each step (cinc)",
    )
    p.add_argument(
        "--coupling",
        choices=["affine", "quad"],
        default="affine",
        help="affine coupling or Quad-coupling (affine)",
    )
    p.add_argument("--levels", type=int, default=3, help="scales, L (3)")
    p.add_argument("--steps", type=int, default=8, help="steps per level, D (8)")
    width = p.add_mutually_exclusive_group()
    width.add_argument("--hidden", type=int, help="coupling channels (128)")
    width.add_argument(
        "--parameters",
        type=int,
        help="pick the coupling width that gives about this many weights",
    )
    p.add_argument("--kernel-size", type=int, default=3, help="conv side, odd (3)")
    p.add_argument("--iterations", type=int, default=2000, help="steps (2000)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (64)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (1e-3)")
    p.add_argument(
        "--checkpoint-every", type=int, default=200, help="steps between saves (200)"
    )
    p.add_argument("--resume", action="store_true", help="continue from --out")
    p.add_argument("--threads", type=int, help="CPU threads (torch's default)")
    p.set_defaults(run=cmd_train)

    p = verbs.add_parser(
        "sample",
        help="draw images from a model as a grid",
        description="Draw images and write them as one PNG grid.",
    )
    p.add_argument("--model", type=Path, required=True, help="model file")
    p.add_argument("--out", type=Path, required=True, help="PNG grid to write")
    p.add_argument("-n", "--count", type=int, default=64, help="images (64)")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.7,
        help="latent standard deviation scale; below 1 is cleaner (0.7)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")
    p.set_defaults(run=cmd_sample)

    p = verbs.add_parser(
        "bpd",
        help="bits per dimension of images, and AUROC as a novelty score",
        description="Score images by bits per dimension. With --against, also "
        "report how well the score separates those classes (novel) from the "
        "scored ones (AUROC).",
    )
    _data_arguments(p)
    p.add_argument("--model", type=Path, required=True, help="model file")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="score only the images the model held out in training",
    )
    p.add_argument(
        "--against",
        nargs="+",
        metavar="CLASS",
        help="classes of the same data to count as novel (with --data)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(run=cmd_bpd)

    p = verbs.add_parser(
        "bench",
        help="time sampling for Glow, Emerging and CInC at the same depth",
        description="Time drawing RGB images for every variant, and the CInC "
        "inverse against its pixel-by-pixel reference, in this process.",
    )
    p.add_argument("--images", type=int, default=100, help="images drawn (100)")
    p.add_argument("--size", type=int, default=32, help="image side (32)")
    p.add_argument("--levels", type=int, default=3, help="scales (3)")
    p.add_argument("--steps", type=int, default=8, help="steps per level (8)")
    p.add_argument("--hidden", type=int, default=128, help="coupling width (128)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    p.add_argument("--repeats", type=int, default=2, help="best of this many (2)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(run=cmd_bench)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--digits",
        action="store_true",
        help="scikit-learn's bundled 8x8 digits, upsampled to --size (16)",
    )
    src.add_argument(
        "--data",
        type=Path,
        help="single seeds masked on black, DIR/<class>/*.png|jpg",
    )
    src.add_argument(
        "--simulated", type=int, metavar="N", help="seed crops of N rig samples"
    )
    p.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="with --data: use only these class folders (e.g. grain)",
    )
    p.add_argument(
        "--size", type=int, help="image side (16 for digits, 32 for seed crops)"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of images held out from training (0.2)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every choice (0)")


def _progress(what: str):  # noqa: ANN202
    from models.cli import _progress_bar

    return _progress_bar(what, unit="img")


def _load(args: argparse.Namespace, classes: list[str] | None = None) -> Any:
    from models.flow.data import digits, folder_images, simulated_images

    if args.digits:
        return digits(size=args.size or 16)
    size = args.size or 32
    if args.simulated is not None:
        if args.simulated < 1:
            raise ValueError(f"--simulated must be at least 1, got {args.simulated}")
        return simulated_images(
            args.simulated, size=size, seed=args.seed, progress=_progress("rendering")
        )
    return folder_images(
        args.data, size=size, classes=classes, progress=_progress("reading crops")
    )


def _training_part(
    args: argparse.Namespace, data: Any
) -> tuple[Any, Any, dict[str, Any]]:
    from models.flow.data import held_out_split

    if args.classes and not args.data:
        raise ValueError("--classes needs --data")
    chosen = data.of_classes(args.classes) if args.classes else data
    train, held = held_out_split(
        len(chosen), fraction=args.val_fraction, seed=args.seed
    )
    source = dict(chosen.source)
    source.update(
        classes=list(args.classes or chosen.classes),
        val_fraction=args.val_fraction,
        split_seed=args.seed,
        images=len(chosen),
    )
    return chosen.subset(train), chosen.subset(held), source


def cmd_train(args: argparse.Namespace) -> int:
    """Train a flow and write its model file."""
    import torch
    from tqdm import tqdm

    from models.flow.model import FlowConfig, FlowModel, hidden_for, parameter_count
    from models.flow.train import TrainConfig, evaluate_bits_per_dim, train_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    data = _load(args, classes=args.classes)
    train_set, held_set, source = _training_part(args, data)
    if len(train_set) < 2:
        raise ValueError(f"only {len(train_set)} images to train on; give more data")
    config = FlowConfig(
        in_channels=int(data.images.shape[1]),
        size=int(data.images.shape[2]),
        levels=args.levels,
        steps=args.steps,
        hidden=args.hidden or 128,
        mixing=args.mixing,
        coupling=args.coupling,
        kernel_size=args.kernel_size,
    )
    if args.parameters:
        config = replace(config, hidden=hidden_for(config, args.parameters))
    with torch.device("meta"):
        weights = parameter_count(FlowModel(config))
    print(
        f"training {config.mixing}+{config.coupling} (L={config.levels}, "
        f"D={config.steps}, hidden {config.hidden}, {weights:,} weights) on "
        f"{len(train_set)} images, {len(held_set)} held out"
    )
    train = TrainConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    bar = tqdm(total=args.iterations, desc="training", unit="step")

    def progress(step: int, total: int, bpd: float) -> None:
        bar.n = step
        bar.set_postfix(bpd=f"{bpd:.3f}", refresh=False)
        bar.refresh()

    try:
        result = train_flow(
            config,
            train_set.images,
            train,
            checkpoint=args.out,
            resume=args.resume,
            data=source,
            progress=progress,
        )
    finally:
        bar.close()
    line = f"trained {result.step} steps; model written to {args.out}"
    if len(held_set):
        bpd = evaluate_bits_per_dim(result.model, held_set.images)
        line += f"; held-out bits/dim {bpd.mean():.4f} over {len(held_set)} images"
    print(line)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Draw images from a model and write them as a grid."""
    import torch

    from appliance.imageio import write_png
    from models.flow.model import to_uint8
    from models.flow.train import load_model

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    model, _ = load_model(args.model)
    generator = torch.Generator().manual_seed(args.seed)
    images = to_uint8(
        model.sample(args.count, temperature=args.temperature, generator=generator)
    ).numpy()
    write_png(args.out, image_grid(images))
    print(
        f"{args.count} samples at temperature {args.temperature} written to {args.out}"
    )
    return 0


def image_grid(images: NDArray[np.uint8], gap: int = 2) -> NDArray[np.uint8]:
    """Tile (N, C, S, S) uint8 images into one (H, W) or (H, W, 3) image."""
    n, c, s, _ = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (s + gap) + gap, cols * (s + gap) + gap, c), np.uint8)
    for k, image in enumerate(images):
        r, q = divmod(k, cols)
        top, left = gap + r * (s + gap), gap + q * (s + gap)
        grid[top : top + s, left : left + s] = image.transpose(1, 2, 0)
    return grid[:, :, 0] if c == 1 else grid


def cmd_bpd(args: argparse.Namespace) -> int:
    """Score images by bits per dimension; AUROC against novel classes."""
    from models.flow.train import auroc, evaluate_bits_per_dim, load_model

    model, state = load_model(args.model)
    config = model.config
    if args.size is None:
        args.size = config.size
    if args.against and not args.data:
        raise ValueError("--against names classes of --data; give --data")
    trained = state.get("data", {})
    if args.held_out:
        args.val_fraction = float(trained.get("val_fraction", args.val_fraction))
        args.seed = int(trained.get("split_seed", args.seed))
        if args.classes is None and args.data and trained.get("classes"):
            args.classes = list(trained["classes"])
    wanted = [*args.classes, *args.against] if args.classes and args.against else None
    data = _load(args, classes=wanted)
    expected = (config.in_channels, config.size, config.size)
    if tuple(data.images.shape[1:]) != expected:
        raise ValueError(
            f"the model takes images of shape {expected}; the data are "
            f"{tuple(data.images.shape[1:])} (check --size and the image kind)"
        )
    if args.held_out:
        _, scored, _ = _training_part(args, data)
    else:
        scored = data.of_classes(args.classes) if args.classes else data
    bpd = evaluate_bits_per_dim(model, scored.images, progress=_progress("scoring"))
    report: dict[str, Any] = {
        "model": str(args.model),
        "images": len(scored),
        "held_out": bool(args.held_out),
        "bits_per_dim": float(bpd.mean()),
        "bits_per_dim_std": float(bpd.std()),
    }
    if args.against:
        novel = data.of_classes(args.against)
        novel_bpd = evaluate_bits_per_dim(model, novel.images)
        report["novel"] = {
            "classes": list(args.against),
            "images": len(novel),
            "bits_per_dim": float(novel_bpd.mean()),
            "auroc": auroc(bpd, novel_bpd),
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"images            {report['images']}")
    print(f"bits/dim          {report['bits_per_dim']:.4f} (std {bpd.std():.4f})")
    if args.against:
        print(f"novel images      {report['novel']['images']} of {args.against}")
        print(f"novel bits/dim    {report['novel']['bits_per_dim']:.4f}")
        print(f"novelty AUROC     {report['novel']['auroc']:.4f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time sampling for every variant."""
    from models.flow.timing import run_benchmark

    result = run_benchmark(
        n=args.images,
        size=args.size,
        levels=args.levels,
        steps=args.steps,
        hidden=args.hidden,
        threads=args.threads,
        repeats=args.repeats,
        progress=lambda line: log.info("%s", line),
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"sampling {args.images} images of 3x{args.size}x{args.size}, seconds")
    for name, seconds in result["sampling_s"].items():  # type: ignore[attr-defined]
        print(f"  {name:<28} {seconds:8.3f}")
    print("one 3x3 layer's inverse, seconds")
    inverses: dict[str, float] = result["layer_inverse_s"]  # type: ignore[assignment]
    for name, seconds in inverses.items():
        print(f"  {name:<28} {seconds:8.3f}")
    print("ratios")
    for name, value in result["ratios"].items():  # type: ignore[attr-defined]
        print(f"  {name:<62} {value:7.2f}")
    return 0
