"""Training curves and confusion matrices as PNG images, written beside a bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from models.classifier.train import History  # noqa: E402


def plot_history(history: History, path: Path) -> Path:
    """Plot loss and accuracy per epoch, training and validation."""
    epochs = np.arange(1, len(history.train_loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    ax_loss.plot(epochs, history.train_loss, "o-", label="training")
    ax_loss.plot(epochs, history.val_loss, "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(epochs, history.train_accuracy, "o-", label="training")
    ax_acc.plot(epochs, history.val_accuracy, "o-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path
) -> Path:
    """Plot the confusion matrix (rows are the truth), counts and row shares."""
    cm = np.asarray(confusion, np.float64)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 1.5), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{100 * share[i, j]:.0f}%",
                ha="center",
                va="center",
                color=colour,
                fontsize=9,
            )
    ax.set_xticks(range(n), classes, rotation=30, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Validation confusion matrix")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
