"""Build a classifier bundle: train, validate in fp32 and int8, write everything."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from appliance.bundle import BundleInfo, save_bundle
from appliance.classifier import CALIBRATION_KEY, predict_probs, quantize_int8
from models.classifier.data import CropSet, split_by_group
from models.classifier.metrics import classification_report
from models.classifier.plots import plot_confusion, plot_history
from models.classifier.train import (
    TrainConfig,
    init_network,
    make_info,
    predict_logits,
    train,
)

log = logging.getLogger(__name__)

#: int8 is used when it loses at most this much validation accuracy against fp32.
INT8_TOLERANCE = 0.005

#: Test-time flip sets tried at build time, cheapest first.
FLIP_CANDIDATES: tuple[tuple[str, ...], ...] = (
    (),
    ("rot180",),
    ("vflip",),
    ("hflip",),
    ("hflip", "vflip", "rot180"),
)


def build_bundle(
    data: CropSet,
    out: Path,
    *,
    pure_classes: tuple[str, ...],
    config: TrainConfig,
    name: str,
    version: str = "1",
    val_fraction: float = 0.2,
    init_weights: Path | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    max_flips: int = 1,
) -> dict[str, Any]:
    """Train on `data`, validate on a held-out part, and write the bundle to `out`.

    The arithmetic (fp32 or int8) and the test-time flips (at most `max_flips`
    flipped copies per crop, each costing one more forward pass) are chosen by
    validation accuracy. Also writes ``<out stem>.curves.png`` and
    ``<out stem>.confusion.png`` beside the bundle. Returns the validation report
    (fp32, int8 and flip figures included).
    """
    started = time.perf_counter()
    size = int(data.crops.shape[1])
    train_idx, val_idx = split_by_group(data, fraction=val_fraction, seed=config.seed)
    info = make_info(data.classes, pure_classes, size, name=name, version=version)
    net = init_network(info, seed=config.seed, init_weights=init_weights)
    history = train(
        net,
        info,
        data.crops[train_idx],
        data.labels[train_idx],
        data.crops[val_idx],
        data.labels[val_idx],
        config,
        checkpoint=checkpoint,
        resume=resume,
        show_progress=show_progress,
    )

    net.eval()
    val = data.subset(val_idx)
    fp32 = predict_logits(net, info, val.crops).argmax(1).numpy()
    report = classification_report(val.labels, fp32, data.classes, pure_classes)
    calibration = data.crops[train_idx[:: max(1, len(train_idx) // 256)]][:256]
    int8_net = quantize_int8(net, calibration, info)
    int8 = predict_logits(int8_net, info, val.crops).argmax(1).numpy()
    int8_accuracy = float(np.mean(int8 == val.labels)) if len(val) else 0.0
    numeric = "int8" if int8_accuracy >= report["accuracy"] - INT8_TOLERANCE else "fp32"
    report["int8_accuracy"] = int8_accuracy
    report["numeric_format"] = numeric
    flips, by_flips = choose_flips(
        int8_net if numeric == "int8" else net, info, val, max_flips=max_flips
    )
    report["test_time_flips"] = list(flips)
    report["accuracy_by_flips"] = by_flips
    fused = fused_confusion(int8_net if numeric == "int8" else net, info, val, flips)
    if fused is not None:
        report["fused_confusion"] = fused
        report["fused_accuracy"] = float(np.trace(fused) / max(1, np.sum(fused)))

    crop = dict(info.crop)
    if data.source.get("ready_side_px"):
        crop["ready_side_px"] = data.source["ready_side_px"]
    info = replace(
        info,
        crop=crop,
        numeric_format=numeric,
        test_time_flips=flips,
        metrics=report,
        trained_on={
            **data.source,
            "train_crops": len(train_idx),
            "val_crops": len(val_idx),
            "counts": data.counts(),
            "config": asdict(config),
            "init_weights": str(init_weights) if init_weights else None,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    state = {k: v for k, v in net.state_dict().items()}
    state[CALIBRATION_KEY] = torch.from_numpy(np.ascontiguousarray(calibration))
    out = Path(out)
    sha = save_bundle(out, info, state)
    stem = out.with_suffix("")
    report["bundle"] = str(out)
    report["sha256"] = sha
    report["curves"] = str(plot_history(history, stem.with_suffix(".curves.png")))
    report["confusion_image"] = str(
        plot_confusion(
            report["confusion"], data.classes, stem.with_suffix(".confusion.png")
        )
    )
    log.info(
        "bundle %s: validation accuracy %.3f (int8 %.3f, using %s, flips: %s)",
        out,
        report["accuracy"],
        int8_accuracy,
        numeric,
        ", ".join(flips) or "none",
    )
    return report


def fused_confusion(
    net: torch.nn.Module,
    info: BundleInfo,
    val: CropSet,
    flips: tuple[str, ...],
) -> list[list[int]] | None:
    """Confusion matrix of fused verdicts per physical seed (rows: its class).

    Each validation seed's views are classified as the appliance classifies them
    (this network, these flips) and fused by `appliance.fusion.fuse_views`, so the
    purity correction can use the error rates of the verdicts it corrects. None
    for crops that are not views of known seeds (image folders).
    """
    if not val.views or len(val) == 0 or (val.kernels < 0).any():
        return None
    from appliance.fusion import fuse_views

    probs = predict_probs(net, info, val.crops, flips=flips)
    seeds: dict[int, dict[str, np.ndarray]] = {}
    truth: dict[int, int] = {}
    for i, (kernel, view) in enumerate(zip(val.kernels, val.views, strict=True)):
        seeds.setdefault(int(kernel), {})[view] = probs[i]
        truth[int(kernel)] = int(val.truth[i])
    matrix = np.zeros((len(info.classes), len(info.classes)), np.int64)
    for kernel, views in seeds.items():
        verdict = fuse_views(views.get("top"), views.get("bottom"), info.pure_mask)
        matrix[truth[kernel], verdict.class_index] += 1
    return matrix.tolist()


def choose_flips(
    net: torch.nn.Module, info: BundleInfo, val: CropSet, *, max_flips: int
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Pick the test-time flips with the best validation accuracy.

    A set with more flips must beat every cheaper one strictly, since each flip
    costs a forward pass. Returns the chosen flips and the accuracy of each set
    tried, keyed by its names joined with ``+`` (``"none"`` for no flip).
    """
    best: tuple[str, ...] = ()
    best_accuracy = -1.0
    tried: dict[str, float] = {}
    for flips in FLIP_CANDIDATES:
        if len(flips) > max_flips or len(val) == 0:
            continue
        probs = predict_probs(net, info, val.crops, flips=flips)
        accuracy = float(np.mean(probs.argmax(1) == val.labels))
        tried["+".join(flips) or "none"] = accuracy
        if accuracy > best_accuracy:
            best, best_accuracy = flips, accuracy
    return best, tried
