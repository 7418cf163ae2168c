"""A simulated expert: active learning with the ground truth as the oracle.

For each dataset and seed, a pool and a fixed validation set are drawn once; every
strategy starts from the same random labelled seeds, and each round trains the
learner (warm-started from the previous round, dropout before the final layer),
measures validation accuracy, and asks its strategy for the next batch, whose
labels the oracle reveals. The same learner trained on the whole labelled pool
gives the full-data accuracy the curves are compared to.

Two learners. By default the whole ResNet18 is trained from scratch on the labels.
With a backbone (the bundle of another recipe: a new species bootstrapped from a
network trained on an old one) its convolutional layers are frozen, the features of
every crop computed once, and only the final layer ``fc`` is trained, with the
same dropout before it: stable at a few labels and cheap enough for hundreds of
labels and several seeds on a small CPU.

Results are appended to a JSON-lines file as they are measured, so a long run
that is stopped keeps what it finished; `report` turns the file into a table and
a plot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from appliance.bundle import Bundle
from appliance.classifier import to_tensor
from models.active.acquisition import (
    Selection,
    batchbald,
    entropy_kmeans,
    random_batch,
)
from models.active.budget import Budget
from models.active.mc_dropout import (
    DEFAULT_DROPOUT,
    PoolPredictions,
    add_training_dropout,
    network_from_bundle,
    predict_features,
    predict_pool,
)
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


class NetworkLearner:
    """The whole ResNet18, trained on the labelled crops (warm start per round)."""

    def __init__(self, data: CropSet, budget: Budget, seed: int) -> None:
        self.data, self.budget, self.seed = data, budget, seed
        self.info = make_info(data.classes, (data.classes[0],), budget.size)
        self.net = init_network(self.info, seed=seed)
        add_training_dropout(self.net)

    def fit(self, idx: NDArray[np.int64], round_no: int, *, full: bool = False) -> None:
        """Train on the crops `idx` of the dataset."""
        if full:
            config = TrainConfig(
                epochs=self.budget.full_epochs, batch_size=64, lr=3e-3, seed=self.seed
            )
        else:
            config = TrainConfig(
                epochs=self.budget.epochs,
                batch_size=min(32, len(idx)),
                lr=2e-3,
                seed=self.seed * 100 + round_no,
            )
        empty = self.data.crops[:0]
        train(
            self.net,
            self.info,
            self.data.crops[idx],
            self.data.labels[idx],
            empty,
            self.data.labels[:0],
            config,
            show_progress=False,
        )

    def accuracy(self, idx: NDArray[np.int64]) -> float:
        """Return the accuracy on the crops `idx`."""
        logits = predict_logits(self.net, self.info, self.data.crops[idx])
        return float(np.mean(logits.argmax(1).numpy() == self.data.labels[idx]))

    def predictions(self, idx: NDArray[np.int64], seed: int) -> PoolPredictions:
        """MC-dropout predictions on the crops `idx`."""
        return predict_pool(
            self.net,
            self.info,
            self.data.crops[idx],
            num_draws=self.budget.draws,
            seed=seed,
        )


class FeatureHead(torch.nn.Module):
    """A final layer ``fc`` on frozen features (dropout is the trainer's)."""

    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of (N, width) features."""
        return self.fc(x)


class HeadLearner:
    """A frozen backbone's features and a trained ``fc`` (warm start per round).

    The features of the whole dataset are computed once, by `extract`; dropout
    (as in the MC draws) acts on them, before ``fc``.
    """

    def __init__(
        self, feats: NDArray[np.float32], data: CropSet, budget: Budget, seed: int
    ) -> None:
        self.feats = feats
        self.labels = data.labels
        self.budget = budget
        self.seed = seed
        torch.manual_seed(seed)
        self.head = FeatureHead(feats.shape[1], len(data.classes))

    @staticmethod
    def extract(data: CropSet, backbone: Bundle) -> NDArray[np.float32]:
        """Return the backbone's features of every crop, standardised.

        The spatial means of each of the four ResNet stages' outputs (64 + 128 +
        256 + 512 values): a network trained on another species transfers through
        its earlier, more generic stages far better than through the last one
        alone (maize from a wheat network, with the whole labelled pool: 89%
        against 75% validation accuracy here). Each feature is standardised over
        all crops (no labels are used).
        """
        net = network_from_bundle(backbone)
        stages = [getattr(net, f"layer{k}") for k in (1, 2, 3, 4)]
        pooled: list[list[NDArray[np.float32]]] = [[] for _ in stages]
        hooks = [
            stage.register_forward_hook(
                lambda _m, _i, out, k=k: pooled[k].append(out.mean((2, 3)).numpy())
            )
            for k, stage in enumerate(stages)
        ]
        log.info("features of %d crops from %s", len(data), backbone.info.name)
        try:
            with torch.inference_mode():
                for start in range(0, len(data), 256):
                    net(to_tensor(data.crops[start : start + 256], backbone.info))
        finally:
            for hook in hooks:
                hook.remove()
        feats = np.concatenate([np.concatenate(p) for p in pooled], axis=1)
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        return feats.astype(np.float32)

    def fit(self, idx: NDArray[np.int64], round_no: int, *, full: bool = False) -> None:
        """Train ``fc`` on the features `idx`: full-batch AdamW, cosine decay."""
        steps = self.budget.head_steps * (2 if full else 1)
        x = torch.from_numpy(self.feats[idx])
        y = torch.from_numpy(self.labels[idx])
        generator = torch.Generator().manual_seed(self.seed * 100 + round_no)
        optimiser = torch.optim.AdamW(
            self.head.parameters(), lr=1e-2, weight_decay=1e-2
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        self.head.train()
        for _ in range(steps):
            # The same inverted dropout as the MC draws, one mask per crop.
            keep = torch.rand(x.shape, generator=generator) >= DEFAULT_DROPOUT
            logits = self.head(x * keep / (1.0 - DEFAULT_DROPOUT))
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        self.head.eval()

    def accuracy(self, idx: NDArray[np.int64]) -> float:
        """Return the accuracy on the features `idx`."""
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(self.feats[idx]))
        return float(np.mean(logits.argmax(1).numpy() == self.labels[idx]))

    def predictions(self, idx: NDArray[np.int64], seed: int) -> PoolPredictions:
        """MC-dropout predictions on the features `idx`."""
        return predict_features(
            self.head, self.feats[idx], num_draws=self.budget.draws, seed=seed
        )


Learner = NetworkLearner | HeadLearner


def _choose(
    strategy: str,
    learner: Learner,
    candidates: NDArray[np.int64],
    budget: Budget,
    seed: int,
) -> Selection:
    if strategy == "random":
        return random_batch(len(candidates), budget.batch, seed=seed)
    predictions = learner.predictions(candidates, seed)
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
    make_learner: Callable[[int], Learner],
    data: CropSet,
    budget: Budget,
    seed: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Run one active-learning curve and emit one record per round."""
    pool, val = split_pool(data, budget, seed)
    learner = make_learner(seed)
    rng = np.random.default_rng(seed)
    labelled = [int(i) for i in rng.choice(len(pool), budget.initial, replace=False)]
    for round_no in range(budget.rounds + 1):
        started = time.perf_counter()
        learner.fit(pool[labelled], round_no)
        record = {
            "kind": "round",
            "strategy": strategy,
            "seed": seed,
            "round": round_no,
            "labels": len(labelled),
            "accuracy": learner.accuracy(val),
            "train_s": round(time.perf_counter() - started, 2),
        }
        if round_no < budget.rounds:
            started = time.perf_counter()
            remaining = np.setdiff1d(np.arange(len(pool)), labelled)
            picked = _choose(strategy, learner, pool[remaining], budget, seed)
            chosen = [int(remaining[i]) for i in picked.indices]
            labelled += chosen
            # Dataset indices, so a run can be checked and replayed.
            record["acquired"] = [int(pool[i]) for i in chosen]
            record["choose_s"] = round(time.perf_counter() - started, 2)
        emit(record)


