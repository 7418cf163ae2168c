"""How much work a simulated-expert experiment does.

Kept apart from `models.active.experiment` so the command line can list its
options without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How much work one experiment does (sized for a small shared CPU).

    Attributes
    ----------
    size : int
        Crop side, pixels, of the whole-network learner (a backbone's own input
        size is used with it).
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
    head_steps : int
        Full-batch optimiser steps of the head learner per round (twice as many
        for the full-data reference, from scratch).
    """

    size: int = 32
    pool: int = 2000
    validation: int = 600
    initial: int = 20
    batch: int = 20
    rounds: int = 14
    epochs: int = 8
    full_epochs: int = 12
    draws: int = 20
    num_samples: int = 1000
    head_steps: int = 300
