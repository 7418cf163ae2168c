"""Bits per dimension of Glow, Emerging, CInC and CInC+Quad at equal size and budget.

Trains each arm with ``seedqa-models flow train`` (the same parameter count, the
same steps, batch and seed) on two data sets, scores the held-out images with
``seedqa-models flow bpd``, and prints a Markdown table. On the wheat grains the
flow is trained on healthy grains only and the AUROC says how well bits per
dimension separate ``foreign_particles`` from held-out grains.

    .venv/bin/python bench/flow_bpd.py --out out/flow-bpd [--jobs 2] [--seeds 0 1 2]

Each run uses one CPU thread; ``--jobs`` runs that many at once. A run whose model
file is there resumes from it (and a finished one is only scored again). Every arm
is run once per seed (weights, batches, dequantisation noise and the held-out
split); the table gives each seed's figure and their mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from models.flow.model import parameter_count
from models.flow.train import load_model

ARMS = [
    ("glow", "affine"),
    ("emerging", "affine"),
    ("cinc", "affine"),
    ("cinc", "quad"),
]
WHEAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wheat-grains"


def datasets(wheat: Path) -> dict[str, dict[str, list[str]]]:
    """Return each data set's data, model and budget arguments."""
    return {
        "digits 16x16": {
            "data": ["--digits", "--size", "16"],
            "model": ["--levels", "2", "--steps", "4", "--parameters", "100000"],
            "budget": ["--iterations", "500", "--batch-size", "64"],
            "bpd": [],
        },
        "wheat grain 32x32": {
            "data": ["--data", str(wheat), "--classes", "grain", "--size", "32"],
            "model": ["--levels", "2", "--steps", "4", "--parameters", "300000"],
            "budget": ["--iterations", "200", "--batch-size", "32"],
            "bpd": ["--against", "foreign_particles"],
        },
    }


def run_arm(
    out: Path,
    name: str,
    spec: dict[str, list[str]],
    mixing: str,
    coupling: str,
    seed: int,
) -> dict[str, Any]:
    """Train and score one arm with one seed; return its figures."""
    tag = f"{name.split()[0]}-{mixing}-{coupling}-seed{seed}"
    model = out / f"{tag}.pt"
    cli = [sys.executable, "-m", "models.cli", "flow"]
    train = [
        *cli,
        "train",
        *spec["data"],
        *spec["model"],
        *spec["budget"],
        "--mixing",
        mixing,
        "--coupling",
        coupling,
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--checkpoint-every",
        "100",
        "--out",
        str(model),
        "--resume",
    ]
    start = time.perf_counter()
    with open(out / f"{tag}.log", "w") as log:
        subprocess.run(train, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    score = [*cli, "bpd", *spec["data"], "--model", str(model), "--held-out"]
    report = json.loads(
        subprocess.run(
            [*score, *spec["bpd"], "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    flow, _ = load_model(model)
    return {
        "data": name,
        "arm": f"{mixing}+{coupling}",
        "seed": seed,
        "hidden": flow.config.hidden,
        "weights": parameter_count(flow),
        "train_s": seconds,
        "bpd": report["bits_per_dim"],
        "images": report["images"],
        "auroc": report.get("novel", {}).get("auroc"),
        "command": " ".join(train[2:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for models")
    parser.add_argument("--wheat", type=Path, default=WHEAT, help="wheat-grains folder")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="(0)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (name, spec, mixing, coupling, seed)
        for seed in args.seeds
        for name, spec in datasets(args.wheat).items()
        for mixing, coupling in ARMS
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: run_arm(args.out, *job), jobs))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    seeds = " | ".join(f"seed {s}" for s in args.seeds)
    print(
        f"| data | arm | hidden | weights | bits/dim {seeds} | mean "
        "| AUROC mean (per seed) |"
    )
    print(
        "| --- | --- | ---: | ---: | " + "---: | " * len(args.seeds) + "---: | ---: |"
    )
    for name in datasets(args.wheat):
        for mixing, coupling in ARMS:
            arm = [
                r
                for r in rows
                if r["data"] == name and r["arm"] == f"{mixing}+{coupling}"
            ]
            bpd = [r["bpd"] for r in arm]
            aurocs = [r["auroc"] for r in arm if r["auroc"] is not None]
            auroc = "-"
            if aurocs:
                each = ", ".join(f"{a:.3f}" for a in aurocs)
                auroc = f"{statistics.mean(aurocs):.3f} ({each})"
            print(
                f"| {name} | {mixing}+{coupling} | {arm[0]['hidden']} | "
                f"{arm[0]['weights']:,} | "
                + " | ".join(f"{v:.4f}" for v in bpd)
                + f" | {statistics.mean(bpd):.4f} | {auroc} |"
            )
    for r in rows:
        print(f"seed {r['seed']}: {r['command']} ({r['train_s']:.0f} s)")


if __name__ == "__main__":
    main()
