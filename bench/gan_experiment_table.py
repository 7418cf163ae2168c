"""Print the rebalancing experiment's results as Markdown tables.

Run: ``python bench/gan_experiment_table.py out/gan-experiment``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ARMS = ("none", "weighted", "balanced", "gan", "gan-600")
#: The two rarest training classes of each set.
RARE = {
    "maize": ("discolored", "silkcut"),
    "wheat": ("foreign_particles", "grain_covered"),
}


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f} (n={len(v)})"


def _mean_cpu(rows: list[dict]) -> str:
    cpu = [r["cpu_seconds"] for r in rows if "cpu_seconds" in r]
    return f"{np.mean(cpu):.0f}" if cpu else "-"


def table(dataset: str, results: list[dict]) -> str:
    rare = RARE[dataset]
    head = [
        "arm",
        "accuracy %",
        "macro-F1 %",
        *[f"recall {c} %" for c in rare],
        "wall s",
        "CPU s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for arm in ARMS:
        rows = [r for r in results if r["arm"] == arm]
        if not rows:
            continue
        cells = [
            arm,
            _cell([r["accuracy"] for r in rows]),
            _cell([r["macro_f1"] for r in rows]),
            *[_cell([r["recall"][c] for r in rows]) for c in rare],
            f"{np.mean([r['seconds'] for r in rows]):.0f}",
            _mean_cpu(rows),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quality_table(quality: dict) -> str:
    cols = ("accuracy", "kid", "precision", "recall", "density", "coverage")
    lines = ["| class | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for name, row in [*quality["per_class"].items(), ("all", quality["overall"])]:
        cells = ["-" if row.get(c) is None else f"{row[c]:.3f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "out/gan-experiment")
    for dataset in ("maize", "wheat"):
        paths = sorted((root / dataset).glob("results*.json"))
        if not paths:
            continue
        print(f"### {dataset}\n")
        results = [r for p in paths for r in json.loads(p.read_text())]
        print(table(dataset, results))
        for tag in ("", "-600"):
            quality = root / dataset / f"quality{tag}.json"
            if quality.exists():
                print(f"\nSeeds of gan{tag}, judged by the weighted arm's model:\n")
                print(quality_table(json.loads(quality.read_text())))
            seconds = root / dataset / f"gan{tag}_seconds.txt"
            if seconds.exists():
                print(f"\nGAN training (gan{tag}): {seconds.read_text().strip()}")
        print()


if __name__ == "__main__":
    main()
