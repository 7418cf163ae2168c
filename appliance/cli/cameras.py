"""`seedqa cameras`: the GenTL producers found and the cameras they offer."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from appliance.cli.common import UsageError
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


def cmd_cameras(args: argparse.Namespace) -> int:
    """Print the producers and the cameras they offer."""
    settings = Settings.load()
    try:
        from drivers.genicam import GenTLSession, find_producers
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
