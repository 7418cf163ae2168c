"""`seedqa-models`: the offline model builders.

Exit status: 0 on success, 2 for a user's mistake (bad path, bad dataset, bad
bundle), 1 for a fault.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("seedqa_models")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `seedqa-models` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from appliance.logs import configure_logging

    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from appliance.bundle import BundleError
    from appliance.store.labelling import RoundNotFound
    from models.classifier.data import DatasetError

    try:
        return int(args.run(args) or 0)
    except (
        BundleError,
        DatasetError,
        FileNotFoundError,
        ValueError,
        RoundNotFound,
    ) as exc:
        print(f"seedqa-models: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "seedqa-models: interrupted; the last checkpoint is kept", file=sys.stderr
        )
        return 130
    except Exception:
        log.exception("seedqa-models %s failed", args.command)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every builder."""
    parser = argparse.ArgumentParser(
        prog="seedqa-models",
        description="Build the models the inspection appliance loads.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="BUILDER")

    classifier = sub.add_parser("classifier", help="the ResNet18 seed classifier")
    verbs = classifier.add_subparsers(dest="verb", required=True, metavar="ACTION")

    p = verbs.add_parser("train", help="train a classifier and write its bundle")
    _data_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="bundle file to write")
    p.add_argument("--name", default="classifier", help="bundle name (classifier)")
    p.add_argument("--version", default="1", help="bundle version (1)")
    p.add_argument(
        "--pure",
        nargs="+",
        default=None,
        help="classes that count as pure (default: 'pure', or 'grain')",
    )
    p.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    p.add_argument("--batch-size", type=int, default=64, help="crops per step (64)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    p.add_argument(
        "--balanced",
        action="store_true",
        help="class-balanced sampling of training crops",
    )
    p.add_argument(
        "--class-weighted",
        action="store_true",
        help="weigh the loss of each crop inverse to its class's frequency",
    )
    p.add_argument(
        "--init-weights",
        type=Path,
        help="local ImageNet ResNet18 weights (.safetensors or .pth)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of samples or images held out for validation (0.2)",
    )
    p.add_argument(
        "--checkpoint", type=Path, help="checkpoint file, written after every epoch"
    )
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument(
        "--max-flips",
        type=int,
        default=1,
        choices=[0, 1, 3],
        help="most flipped copies of a crop averaged at inference, each one more "
        "forward pass; the set used is chosen on validation (1)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (0)"
    )
    p.add_argument(
        "--round",
        type=int,
        metavar="ID",
        help="record the new model's validation accuracy on this labelling round",
    )
    p.add_argument(
        "--val-data",
        type=Path,
        metavar="DIR",
        help="fixed validation folder DIR/<class>/* for --round (default: the "
        "held-out part of the training data)",
    )
    p.set_defaults(run=cmd_train)

    recipe = sub.add_parser("recipe", help="build and install a recipe's model bundle")
    recipe_verbs = recipe.add_subparsers(dest="verb", required=True, metavar="ACTION")
    p = recipe_verbs.add_parser(
        "build",
        help="train the recipe's bundle and install it",
        description='Train the recipe\'s bundle as its "build" section says and '
        "install it. Keys: source (simulated or folder), samples (simulated "
        "samples), data, ready_crops, crop_side_px (the image folder and how its "
        "photographs are cut), size (input px), epochs, balanced, seed, "
        "light_jitter (scale of the brightness, contrast and saturation "
        "augmentation, 1 by default), max_test_time_flips, version.",
    )
    p.add_argument("name", help="recipe name (see `seedqa recipes`)")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the bundle is already installed",
    )
    p.add_argument("--data", type=Path, help="override the recipe's image folder")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.set_defaults(run=cmd_recipe_build)

    p = verbs.add_parser("eval", help="evaluate a bundle on labelled crops")
    _data_arguments(p)
    p.add_argument("--model", type=Path, required=True, help="bundle file")
    p.add_argument(
        "--numeric",
        choices=["auto", "fp32", "int8"],
        default="auto",
        help="arithmetic at inference (auto: as the bundle recommends)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--seed", type=int, default=99, help="seed of simulated evaluation samples (99)"
    )
    p.set_defaults(run=cmd_eval)

    from models.active.cli import register as register_active
    from models.flow.cli import register as register_flow
    from models.gan.cli import register as register_gan

    register_flow(sub)
    register_gan(sub)
    register_active(sub)
    return parser


