"""Bits per dimension of Glow, Emerging, CInC and CInC+Quad at equal size and budget.

Trains each arm with ``seedqa-models flow train`` (the same parameter count, the
same steps, batch and seed) on two data sets, scores the held-out images with
``seedqa-models flow bpd``, and prints a Markdown table. On the wheat grains the
flow is trained on healthy grains only and the AUROC says how well bits per
dimension separate ``foreign_particles`` from held-out grains.

    .venv/bin/python bench/flow_bpd.py --out out/flow-bpd [--jobs 2]

Each run uses one CPU thread; ``--jobs`` runs that many at once. A run whose model
file is there resumes from it (and a finished one is only scored again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    out: Path, name: str, spec: dict[str, list[str]], mixing: str, coupling: str
) -> dict[str, object]:
    """Train and score one arm; return its figures."""
    tag = f"{name.split()[0]}-{mixing}-{coupling}"
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
        "0",
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
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (name, spec, mixing, coupling)
        for name, spec in datasets(args.wheat).items()
        for mixing, coupling in ARMS
    ]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: run_arm(args.out, *job), jobs))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print("| data | arm | hidden | weights | held-out bits/dim | AUROC | wall s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        auroc = "-" if r["auroc"] is None else f"{r['auroc']:.3f}"
        print(
            f"| {r['data']} | {r['arm']} | {r['hidden']} | {r['weights']:,} | "
            f"{r['bpd']:.4f} | {auroc} | {r['train_s']:.0f} |"
        )
    for r in rows:
        print(r["command"])


if __name__ == "__main__":
    main()
