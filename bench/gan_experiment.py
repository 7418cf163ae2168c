"""Does adding GAN-generated rare-class seeds beat simpler remedies?

Two imbalanced sets: simulated maize crops resampled to the ratios of a real
maize lot (pure 40.8%, broken 32%, discolored 17.4%, silkcut 9.8%), and the
wheat-grains photographs at their own ratios (grain_covered about 1.4%). For each,
one class-conditional GAN is trained at 64x64 on the training crops, and a ResNet18
classifier is trained under four arms with the same budget (the same number of
steps over the same real training crops):

- ``none``: plain cross-entropy, uniform sampling;
- ``weighted``: cross-entropy weighted inverse to class frequency;
- ``balanced``: class-balanced sampling;
- ``gan``: every class topped up to the largest one with generated seeds.

Each arm runs with several seeds (classifier initialisation and order; the
generated seeds are drawn anew per seed). Results go to ``OUT/results.json``
(appended as they come, so a partial run is still readable) and the generated
images' quality, judged by the ``weighted`` arm's seed-0 classifier, to
``OUT/<dataset>/quality.json``.

Run: ``python bench/gan_experiment.py --out out/gan-experiment --dataset maize``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from appliance.bundle import load_bundle, save_bundle
from appliance.classifier import SeedClassifier
from models.classifier.data import CropSet, folder_crops, simulated_crops
from models.classifier.metrics import classification_report
from models.classifier.train import (
    TrainConfig,
    init_network,
    make_info,
    predict_logits,
    train,
)
from models.gan.generator_file import load_generator
from models.gan.quality import fit_to, generated_quality
from models.gan.sampling import sample_class
from models.gan.train import GanConfig, train_gan

log = logging.getLogger("gan_experiment")

PAPER_RATIOS = {"pure": 0.408, "broken": 0.32, "discolored": 0.174, "silkcut": 0.098}
WHEAT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wheat-grains"
ARMS = ("none", "weighted", "balanced", "gan")


def resample(data: CropSet, ratios: dict[str, float], total: int, seed: int) -> CropSet:
    """Draw crops without replacement so that classes follow `ratios` exactly."""
    rng = np.random.default_rng(seed)
    avail = data.counts()
    scale = min([total] + [avail[c] / r for c, r in ratios.items()])
    picked = []
    for c, r in ratios.items():
        idx = np.flatnonzero(data.labels == data.classes.index(c))
        picked.append(rng.choice(idx, int(round(r * scale)), replace=False))
    return data.subset(np.sort(np.concatenate(picked)))


def maize_sets(seed: int) -> tuple[CropSet, CropSet]:
    """Training and test crops from separately rendered simulated samples."""
    mix = {"pure": 0.2, "broken": 0.4, "discolored": 0.2, "silkcut": 0.2}
    train_all = simulated_crops(4, size=64, seed=seed + 11, mix=mix)
    test_all = simulated_crops(2, size=64, seed=seed + 12, mix=mix)
    return (
        resample(train_all, PAPER_RATIOS, 800, seed),
        resample(test_all, PAPER_RATIOS, 500, seed + 1),
    )


def wheat_sets(seed: int, root: Path) -> tuple[CropSet, CropSet]:
    """A natural-ratio quarter of the wheat grains to train, a held-out test part.

    30% of every class is held out (healthy grains capped at 400, so the test
    part is not almost all healthy); a quarter of the rest, at the folder's own
    ratios, is the training set.
    """
    data = folder_crops(root, size=64, ready=True, side_px=100)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c, name in enumerate(data.classes):
        idx = rng.permutation(np.flatnonzero(data.labels == c))
        n_test = int(round(0.3 * len(idx)))
        held = idx[: min(n_test, 400) if name == "grain" else n_test]
        rest = idx[n_test:]
        test_idx.append(held)
        train_idx.append(rest[: int(round(0.25 * len(rest)))])
    return (
        data.subset(np.sort(np.concatenate(train_idx))),
        data.subset(np.sort(np.concatenate(test_idx))),
    )


def load_sets(args: argparse.Namespace, out: Path) -> tuple[CropSet, CropSet]:
    """Make the dataset's training and test crops once; share them between stages.

    The first stage to start makes them and writes ``OUT/sets.npz``; the other
    waits for that file.
    """
    cache, lock = out / "sets.npz", out / "sets.making"
    if not cache.exists() and not lock.exists():
        lock.touch()
        started = time.perf_counter()
        if args.dataset == "maize":
            train_set, test_set = maize_sets(0)
        else:
            train_set, test_set = wheat_sets(0, args.wheat)
        np.savez(
            out / "sets.tmp.npz",
            train_crops=train_set.crops,
            train_labels=train_set.labels,
            test_crops=test_set.crops,
            test_labels=test_set.labels,
            classes=np.array(train_set.classes),
        )
        (out / "sets.tmp.npz").rename(cache)
        lock.unlink()
        log.info("data made in %.0f s", time.perf_counter() - started)
    while not cache.exists():
        time.sleep(10)
    with np.load(cache) as z:
        classes = tuple(str(c) for c in z["classes"])
        sets = tuple(
            _as_set(z[f"{part}_crops"], z[f"{part}_labels"], classes, args.dataset)
            for part in ("train", "test")
        )
    return sets[0], sets[1]


def _as_set(
    crops: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], name: str
) -> CropSet:
    n = len(labels)
    return CropSet(
        crops,
        labels.astype(np.int64),
        classes,
        np.arange(n, dtype=np.int64),
        np.full(n, -1, np.int64),
        labels.astype(np.int64),
        (),
        {"kind": "experiment", "dataset": name},
    )


def macro_f1(confusion: list[list[int]]) -> float:
    """Mean over classes of F1, from a confusion matrix (rows: truth)."""
    cm = np.asarray(confusion, np.float64)
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(tp),
        where=precision + recall > 0,
    )
    return float(f1[cm.sum(1) > 0].mean())


def top_up(
    generator_path: Path, train_set: CropSet, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Generated crops that bring every class up to the largest one's count."""
    generator, info = load_generator(generator_path)
    counts = train_set.counts()
    target = max(counts.values())
    crops, labels = [], []
    for c, name in enumerate(info.classes):
        need = target - counts[name]
        if need > 0:
            crops.append(sample_class(generator, c, need, seed=seed))
            labels.append(np.full(need, train_set.classes.index(name)))
    return np.concatenate(crops), np.concatenate(labels)


