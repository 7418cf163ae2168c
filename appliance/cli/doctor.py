"""`seedqa doctor`: check that the appliance is fit to inspect samples."""

from __future__ import annotations

import argparse
import json
import sys

from appliance.cli.common import rig_arguments
from appliance.doctor import Finding, diagnose, problems
from appliance.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser(
        "doctor",
        help="check cameras, calibration, models, disks, database and backups",
        description="Check the appliance: the rig opens and captures a pair, its "
        "calibration is recent, every recipe's model bundle loads, the disks have "
        "room, the database passes its integrity check and the newest backup is "
        "recent. Prints one line per check; exits 1 if any is a problem, each "
        "problem saying what to do.",
    )
    rig_arguments(p)
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(run=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run every check; exit 1 if any finds a problem."""
    settings = Settings.load()

    def show(finding: Finding) -> None:
        if not args.json:
            print(finding.line(), flush=True)

    findings = diagnose(
        settings,
        rig=args.rig,
        on_finding=show,
        top=args.top,
        bottom=args.bottom,
        producer=args.producer,
    )
    found = problems(findings)
    if args.json:
        rows = [
            {"check": f.check, "health": str(f.health), "message": f.message}
            for f in findings
        ]
        print(json.dumps({"healthy": not found, "findings": rows}, indent=1))
    elif found:
        print(f"seedqa: {len(found)} problem(s) found", file=sys.stderr)
    return 1 if found else 0
