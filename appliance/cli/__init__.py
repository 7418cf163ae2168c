"""`seedqa`: the inspection appliance from the command line.

Exit status: 0 on success, 2 for a user's mistake (bad path, bad code, bad or
unusable image, missing calibration), 1 for a fault. Each module of this package
adds one group of commands through its ``register(sub)``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from appliance.cli import accounts, backup, cameras, doctor, records, sample, ui
from appliance.cli.common import USER_ERRORS, UsageError
from appliance.inspection import InspectionCancelled
from appliance.logs import configure_logging
from drivers.base import CameraError

log = logging.getLogger("seedqa")

#: The modules whose commands make up `seedqa`, in the order `--help` lists them.
COMMAND_MODULES = (sample, records, accounts, cameras, backup, doctor, ui)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `seedqa` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Under systemd the records reach the journal at their own priorities.
    configure_logging(
        logging.DEBUG
        if args.verbose
        else logging.WARNING
        if args.quiet
        else logging.INFO
    )
    # Migrations are routine here; say so only when asked for detail.
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING
    )
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS + (UsageError,) as exc:
        print(f"seedqa: {exc}", file=sys.stderr)
        return 2
    except (InspectionCancelled, CameraError) as exc:
        # A camera's fault is not the user's, but its message says what to check.
        print(f"seedqa: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seedqa: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except Exception:
        log.exception("seedqa %s failed", args.command)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="seedqa",
        description="Seed quality inspection: capture a sample on the two-camera "
        "rig, measure every seed, store and report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