def run_arm(
    arm: str,
    seed: int,
    train_set: CropSet,
    test_set: CropSet,
    args: argparse.Namespace,
    generator_path: Path | None,
) -> dict[str, Any]:
    """Train one classifier under `arm` and evaluate it on the test crops."""
    size = args.classifier_size
    crops, labels = fit_to(train_set.crops, size), train_set.labels
    generated = 0
    if arm.startswith("gan"):
        assert generator_path is not None
        fake, fake_labels = top_up(generator_path, train_set, seed)
        generated = len(fake)
        crops = np.concatenate([crops, fit_to(fake, size)])
        labels = np.concatenate([labels, fake_labels])
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=64,
        seed=seed,
        balanced=arm == "balanced",
        class_weighted=arm == "weighted",
        epoch_crops=len(train_set),
    )
    pure = ("grain",) if "grain" in train_set.classes else ("pure",)
    info = make_info(train_set.classes, pure, size, name=f"{arm}-{seed}")
    net = init_network(info, seed=seed)
    started, cpu = time.perf_counter(), time.process_time()
    empty = np.zeros((0, size, size, 3), np.uint8)
    train(
        net,
        info,
        crops,
        labels,
        empty,
        np.zeros(0, np.int64),
        config,
        show_progress=False,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    predicted = predict_logits(net, info, fit_to(test_set.crops, size)).argmax(1)
    report = classification_report(
        test_set.labels, predicted.numpy(), train_set.classes, pure
    )
    result = {
        "arm": arm,
        "seed": seed,
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "macro_f1": macro_f1(report["confusion"]),
        "recall": report["per_class_recall"],
        "confusion": report["confusion"],
        "train_crops": len(train_set),
        "generated_crops": generated,
        "config": asdict(config),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
    }
    if arm == "weighted" and seed == 0:
        save_bundle(
            args.out / args.dataset / "judge.safetensors", info, net.state_dict()
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["maize", "wheat"], required=True)
    parser.add_argument("--out", type=Path, default=Path("out/gan-experiment"))
    parser.add_argument("--wheat", type=Path, default=WHEAT.resolve())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--classifier-size", type=int, default=32)
    parser.add_argument("--gan-iterations", type=int, default=200)
    parser.add_argument("--gan-channels", type=int, default=8)
    parser.add_argument("--gan-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", help="name of this process's results file")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--only-gan", action="store_true", help="only the gan arm")
    parser.add_argument(
        "--gan-tag", default="", help="suffix of the GAN's folder and arm"
    )
    parser.add_argument("--only-balanced", action="store_true", help="only balanced")
    parser.add_argument(
        "--stage",
        choices=["arms", "gan"],
        default="arms",
        help="arms: the classifiers (waits for the generator); gan: train the GAN",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    out = args.out / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    # Stages for different seeds may run side by side: one results file each,
    # and every file's runs count as done.
    results_path = out / (
        "results.json" if args.part is None else f"results-{args.part}.json"
    )
    results: list[dict[str, Any]] = (
        json.loads(results_path.read_text()) if results_path.exists() else []
    )
    done = {
        (r["arm"], r["seed"])
        for path in out.glob("results*.json")
        for r in json.loads(path.read_text())
    }

    train_set, test_set = load_sets(args, out)
    log.info(
        "%s: train %s, test %s", args.dataset, train_set.counts(), test_set.counts()
    )

    def record(result: dict[str, Any]) -> None:
        results.append(result)
        results_path.write_text(json.dumps(results, indent=1))
        log.info(
            "%s seed %d: accuracy %.3f, macro-F1 %.3f, recall %s (%.0f s)",
            result["arm"],
            result["seed"],
            result["accuracy"],
            result["macro_f1"],
            {k: round(v, 2) for k, v in result["recall"].items() if v is not None},
            result["seconds"],
        )

    if args.only_balanced:
        for seed in args.seeds:
            if ("balanced", seed) not in done:
                record(run_arm("balanced", seed, train_set, test_set, args, None))
        return
    if args.stage == "arms" and not args.only_gan:
        for seed in args.seeds:
            for arm in ("none", "weighted"):
                if (arm, seed) not in done:
                    record(run_arm(arm, seed, train_set, test_set, args, None))

    gan_dir = out / f"gan{args.gan_tag}"
    gan_arm = f"gan{args.gan_tag}"
    gan_config = GanConfig(
        size=64,
        channels=args.gan_channels,
        z_dim=80,
        embed_dim=32,
        iterations=args.gan_iterations,
        batch_size=args.gan_batch,
        lr_g=3e-4,
        lr_d=3e-4,
        ema_decay=0.995,
        seed=0,
    )
    generator_path = gan_dir / "generator.safetensors"
    if args.stage == "arms":
        while not generator_path.exists():  # trained by the ``gan`` stage
            time.sleep(20)
    else:
        started, cpu = time.perf_counter(), time.process_time()
        train_gan(
            train_set.crops,
            train_set.labels,
            train_set.classes,
            gan_config,
            out_dir=gan_dir,
            resume=True,
            checkpoint_every=50,
            sample_every=100,
            show_progress=False,
            trained_on={"experiment": args.dataset},
        )
        (out / f"gan{args.gan_tag}_seconds.txt").write_text(
            f"{time.perf_counter() - started:.0f} s wall-clock, "
            f"{time.process_time() - cpu:.0f} s CPU (one thread), "
            f"{args.gan_iterations} iterations\n"
        )
        return
    for seed in args.seeds:
        if (gan_arm, seed) not in done:
            record(run_arm(gan_arm, seed, train_set, test_set, args, generator_path))

    if args.no_quality:
        return
    judge = SeedClassifier(load_bundle(out / "judge.safetensors"), numeric="fp32")
    generator, info = load_generator(generator_path)
    per_class = max(test_set.counts().values())
    fake = np.concatenate(
        [
            sample_class(generator, c, per_class, seed=100)
            for c in range(len(info.classes))
        ]
    )
    fake_labels = np.repeat(np.arange(len(info.classes)), per_class)
    quality = generated_quality(
        judge, test_set.crops, test_set.labels, fake, fake_labels, info.classes
    )
    quality["real_test_accuracy_of_judge"] = generated_quality(
        judge,
        test_set.crops,
        test_set.labels,
        test_set.crops,
        test_set.labels,
        info.classes,
    )["per_class"]
    (out / f"quality{args.gan_tag}.json").write_text(json.dumps(quality, indent=1))
    log.info("quality: %s", json.dumps(quality["overall"]))

    # Balanced sampling last: the arm the budget can most easily spare.
    for seed in args.seeds:
        if ("balanced", seed) not in done:
            record(run_arm("balanced", seed, train_set, test_set, args, None))


if __name__ == "__main__":
    main()
