"""Batch active learning: which unlabelled seeds an expert should label next."""

from models.active.acquisition import (
    Selection,
    bald,
    batchbald,
    conditional_entropy,
    entropy_kmeans,
    mutual_information,
    predictive_entropy,
    random_batch,
)

__all__ = [
    "Selection",
    "bald",
    "batchbald",
    "conditional_entropy",
    "entropy_kmeans",
    "mutual_information",
    "predictive_entropy",
    "random_batch",
]
