"""A simulated expert: active learning with the ground truth as the oracle.

For each dataset and seed, a pool and a fixed validation set are drawn once; every
strategy starts from the same random labelled seeds, and each round trains the
ResNet18 (warm-started from the previous round, dropout before the final layer),
measures validation accuracy, and asks its strategy for the next batch, whose
labels the oracle reveals. The same network trained on the whole labelled pool
gives the full-data accuracy the curves are compared to.

Results are appended to a JSON-lines file as they are measured, so a long run
that is stopped keeps what it finished; `report` turns the file into a table and
a plot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from appliance.bundle import BundleInfo
from models.active.acquisition import (
    Selection,
    batchbald,
    entropy_kmeans,
    random_batch,
)
from models.active.mc_dropout import add_training_dropout, predict_pool
from models.classifier.data import CropSet, folder_crops, simulated_crops
from models.classifier.train import (
    TrainConfig,
    init_network,
    make_info,
    predict_logits,
    train,
)

log = logging.getLogger(__name__)

STRATEGIES = ("random", "entropy_kmeans", "batchbald")


@dataclass(frozen=True)
class Budget:
    """How much work one experiment does (sized for a small shared CPU).

    Attributes
    ----------
    size : int
        Crop side, pixels.
    pool : int
        Unlabelled crops the strategies choose from.
    validation : int
        Fixed validation crops, never labelled.
    initial : int
        Random labels every strategy starts from.
    batch : int
        Labels acquired per round.
    rounds : int
        Acquisition rounds after the initial one.
    epochs : int
        Training epochs per round (warm-started).
    full_epochs : int
        Epochs of the full-data reference, from scratch.
    draws : int
        Dropout draws for BatchBALD.
    num_samples : int
        BatchBALD's sampled label configurations.
    """

    size: int = 32
    pool: int = 2000
    validation: int = 600
    initial: int = 20
    batch: int = 20
    rounds: int = 8
    epochs: int = 8
    full_epochs: int = 12
    draws: int = 20
    num_samples: int = 1000


def load_dataset(name: str, *, size: int, wheat_dir: Path) -> CropSet:
    """Return the crops of ``maize`` (simulated rig) or ``wheat`` (image folder)."""
    if name == "maize":
        return simulated_crops(8, size=size, seed=7)
    if name == "wheat":
        return folder_crops(wheat_dir, size=size, ready=True, side_px=100.0)
    raise ValueError(f"unknown dataset {name!r}; expected 'maize' or 'wheat'")


def split_pool(
    data: CropSet, budget: Budget, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return a random pool and a disjoint validation set of crop indices."""
    rng = np.random.default_rng(1000 + seed)
    order = rng.permutation(len(data))
    if len(order) < budget.pool + budget.validation:
        raise ValueError(
            f"dataset has {len(order)} crops, fewer than pool {budget.pool} + "
            f"validation {budget.validation}"
        )
    return order[: budget.pool], order[budget.pool : budget.pool + budget.validation]


def accuracy(net: torch.nn.Module, info: BundleInfo, data: CropSet) -> float:
    """Return the accuracy of `net` on `data`."""
    predicted = predict_logits(net, info, data.crops).argmax(1).numpy()
    return float(np.mean(predicted == data.labels))


def _choose(
    strategy: str,
    net: torch.nn.Module,
    info: BundleInfo,
    pool: CropSet,
    budget: Budget,
    seed: int,
) -> Selection:
    if strategy == "random":
        return random_batch(len(pool), budget.batch, seed=seed)
    predictions = predict_pool(net, info, pool.crops, num_draws=budget.draws, seed=seed)
    if strategy == "entropy_kmeans":
        plain = torch.from_numpy(np.log(np.clip(predictions.mean_probs, 1e-12, 1)))
        return entropy_kmeans(
            plain[:, None, :], predictions.features, budget.batch, seed=seed
        )
    generator = torch.Generator().manual_seed(seed)
    return batchbald(
        predictions.log_probs,
        budget.batch,
        budget.num_samples,
        generator=generator,
    )


def run_strategy(
    strategy: str,
    data: CropSet,
    budget: Budget,
    seed: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Run one active-learning curve and emit one record per round."""
    pool_idx, val_idx = split_pool(data, budget, seed)
    pool, val = data.subset(pool_idx), data.subset(val_idx)
    info = make_info(data.classes, (data.classes[0],), budget.size)
    net = init_network(info, seed=seed)
    add_training_dropout(net)

    rng = np.random.default_rng(seed)
    labelled = [int(i) for i in rng.choice(len(pool), budget.initial, replace=False)]
    for round_no in range(budget.rounds + 1):
        started = time.perf_counter()
        config = TrainConfig(
            epochs=budget.epochs,
            batch_size=min(32, len(labelled)),
            lr=2e-3,
            seed=seed * 100 + round_no,
        )
        idx = np.array(labelled)
        train(
            net,
            info,
            pool.crops[idx],
            pool.labels[idx],
            val.crops[:0],
            val.labels[:0],
            config,
            show_progress=False,
        )
        acc = accuracy(net, info, val)
        trained_s = time.perf_counter() - started
        emit(
            {
                "kind": "round",
                "strategy": strategy,
                "seed": seed,
                "round": round_no,
                "labels": len(labelled),
                "accuracy": acc,
                "train_s": round(trained_s, 1),
            }
        )
        if round_no == budget.rounds:
            break
        remaining = np.setdiff1d(np.arange(len(pool)), idx)
        picked = _choose(strategy, net, info, pool.subset(remaining), budget, seed)
        labelled += [int(remaining[i]) for i in picked.indices]


def run_full(
    data: CropSet,
    budget: Budget,
    seed: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Train on the whole labelled pool and emit its validation accuracy."""
    pool_idx, val_idx = split_pool(data, budget, seed)
    pool, val = data.subset(pool_idx), data.subset(val_idx)
    info = make_info(data.classes, (data.classes[0],), budget.size)
    net = init_network(info, seed=seed)
    add_training_dropout(net)
    started = time.perf_counter()
    config = TrainConfig(epochs=budget.full_epochs, batch_size=64, lr=3e-3, seed=seed)
    train(
        net,
        info,
        pool.crops,
        pool.labels,
        val.crops[:0],
        val.labels[:0],
        config,
        show_progress=False,
    )
    emit(
        {
            "kind": "full",
            "seed": seed,
            "labels": len(pool),
            "accuracy": accuracy(net, info, val),
            "train_s": round(time.perf_counter() - started, 1),
        }
    )


def run_experiment(
    dataset: str,
    out: Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    strategies: Sequence[str] = STRATEGIES,
    budget: Budget = Budget(),
    wheat_dir: Path = Path("../shared/data/wheat-grains"),
) -> None:
    """Run every strategy on every seed; append records to `out` (JSON lines).

    The full-data reference of the first seed runs first, those of the other
    seeds last, so a run cut short still has a reference.
    """
    torch.set_num_threads(1)
    data = load_dataset(dataset, size=budget.size, wheat_dir=wheat_dir)
    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(record: dict[str, Any]) -> None:
        record = {"dataset": dataset, **record}
        log.info("%s", record)
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    emit({"kind": "budget", **asdict(budget), "crops": len(data)})
    run_full(data, budget, seeds[0], emit)
    for seed in seeds:
        for strategy in strategies:
            run_strategy(strategy, data, budget, seed, emit)
    for seed in seeds[1:]:
        run_full(data, budget, seed, emit)
