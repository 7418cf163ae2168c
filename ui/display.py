"""Whether there is a screen to open the window on (checked before Qt loads).

Qt aborts the whole process when it finds no display, so the entry points ask
first and say what to do instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping


class NoDisplay(RuntimeError):
    """There is no screen for the app's window."""


def check_display(environ: Mapping[str, str] | None = None) -> None:
    """Raise `NoDisplay` on Linux when no display or Qt platform is set.

    Raises
    ------
    NoDisplay
        With what to do: run from the bench PC's desktop, or pick a Qt platform.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return
    if any(env.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return
    raise NoDisplay(
        "there is no display to open the window on (neither DISPLAY nor "
        "WAYLAND_DISPLAY is set); run it from the bench PC's desktop session, or set "
        "QT_QPA_PLATFORM (e.g. offscreen) to run it without a screen"
    )
