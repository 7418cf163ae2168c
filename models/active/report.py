"""Tables and plots of the simulated-expert study (results as JSON lines)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Share of the full-data accuracy a strategy must reach to count as there.
TARGET_SHARE = 0.95


@dataclass(frozen=True)
class Curve:
    """Mean and spread of one strategy's accuracy over seeds, per label count."""

    dataset: str
    strategy: str
    labels: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seeds: int
    to_target: int | None


@dataclass(frozen=True)
class Summary:
    """Every curve and each dataset's full-data accuracy (mean over seeds)."""

    curves: tuple[Curve, ...]
    full: dict[str, tuple[float, float, int, int]]  # mean, std, seeds, labels


def read_results(path: Path) -> list[dict[str, Any]]:
    """Return the records of a JSON-lines results file."""
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def curves(records: list[dict[str, Any]]) -> Summary:
    """Average the rounds of each dataset and strategy over the seeds.

    Only label counts every seed reached are kept, so a mean is never over
    fewer seeds than the curve claims.
    """
    full: dict[str, list[tuple[float, int]]] = defaultdict(list)
    rounds: dict[tuple[str, str], dict[int, dict[int, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in records:
        if r["kind"] == "full":
            full[r["dataset"]].append((r["accuracy"], r["labels"]))
        elif r["kind"] == "round":
            rounds[(r["dataset"], r["strategy"])][r["seed"]][r["labels"]] = r[
                "accuracy"
            ]
    full_stats = {
        d: (
            float(np.mean([a for a, _ in v])),
            float(np.std([a for a, _ in v])),
            len(v),
            v[0][1],
        )
        for d, v in full.items()
    }
    out = []
    for (dataset, strategy), by_seed in sorted(rounds.items()):
        common = sorted(set.intersection(*(set(s) for s in by_seed.values())))
        acc = np.array([[by_seed[s][n] for n in common] for s in sorted(by_seed)])
        mean = acc.mean(0)
        target = None
        if dataset in full_stats:
            reached = np.flatnonzero(mean >= TARGET_SHARE * full_stats[dataset][0])
            target = int(common[reached[0]]) if reached.size else None
        out.append(
            Curve(
                dataset,
                strategy,
                tuple(common),
                tuple(float(v) for v in mean),
                tuple(float(v) for v in acc.std(0)),
                len(by_seed),
                target,
            )
        )
    return Summary(tuple(out), full_stats)


def markdown_table(summary: Summary) -> str:
    """Accuracy per label count (mean ± std over seeds) and labels to 95%."""
    lines = []
    for dataset in sorted({c.dataset for c in summary.curves}):
        these = [c for c in summary.curves if c.dataset == dataset]
        labels = these[0].labels
        full = summary.full.get(dataset)
        lines.append(f"**{dataset}**")
        if full:
            lines.append(
                f"full data ({full[3]} labels): accuracy {100 * full[0]:.1f}% "
                f"± {100 * full[1]:.1f} over {full[2]} seeds; 95% of it is "
                f"{100 * TARGET_SHARE * full[0]:.1f}%"
            )
        lines.append("")
        lines.append(
            "| strategy | " + " | ".join(str(n) for n in labels) + " | labels to 95% |"
        )
        lines.append("|---" * (len(labels) + 2) + "|")
        for c in these:
            cells = [
                f"{100 * m:.1f} ± {100 * s:.1f}"
                for m, s in zip(c.mean, c.std, strict=True)
            ]
            reached = str(c.to_target) if c.to_target else f"> {labels[-1]}"
            lines.append(
                f"| {c.strategy} ({c.seeds} seeds) | "
                + " | ".join(cells)
                + f" | {reached} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_curves(summary: Summary, path: Path) -> Path:
    """Accuracy against labels, one panel per dataset; return the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({c.dataset for c in summary.curves})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4))
    axes = np.atleast_1d(axes)
    for ax, dataset in zip(axes, datasets, strict=True):
        for c in (c for c in summary.curves if c.dataset == dataset):
            mean, std = np.array(c.mean), np.array(c.std)
            ax.plot(c.labels, 100 * mean, marker="o", label=c.strategy)
            ax.fill_between(c.labels, 100 * (mean - std), 100 * (mean + std), alpha=0.2)
        if dataset in summary.full:
            full = summary.full[dataset][0]
            ax.axhline(100 * full, color="k", ls="--", lw=1, label="full data")
            ax.axhline(100 * TARGET_SHARE * full, color="grey", ls=":", lw=1)
        ax.set_title(dataset)
        ax.set_xlabel("labelled seeds")
        ax.set_ylabel("validation accuracy, %")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
