"""The simulated-expert study: its records, its learners and its report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from appliance.bundle import load_bundle
from models.active.budget import Budget
from models.active.experiment import STRATEGIES, run_experiment, split_pool
from models.active.report import curves, markdown_table
from models.classifier.data import CropSet

BUDGET = Budget(
    pool=150,
    validation=90,
    initial=6,
    batch=6,
    rounds=3,
    head_steps=150,
    draws=8,
    num_samples=200,
)


def _coloured_crops(n: int, size: int = 32, seed: int = 0) -> CropSet:
    """Three classes told apart by colour: red, green and blue seeds on black."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    crops = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    for i, label in enumerate(labels):
        crops[i, disc, label] = rng.integers(150, 255)
    ids = np.arange(n)
    return CropSet(crops, labels, ("red", "green", "blue"), ids, ids, labels)


@pytest.fixture(scope="module")
def study(tmp_path_factory, untrained_bundle):
    """One small run of every strategy, two seeds, on frozen features."""
    data = _coloured_crops(300)
    out = tmp_path_factory.mktemp("active") / "results.jsonl"
    run_experiment(
        "colours",
        data,
        out,
        seeds=(0, 1),
        budget=BUDGET,
        backbone=load_bundle(untrained_bundle),
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return data, records


def test_every_round_of_every_strategy_and_seed_is_recorded(study):
    _, records = study
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "budget" and records[0]["backbone_name"] == "maize-sim"
    assert kinds.count("full") == 2
    rounds = [r for r in records if r["kind"] == "round"]
    assert len(rounds) == len(STRATEGIES) * 2 * (BUDGET.rounds + 1)
    for strategy in STRATEGIES:
        for seed in (0, 1):
            curve = [
                r for r in rounds if r["strategy"] == strategy and r["seed"] == seed
            ]
            labels = [r["labels"] for r in curve]
            assert labels == [
                BUDGET.initial + k * BUDGET.batch for k in range(BUDGET.rounds + 1)
            ]


def test_acquired_seeds_come_from_the_pool_and_are_never_asked_twice(study):
    data, records = study
    for strategy in STRATEGIES:
        for seed in (0, 1):
            pool, val = split_pool(data, BUDGET, seed)
            acquired = [
                i
                for r in records
                if r["kind"] == "round" and r["strategy"] == strategy
                if r["seed"] == seed
                for i in r.get("acquired", [])
            ]
            assert len(acquired) == BUDGET.rounds * BUDGET.batch
            assert len(set(acquired)) == len(acquired)
            assert set(acquired) <= set(pool.tolist())
            assert not set(acquired) & set(val.tolist())


def test_the_head_learner_learns_from_the_labels(study):
    """Colours are easy: the full pool gets near-perfect validation accuracy, and a
    few dozen labels far more than the 33% of guessing."""
    _, records = study
    full = [r["accuracy"] for r in records if r["kind"] == "full"]
    assert min(full) >= 0.9
    last = [
        r["accuracy"]
        for r in records
        if r["kind"] == "round" and r["round"] == BUDGET.rounds
    ]
    assert min(last) >= 0.6


def test_the_report_counts_labels_to_reach_the_full_data_accuracy(study):
    _, records = study
    summary = curves(records)
    assert {c.strategy for c in summary.curves} == set(STRATEGIES)
    table = markdown_table(summary)
    assert "colours" in table and "labels to 95%" in table
    for curve in summary.curves:
        reached = [
            n
            for n, m in zip(curve.labels, curve.mean, strict=True)
            if m >= 0.95 * summary.full["colours"][0]
        ]
        assert curve.to_target == (reached[0] if reached else None)
