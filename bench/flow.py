"""Sampling speed of the Glow, Emerging and CInC flows, one process, one CPU core.

Prints the seconds to sample 100 RGB images of 32x32 for each variant at the same
depth, the CInC convolution's wavefront inverse against its pixel-by-pixel
reference, and the ratios the CInC paper reports (targets: fast inverse at least
20x the sequential one, CInC at most 0.6x Emerging and at most 2x Glow).

    .venv/bin/python bench/flow.py [--levels 3] [--steps 8] [--hidden 128]
"""

from __future__ import annotations

import argparse
import json

from models.flow.timing import run_benchmark

TARGETS = {
    "cinc layer, sequential / wavefront inverse": ">= 20",
    "cinc layer, one image, sequential / wavefront inverse": ">= 20",
    "cinc layer, wavefront inverse / forward": "-",
    "cinc sampling, sequential / wavefront inverse": "-",
    "cinc / emerging sampling (emerging sequential, as its paper)": "<= 0.6",
    "cinc / emerging sampling (both wavefront)": "<= 0.6",
    "cinc / glow sampling": "<= 2",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_benchmark(
        n=args.images,
        size=args.size,
        levels=args.levels,
        steps=args.steps,
        hidden=args.hidden,
        threads=args.threads,
        repeats=args.repeats,
        progress=lambda line: print(line, flush=True),
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("setup", json.dumps(result["setup"]))
    print(f"sampling {args.images} images (best of {args.repeats}), seconds")
    for name, seconds in result["sampling_s"].items():
        print(f"  {name:<28} {seconds:8.3f}")
    print(f"one 3x3 layer inverse on ({args.images}, 12, {args.size}, {args.size})")
    for name, seconds in result["layer_inverse_s"].items():
        print(f"  {name:<28} {seconds:8.3f}")
    print(f"the same on one image (1, 12, {args.size}, {args.size})")
    for name, seconds in result["layer_inverse_one_image_s"].items():
        print(f"  {name:<28} {seconds:8.4f}")
    print("ratios (target)")
    for name, value in result["ratios"].items():
        print(f"  {name:<62} {value:7.2f}  ({TARGETS[name]})")


if __name__ == "__main__":
    main()
