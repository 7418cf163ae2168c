"""`seedqa cameras`: the GenTL producers found and the cameras they offer."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from appliance.cli.common import UsageError
from appliance.files import write_atomic
from appliance.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser(
        "cameras",
        help="list the GenTL producers and the GenICam cameras they offer",
        description="List the GenTL producers (.cti files) found, in the order "
        "they are looked for (the genicam_producer setting, GENICAM_GENTL64_PATH, "
        "the development producer viky.cti), and every camera they offer, with "
        "the serial number, device ID and user-defined name that --top and "
        "--bottom accept.",
    )
    p.add_argument(
        "--producer",
        type=Path,
        help="a .cti file or a folder of them (default: from the settings)",
    )
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(run=cmd_cameras)

    p = sub.add_parser(
        "camera-settings",
        help="save a GenICam camera's features to a file, or load them back",
        description="Save every readable and writable feature of a camera "
        "(pixel format, size, frame rate, exposure, gain, vendor features) to a "
        "JSON file, or write such a file back to a camera, for example to set up "
        "a replacement camera like the one it replaces.",
    )
    p.add_argument("action", choices=["save", "load"], help="save or load")
    p.add_argument("camera", help="serial number, device ID or user-defined name")
    p.add_argument("file", type=Path, help="the JSON settings file")
    p.add_argument("--producer", type=Path, help="a .cti file or a folder of them")
    p.set_defaults(run=cmd_camera_settings)


def cmd_cameras(args: argparse.Namespace) -> int:
    """Print the producers and the cameras they offer."""
    settings = Settings.load()
    try:
        from drivers.genicam import GenTLSession
        from drivers.producers import find_producers
    except ImportError as exc:
        raise UsageError(
            f"listing GenICam cameras needs the harvesters and genicam packages "
            f"({exc}); install them with pip"
        ) from exc

    producers = find_producers(args.producer or settings.genicam_producer)
    session = GenTLSession.acquire(producers)
    try:
        devices = session.devices
    finally:
        session.release()
    roles = {settings.top_camera: "top", settings.bottom_camera: "bottom"}

    if args.json:
        listing = {
            "producers": [{"path": str(p.path), "source": p.source} for p in producers],
            "devices": [
                {
                    **asdict(d),
                    "role": next(
                        (roles[i] for i in (d.serial, d.id, d.user_name) if i in roles),
                        None,
                    ),
                }
                for d in devices
            ],
        }
        print(json.dumps(listing, indent=1))
        return 0
    for producer in producers:
        print(f"producer {producer.path} ({producer.source})")
    if not devices:
        print("no cameras found: check their power and cables, and the producer")
        return 0
    print(
        f"{'serial':<12} {'device ID':<20} {'name':<12} {'model':<12} "
        f"{'vendor':<26} transport"
    )
    for d in devices:
        role = next((roles[i] for i in (d.serial, d.id, d.user_name) if i in roles), "")
        busy = "" if d.accessible else "  (in use by another program)"
        print(
            f"{d.serial:<12} {d.id:<20} {d.user_name or '-':<12} {d.model:<12} "
            f"{d.vendor[:26]:<26} {d.transport}"
            f"{'  <- ' + role if role else ''}{busy}"
        )
    return 0


def cmd_camera_settings(args: argparse.Namespace) -> int:
    """Save a camera's features to a JSON file, or load them back."""
    settings = Settings.load()
    try:
        from drivers.genicam import GenTLSession
        from drivers.producers import find_producers
        from drivers.streaming import GenICamCamera
    except ImportError as exc:
        raise UsageError(
            f"camera settings need the harvesters and genicam packages ({exc})"
        ) from exc

    values: dict[str, object] = {}
    if args.action == "load":
        try:
            data = json.loads(args.file.read_text())
            values = dict(data["features"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{args.file} is not a camera settings file written by "
                f"`seedqa camera-settings save` ({type(exc).__name__}: {exc})"
            ) from exc
    session = GenTLSession.acquire(
        find_producers(args.producer or settings.genicam_producer)
    )
    camera = GenICamCamera(session, args.camera, "top")
    try:
        camera.open()
        device = camera.device
        if args.action == "save":
            features = camera.device_settings()
            document = {
                "device": asdict(device) if device else None,
                "features": features,
            }
            write_atomic(args.file, json.dumps(document, indent=1).encode())
            print(
                f"{len(features)} features of camera {camera.serial} saved to "
                f"{args.file}"
            )
            return 0
        skipped = camera.load_device_settings(values)
        applied = camera.applied
    finally:
        camera.close()
        session.release()
    print(
        f"{len(values) - len(skipped)} of {len(values)} features written to camera "
        f"{camera.serial}"
    )
    for line in skipped:
        print(f"  not written: {line}")
    if applied is not None:
        print(
            f"camera {camera.serial} now sends {applied.pixel_format} "
            f"{applied.width}x{applied.height}"
        )
    # Limitation: a camera may forget written features when it is closed or
    # powered off (viky does); the appliance applies its own configuration at
    # every opening, and a vendor's user set keeps features across power cycles.
    return 0
