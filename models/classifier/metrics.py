"""Classification metrics: accuracy, per-class recall, kappa, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def confusion_matrix(
    truth: NDArray[np.integer], predicted: NDArray[np.integer], n_classes: int
) -> NDArray[np.int64]:
    """(C, C) counts; rows are the true class, columns the predicted one."""
    index = np.asarray(truth, np.int64) * n_classes + np.asarray(predicted, np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def cohen_kappa(confusion: NDArray[np.integer]) -> float:
    """Agreement beyond chance between truth and prediction (1 perfect, 0 chance)."""
    total = confusion.sum()
    if total == 0:
        return 0.0
    observed = np.trace(confusion) / total
    expected = float((confusion.sum(0) * confusion.sum(1)).sum()) / total**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def classification_report(
    truth: NDArray[np.integer],
    predicted: NDArray[np.integer],
    classes: Sequence[str],
    pure_classes: Sequence[str],
) -> dict[str, Any]:
    """Return the metrics `seedqa-models classifier eval` prints.

    Classes absent from `truth` get a recall of None and are left out of the
    balanced accuracy, so a folder may hold a subset of the classes.
    """
    n = len(classes)
    cm = confusion_matrix(truth, predicted, n)
    support = cm.sum(axis=1)
    recall = {
        c: (float(cm[i, i] / support[i]) if support[i] else None)
        for i, c in enumerate(classes)
    }
    present = [r for r in recall.values() if r is not None]
    pure = np.array([c in pure_classes for c in classes])
    truth_pure = pure[np.asarray(truth, np.int64)]
    pred_pure = pure[np.asarray(predicted, np.int64)]
    total = int(cm.sum())
    return {
        "classes": list(classes),
        "n": total,
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_recall": recall,
        "support": {c: int(s) for c, s in zip(classes, support, strict=True)},
        "pure_vs_impure_accuracy": float(np.mean(truth_pure == pred_pure))
        if total
        else 0.0,
        "kappa": cohen_kappa(cm),
        "confusion": cm.tolist(),
    }