def _data_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="image folder DIR/<class>/*.png|jpg")
    src.add_argument(
        "--simulated",
        type=int,
        metavar="N",
        help="render N samples on the simulated rig",
    )
    src.add_argument(
        "--from-db",
        action="store_true",
        help="the seeds labelled in the annotation screen (the settings' database)",
    )
    p.add_argument(
        "--ready-crops",
        action="store_true",
        help="images are single seeds already masked on black",
    )
    p.add_argument("--size", type=int, default=64, help="crop side in pixels (64)")
    p.add_argument(
        "--crop-side",
        type=float,
        metavar="PX",
        help="ready crops: cut a fixed PX of each image, keeping seed size",
    )


def _load_data(args: argparse.Namespace, classes: Sequence[str] | None = None) -> Any:
    from models.classifier.data import folder_crops, simulated_crops

    if getattr(args, "from_db", False):
        from models.active.pool import database_training_crops

        return database_training_crops(classes)
    bar = _progress_bar("rendering samples" if args.simulated else "cutting crops")
    if args.simulated is not None:
        if args.simulated < 1:
            raise ValueError(f"--simulated must be at least 1, got {args.simulated}")
        return simulated_crops(
            args.simulated, size=args.size, seed=args.seed, progress=bar
        )
    return folder_crops(
        args.data,
        size=args.size,
        ready=args.ready_crops,
        classes=classes,
        side_px=args.crop_side,
        progress=bar,
    )


def _progress_bar(what: str, unit: str = "item"):  # noqa: ANN202
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=what, unit=unit, leave=False)
        state["bar"].n = done
        state["bar"].refresh()
        if done >= total:
            state["bar"].close()

    return update


def cmd_train(args: argparse.Namespace) -> int:
    """Train a classifier bundle."""
    from models.classifier.build import build_bundle
    from models.classifier.train import TrainConfig

    data = _load_data(args)
    if len(data) < 10:
        raise ValueError(f"only {len(data)} crops to train on; give more data")
    pure = tuple(args.pure or (["grain"] if "grain" in data.classes else ["pure"]))
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        balanced=args.balanced,
        class_weighted=args.class_weighted,
        seed=args.seed,
    )
    report = build_bundle(
        data,
        args.out,
        pure_classes=pure,
        config=config,
        name=args.name,
        version=args.version,
        val_fraction=args.val_fraction,
        init_weights=args.init_weights,
        checkpoint=args.checkpoint,
        resume=args.resume,
        max_flips=args.max_flips,
    )
    _print_metrics(report, as_json=False)
    if args.round is not None:
        _record_round(args, report)
    print(f"bundle written to {report['bundle']} (sha256 {report['sha256'][:16]}...)")
    print(f"curves: {report['curves']}; confusion matrix: {report['confusion_image']}")
    return 0