def run_full(
    make_learner: Callable[[int], Learner],
    data: CropSet,
    budget: Budget,
    seed: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Train on the whole labelled pool and emit its validation accuracy."""
    pool, val = split_pool(data, budget, seed)
    learner = make_learner(seed)
    started = time.perf_counter()
    learner.fit(pool, 0, full=True)
    emit(
        {
            "kind": "full",
            "seed": seed,
            "labels": len(pool),
            "accuracy": learner.accuracy(val),
            "train_s": round(time.perf_counter() - started, 1),
        }
    )


def run_experiment(
    dataset: str,
    data: CropSet,
    out: Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    strategies: Sequence[str] = STRATEGIES,
    budget: Budget | None = None,
    backbone: Bundle | None = None,
) -> None:
    """Run every strategy on every seed; append records to `out` (JSON lines).

    `data` are the crops of `dataset` (see `load_dataset`), at the backbone's input
    size when `backbone` is given (then only its final layer is trained). The
    full-data reference of the first seed runs first, those of the other seeds
    last, so a run cut short still has a reference.
    """
    budget = budget or Budget()
    torch.set_num_threads(1)
    make_learner: Callable[[int], Learner]
    extra: dict[str, Any] = {}
    if backbone is not None:
        extra = {
            "backbone_sha256": backbone.sha256,
            "backbone_name": backbone.info.name,
        }
        feats = HeadLearner.extract(data, backbone)

        def make_learner(seed: int) -> Learner:
            return HeadLearner(feats, data, budget, seed)
    else:

        def make_learner(seed: int) -> Learner:
            return NetworkLearner(data, budget, seed)

    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(record: dict[str, Any]) -> None:
        record = {"dataset": dataset, **record}
        log.info("%s", record)
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    emit({"kind": "budget", **asdict(budget), **extra, "crops": len(data)})
    run_full(make_learner, data, budget, seeds[0], emit)
    for seed in seeds:
        for strategy in strategies:
            run_strategy(strategy, make_learner, data, budget, seed, emit)
    for seed in seeds[1:]:
        run_full(make_learner, data, budget, seed, emit)
