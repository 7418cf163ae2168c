"""What every `seedqa` command shares: user errors, the store, the rig, progress."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance import recipes
from appliance.bundle import BundleError
from appliance.exports import ExportError
from appliance.identifiers import InvalidSampleCode
from appliance.imageio import ImageFileError
from appliance.inspection import FrameRejected
from appliance.records.accounts import (
    AccountError,
    Actor,
    AuthenticationFailed,
    PermissionDenied,
)
from appliance.records.amendments import AmendmentError
from appliance.records.service import Records
from appliance.records.signing import SignatureError
from appliance.segmentation import InvalidImage
from appliance.settings import Settings, SettingsError
from appliance.store import Database, ImageStore, SampleNotFound
from calibration import CalibrationError
from drivers.base import CameraError, CameraSetupError, FrameFormatError
from drivers.scene import PlacementError

log = logging.getLogger("seedqa")

#: Errors that are the user's to fix: reported in one line, exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    InvalidImage,
    ImageFileError,
    InvalidSampleCode,
    CalibrationError,
    FrameRejected,
    FrameFormatError,
    CameraSetupError,
    SettingsError,
    PlacementError,
    SampleNotFound,
    NotImplementedError,
    recipes.RecipeError,
    BundleError,
    ExportError,
    AccountError,
    AuthenticationFailed,
    PermissionDenied,
    AmendmentError,
    SignatureError,
)


class UsageError(ValueError):
    """A command-line argument is wrong."""


def rig_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--rig`` and the GenICam rig's camera options to a command."""
    p.add_argument(
        "--rig",
        choices=["simulated", "genicam"],
        help="which rig to use (default: the rig setting, else simulated)",
    )
    p.add_argument(
        "--top",
        metavar="CAMERA",
        help="genicam rig: serial, device ID or name of the top camera "
        "(default: the top_camera setting; `seedqa cameras` lists them)",
    )
    p.add_argument(
        "--bottom",
        metavar="CAMERA",
        help="genicam rig: the bottom camera (default: the bottom_camera setting)",
    )
    p.add_argument(
        "--producer",
        type=Path,
        help="genicam rig: GenTL producer .cti file or folder (default: the "
        "genicam_producer setting, then GENICAM_GENTL64_PATH, then viky.cti)",
    )
    p.add_argument(
        "--plate-ready",
        action="store_true",
        help="the plate is already laid as asked: do not wait for Enter",
    )


def open_rig_of(args: argparse.Namespace, settings: Settings, **kwargs: Any) -> Any:
    """Open the rig that the command's ``--rig`` options, else the settings, name."""
    from appliance.rigs import open_rig

    return open_rig(
        args.rig or settings.rig,
        settings=settings,
        top=args.top,
        bottom=args.bottom,
        producer=args.producer,
        **kwargs,
    )


def asker(args: argparse.Namespace) -> Callable[[str], None]:
    """Return how to ask the operator: wait for Enter, or not with --plate-ready."""
    if args.plate_ready:
        return lambda message: log.info("plate ready: %s", message)
    return ask


def open_store(settings: Settings) -> tuple[Database, ImageStore]:
    """Open the database and the image store under the settings' data folder."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database.open(settings.database_url), ImageStore(settings.images_dir)


def ask(message: str) -> None:
    """Ask the operator to do something at the bench and wait for Enter."""
    if not sys.stdin.isatty():
        raise CameraError(f"the rig needs an operator: {message}")
    input(f"{message} [Enter] ")


def progress() -> Callable[[str, float], None]:
    """Return a progress callback that logs each step of the work."""

    def report(step: str, fraction: float) -> None:
        log.info("%3.0f%% %s", 100 * fraction, step)

    return report


def json_default(value: Any) -> Any:
    """Convert numpy scalars for `json.dumps`."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def user_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--user`` to a command that needs to know who acts."""
    p.add_argument(
        "--user",
        metavar="NAME",
        help="account to act as; the PIN is read from $SEEDQA_PIN or asked for. "
        "Needed once the appliance has accounts",
    )


def read_pin(prompt: str = "PIN: ", *, variable: str = "SEEDQA_PIN") -> str:
    """Return a PIN from the environment variable, or ask for it on the terminal."""
    pin = os.environ.get(variable)
    if pin:
        return pin
    if not sys.stdin.isatty():
        raise UsageError(
            f"no PIN: set ${variable} or run the command in a terminal to type it"
        )
    return getpass.getpass(prompt)


def open_records(settings: Settings) -> Records:
    """Open the store and return the records service over it."""
    db, images = open_store(settings)
    return Records(db, images, settings)


def acting_user(records: Records, args: argparse.Namespace) -> Actor:
    """Return who acts: the signed-in ``--user``, else a name on an open bench."""
    if getattr(args, "user", None):
        return records.sign_in(args.user, read_pin(f"PIN for {args.user}: "))
    return records.open_bench(getattr(args, "operator", None) or "bench")
