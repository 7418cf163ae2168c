"""Acquisition speed of the GenICam driver, and what a frame's copy and conversion cost.

For each image size and pixel format, opens a two-camera rig (by default viky.cti's
devices 0 and 1), captures pairs for a few seconds and prints, per camera, the
frames per second the stream delivered to the driver (every buffer, fetched and
queued back), the pairs per second captured, and the copy/convert cost per
delivered frame (mean), beside a plain copy of the same bytes in the same process (the
least any driver must spend: the buffer goes back to the camera at once).
Then it times `to_rgb8` on synthetic 2448x2048 frames of every pixel format, a
real bench camera's size, against a plain copy of the buffer (medians).

    .venv/bin/python bench/acquisition.py [--seconds S] [--top 0 --bottom 1]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from drivers.genicam import CameraConfig
from drivers.genicam_rig import genicam_rig
from drivers.pixelformats import BYTES_PER_PIXEL, SUPPORTED_FORMATS, to_rgb8


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of `repeats` calls of `fn` (robust to a busy machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def copy_ms(nbytes: int, repeats: int = 50) -> float:
    """Median milliseconds for one plain copy of `nbytes`."""
    data = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    return median_ms(data.copy, repeats)


def stream(args: argparse.Namespace, config: CameraConfig) -> None:
    """Capture pairs for `args.seconds` and print the rates and costs."""
    rig = genicam_rig(args.top, args.bottom, producer=args.producer, config=config)
    cameras = (rig.top_camera, rig.bottom_camera)
    try:
        for _ in range(10):
            rig.capture(timeout_s=5.0)
        before = [c.stats for c in cameras]
        pairs, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            rig.capture(timeout_s=5.0)
            pairs += 1
        elapsed = time.perf_counter() - start
        after = [c.stats for c in cameras]
    finally:
        rig.close()

    applied = rig.top_camera.applied
    assert applied is not None
    plain = copy_ms(
        applied.width * applied.height * BYTES_PER_PIXEL[applied.pixel_format]
    )
    for camera, b, a in zip(cameras, before, after, strict=True):
        delivered = a.delivered - b.delivered
        convert = 1000 * (a.convert_s - b.convert_s) / max(delivered, 1)
        print(
            f"  {camera.view:<6} camera {camera.serial}: "
            f"{(a.fetched - b.fetched) / elapsed:6.1f} frames/s streamed, "
            f"{delivered / elapsed:6.1f} delivered; copy+convert "
            f"{convert:6.3f} ms/frame vs plain copy {plain:6.3f} ms "
            f"(x{convert / plain:.1f})"
        )
    print(f"  pairs captured: {pairs / elapsed:.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per run (3)")
    parser.add_argument("--top", default="0", help="top camera (viky's 0)")
    parser.add_argument("--bottom", default="1", help="bottom camera (viky's 1)")
    parser.add_argument("--producer", type=Path, help="GenTL producer (.cti)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    for size in (100, 400, 800):
        for pixel_format in ("RGBa8", "Mono8"):
            print(f"{pixel_format} {size}x{size}, asking 200 fps:")
            stream(
                args,
                CameraConfig(
                    pixel_format=pixel_format,
                    width=size,
                    height=size,
                    frame_rate_hz=200.0,
                ),
            )

    width, height = 2448, 2048
    rng = np.random.default_rng(0)
    print(f"to_rgb8 on synthetic {width}x{height} frames:")
    for pixel_format in SUPPORTED_FORMATS:
        nbytes = width * height * BYTES_PER_PIXEL[pixel_format]
        data = rng.integers(0, 255, nbytes, dtype=np.uint8)
        convert = median_ms(
            lambda d=data, f=pixel_format: to_rgb8(
                d, width=width, height=height, pixel_format=f
            ),
            15,
        )
        plain = copy_ms(nbytes, 15)
        print(
            f"  {pixel_format:<9} {convert:7.2f} ms/frame vs plain copy "
            f"{plain:6.2f} ms (x{convert / plain:.1f})"
        )


if __name__ == "__main__":
    main()
