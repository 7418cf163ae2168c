"""`seedqa-models gan train|sample|balance|eval`: the conditional GAN builder."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the ``gan`` builder and its actions to the `seedqa-models` parser."""
    from models.cli import _data_arguments
    from models.gan.augment import POLICIES

    gan = sub.add_parser(
        "gan",
        help="class-conditional GAN that generates seeds of rare classes",
        description=(
            "Train a class-conditional BigGAN on seed crops, draw seeds from it, "
            "and write class-balanced training folders."
        ),
    )
    verbs = gan.add_subparsers(dest="verb", required=True, metavar="ACTION")

    p = verbs.add_parser(
        "train",
        help="train a generator on seed crops",
        description=(
            "Train on an image folder DIR/<class>/* (or simulated samples). Writes "
            "OUT/checkpoint.safetensors as it goes, OUT/samples/step_*.png grids "
            "(one row per class) and, at the end, OUT/generator.safetensors."
        ),
    )
    _data_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--iterations", type=int, default=2000, help="training steps (2000)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (32)")
    p.add_argument(
        "--channels", type=int, default=16, help="width of the networks (16)"
    )
    p.add_argument("--lr-g", type=float, default=2e-4, help="generator Adam lr")
    p.add_argument("--lr-d", type=float, default=2e-4, help="discriminator Adam lr")
    p.add_argument(
        "--augment",
        nargs="*",
        choices=POLICIES,
        default=list(POLICIES),
        help="differentiable augmentations (all three; none: give the flag alone)",
    )
    p.add_argument(
        "--no-balanced",
        action="store_true",
        help="draw real images uniformly, not class-balanced",
    )
    p.add_argument("--resume", action="store_true", help="continue OUT's checkpoint")
    p.add_argument(
        "--checkpoint-every", type=int, default=250, help="steps per checkpoint (250)"
    )
    p.add_argument(
        "--sample-every", type=int, default=250, help="steps per sample grid (250)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (0)")
    p.set_defaults(run=cmd_train)

    p = verbs.add_parser(
        "sample",
        help="draw N seeds per class from a generator",
        description="Write OUT/<class>/gan-<seed>-<n>.png for every chosen class.",
    )
    p.add_argument("--generator", type=Path, required=True, help="generator file")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--per-class", type=int, default=64, help="images per class (64)")
    p.add_argument("--classes", nargs="+", help="classes to draw (default: all)")
    p.add_argument(
        "--grid", action="store_true", help="also write OUT/grid.png (8 per class)"
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    p.set_defaults(run=cmd_sample)

    p = verbs.add_parser(
        "balance",
        help="write a class-balanced training folder (real + generated)",
        description=(
            "Copy the real crops to OUT/<class>/real-*.png and top up the classes "
            "below the largest (or --target) with generated OUT/<class>/gan-*.png; "
            "OUT/manifest.json lists every file and its source. Train on it with "
            "`seedqa-models classifier train --data OUT --ready-crops`."
        ),
    )
    _data_arguments(p)
    p.add_argument("--generator", type=Path, required=True, help="generator file")
    p.add_argument("--out", type=Path, required=True, help="new output folder")
    p.add_argument("--target", type=int, help="images per class (default: largest)")
    p.add_argument("--classes", nargs="+", help="classes to top up (default: all)")
    p.add_argument("--seed", type=int, default=0, help="noise and sample seed (0)")
    p.set_defaults(run=cmd_balance)

    p = verbs.add_parser(
        "eval",
        help="judge generated seeds with a classifier bundle",
        description=(
            "Per class: the bundle's accuracy on generated seeds, KID, precision, "
            "recall, density and coverage against real crops, in the bundle's "
            "feature space."
        ),
    )
    _data_arguments(p)
    p.add_argument("--generator", type=Path, required=True, help="generator file")
    p.add_argument("--model", type=Path, required=True, help="classifier bundle")
    p.add_argument("--per-class", type=int, default=200, help="images per class")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    p.set_defaults(run=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a generator."""
    import numpy as np

    from models.cli import _load_data
    from models.gan.train import GanConfig, train_gan

    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    data = _load_data(args)
    if len(data) < 2:
        raise ValueError(f"only {len(data)} crops to train on; give more data")
    # A folder may hold a subset of a recipe's classes: learn only those present.
    present = [c for c, n in data.counts().items() if n]
    relabel = {data.classes.index(c): new for new, c in enumerate(present)}
    config = GanConfig(
        size=args.size,
        channels=args.channels,
        # 16 noise values for the first layer and for each block.
        z_dim=16 * (int(np.log2(max(args.size, 4))) - 1),
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        augment=tuple(args.augment),
        balanced=not args.no_balanced,
        seed=args.seed,
    )
    train_gan(
        data.crops,
        np.array([relabel[int(v)] for v in data.labels], np.int64),
        tuple(present),
        config,
        out_dir=args.out,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
        trained_on=dict(data.source),
    )
    print(f"generator written to {args.out / 'generator.safetensors'}")
    print(f"sample grids in {args.out / 'samples'}")
    return 0


def _class_indices(info: Any, names: list[str] | None) -> list[int]:
    if names is None:
        return list(range(len(info.classes)))
    unknown = [c for c in names if c not in info.classes]
    if unknown:
        raise ValueError(
            f"the generator does not know classes {unknown} "
            f"(its classes: {list(info.classes)})"
        )
    return [info.classes.index(c) for c in names]


def cmd_sample(args: argparse.Namespace) -> int:
    """Draw seeds from a generator."""
    from appliance.imageio import write_png
    from models.gan.generator_file import load_generator
    from models.gan.sampling import grid, sample_class

    if args.per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {args.per_class}")
    generator, info = load_generator(args.generator)
    chosen = _class_indices(info, args.classes)
    rows = []
    for c in chosen:
        images = sample_class(generator, c, args.per_class, seed=args.seed)
        for j, image in enumerate(images):
            write_png(
                args.out / info.classes[c] / f"gan-{args.seed}-{j:06d}.png", image
            )
        rows.append(images[:8])
        print(f"{info.classes[c]:<20} {len(images)} images")
    if args.grid:
        write_png(args.out / "grid.png", grid(_stack(rows), min(8, args.per_class)))
    print(f"written to {args.out}")
    return 0


def _stack(rows: list[Any]) -> Any:
    import numpy as np

    return np.concatenate(rows)


def cmd_balance(args: argparse.Namespace) -> int:
    """Write a balanced training folder."""
    from models.cli import _load_data, _progress_bar
    from models.gan.balance import write_balanced_folder
    from models.gan.generator_file import load_generator

    generator, info = load_generator(args.generator)
    data = _load_data(args)
    manifest = write_balanced_folder(
        data,
        generator,
        info,
        args.out,
        generator_path=args.generator,
        seed=args.seed,
        target=args.target,
        classes=args.classes,
        progress=_progress_bar("writing images"),
    )
    print(f"{'class':<20} {'real':>6} {'generated':>10}")
    for name, n in manifest["counts"].items():
        print(f"{name:<20} {n['real']:>6} {n['generated']:>10}")
    print(f"balanced folder written to {args.out} (manifest: manifest.json)")
    print(
        f"train on it: seedqa-models classifier train --data {args.out} --ready-crops"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Judge a generator's seeds with a classifier bundle."""
    import numpy as np

    from appliance.bundle import load_bundle
    from appliance.classifier import SeedClassifier
    from models.cli import _load_data
    from models.gan.generator_file import load_generator
    from models.gan.quality import generated_quality
    from models.gan.sampling import sample_class

    generator, info = load_generator(args.generator)
    classifier = SeedClassifier(load_bundle(args.model), numeric="fp32")
    data = _load_data(args, classes=info.classes)
    fake = np.concatenate(
        [
            sample_class(generator, c, args.per_class, seed=args.seed)
            for c in range(len(info.classes))
        ]
    )
    fake_labels = np.repeat(np.arange(len(info.classes)), args.per_class)
    report = generated_quality(
        classifier, data.crops, data.labels, fake, fake_labels, info.classes
    )
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"{'class':<20} {'acc':>6} {'KID':>8} {'prec':>6} {'recall':>6} "
        f"{'dens':>6} {'cover':>6}"
    )
    for name, row in [*report["per_class"].items(), ("all", report["overall"])]:
        print(f"{name:<20} " + " ".join(_fmt(row.get(k)) for k in _COLUMNS))
    return 0


_COLUMNS = ("accuracy", "kid", "precision", "recall", "density", "coverage")


def _fmt(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.3f}"
