"""`seedqa ui`: open the operator's desktop app (PyQt6, loaded only here)."""

from __future__ import annotations

import argparse

from appliance.cli.common import UsageError, rig_arguments


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's command to the `seedqa` parser."""
    p = sub.add_parser(
        "ui",
        help="open the bench app (capture, inspect, history, export)",
        description="Open the operator's desktop app on the simulated rig, or on "
        "the GenICam rig with --rig genicam.",
    )
    rig_arguments(p)
    p.add_argument(
        "--seed", type=int, default=0, help="first sample seed of the simulated rig (0)"
    )
    p.set_defaults(run=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    """Run the app until its window is closed."""
    from ui.display import NoDisplay, check_display

    try:
        check_display()
    except NoDisplay as exc:
        raise UsageError(str(exc)) from exc
    from ui.app import run_app  # Qt is loaded only when the app is wanted

    return run_app(
        rig=args.rig,
        seed=args.seed,
        top=args.top,
        bottom=args.bottom,
        producer=args.producer,
    )