def _record_round(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Store the new model's validation accuracy on a labelling round."""
    from appliance.bundle import load_bundle
    from appliance.classifier import SeedClassifier
    from appliance.settings import Settings
    from appliance.store import Database, record_accuracy

    accuracy = float(report["accuracy"])
    if args.val_data is not None:
        bundle = load_bundle(Path(report["bundle"]))
        side = args.crop_side or bundle.info.crop.get("ready_side_px")
        from models.classifier.data import folder_crops

        val = folder_crops(
            args.val_data,
            size=bundle.info.input_size,
            ready=args.ready_crops,
            classes=bundle.info.classes,
            side_px=float(side) if side else None,
        )
        predicted = SeedClassifier(bundle).predict(val.crops).argmax(axis=1)
        accuracy = float((predicted == val.labels).mean())
        print(f"accuracy on {args.val_data}: {100 * accuracy:.1f}%")
    with Database.open(Settings.load().database_url) as db:
        record_accuracy(db, args.round, accuracy, model_sha256=report["sha256"])
    print(f"labelling round {args.round}: validation accuracy {100 * accuracy:.1f}%")


def cmd_recipe_build(args: argparse.Namespace) -> int:
    """Build a recipe's bundle from its build spec and install it."""
    from appliance import recipes
    from appliance.settings import Settings
    from models.classifier.build import build_bundle
    from models.classifier.data import folder_crops, simulated_crops
    from models.classifier.train import TrainConfig

    recipe = recipes.get(args.name)
    target = recipe.bundle_path(Settings.load().models_dir)
    if args.if_missing and target.is_file():
        print(f"recipe {recipe.name}: bundle already installed at {target}")
        return 0
    spec = recipe.build
    size = int(spec.get("size", 64))
    seed = int(spec.get("seed", 0))
    print(
        f"recipe {recipe.name}: building its model bundle (this takes a few "
        f"minutes; progress below)",
        file=sys.stderr,
    )
    if spec.get("source") == "simulated":
        data = simulated_crops(
            int(spec.get("samples", 10)),
            size=size,
            seed=seed,
            progress=_progress_bar("rendering samples"),
        )
    else:
        folder = args.data or Path(spec["data"])
        data = folder_crops(
            folder,
            size=size,
            ready=bool(spec.get("ready_crops")),
            classes=recipe.classes,
            side_px=spec.get("crop_side_px"),
            progress=_progress_bar("cutting crops"),
        )
    config = TrainConfig(
        epochs=args.epochs or int(spec.get("epochs", 8)),
        balanced=bool(spec.get("balanced", False)),
        seed=seed,
        light_jitter=float(spec.get("light_jitter", 1.0)),
    )
    report = build_bundle(
        data,
        target,
        pure_classes=recipe.pure_classes,
        config=config,
        name=recipe.name,
        version=str(spec.get("version", "1")),
        checkpoint=target.with_suffix(".checkpoint"),
        resume=True,
        max_flips=int(spec.get("max_test_time_flips", 1)),
    )
    target.with_suffix(".checkpoint").unlink(missing_ok=True)
    _print_metrics(report, as_json=False)
    print(f"recipe {recipe.name}: bundle installed at {target}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a bundle."""
    from appliance.bundle import load_bundle
    from appliance.classifier import SeedClassifier
    from models.classifier.metrics import classification_report

    bundle = load_bundle(args.model)
    info = bundle.info
    if args.size != info.input_size:
        log.info("using the bundle's crop size %d px", info.input_size)
        args.size = info.input_size
    if args.crop_side is None and info.crop.get("ready_side_px"):
        args.crop_side = float(info.crop["ready_side_px"])
    data = _load_data(args, classes=info.classes)
    if len(data) == 0:
        raise ValueError("no crops to evaluate")
    classifier = SeedClassifier(bundle, numeric=args.numeric)
    predicted = classifier.predict(data.crops).argmax(axis=1)
    report = classification_report(
        data.labels, predicted, info.classes, info.pure_classes
    )
    report["model"] = {
        "name": info.name,
        "version": info.version,
        "sha256": bundle.sha256,
        "numeric": classifier.numeric,
    }
    _print_metrics(report, as_json=args.json)
    return 0


def _print_metrics(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    print(f"crops                  {report['n']}")
    print(f"accuracy               {100 * report['accuracy']:.1f}%")
    print(f"balanced accuracy      {100 * report['balanced_accuracy']:.1f}%")
    print(f"pure vs impure         {100 * report['pure_vs_impure_accuracy']:.1f}%")
    print(f"Cohen's kappa          {report['kappa']:.3f}")
    if "int8_accuracy" in report:
        print(
            f"int8 accuracy          {100 * report['int8_accuracy']:.1f}% "
            f"(inference uses {report['numeric_format']})"
        )
    if "accuracy_by_flips" in report:
        tried = ", ".join(
            f"{name} {100 * acc:.1f}%"
            for name, acc in report["accuracy_by_flips"].items()
        )
        chosen = "+".join(report["test_time_flips"]) or "none"
        print(f"test-time flips        {chosen} (validation: {tried})")
    if "fused_accuracy" in report:
        seeds = sum(map(sum, report["fused_confusion"]))
        print(
            f"fused per seed         {100 * report['fused_accuracy']:.1f}% of {seeds} "
            "seeds (its confusion corrects purity)"
        )
    print("recall per class")
    for name, recall in report["per_class_recall"].items():
        shown = "-" if recall is None else f"{100 * recall:.1f}%"
        print(f"  {name:<20} {shown}")
    classes = report["classes"]
    print("confusion (rows: truth, columns: predicted)")
    print("  " + " ".join(f"{c[:8]:>8}" for c in classes))
    for name, row in zip(classes, report["confusion"], strict=True):
        print(f"  {' '.join(f'{v:8d}' for v in row)}  {name}")


if __name__ == "__main__":
    sys.exit(main())
