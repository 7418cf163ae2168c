"""The app's one error handler: log the error, then show it in a dialog.

Uncaught exceptions on any thread (`sys.excepthook`, `threading.excepthook`) and
the workers' ``failed`` signals all arrive here; the dialog is always opened on
the GUI thread, through a queued signal, and never blocks the event loop.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)


class ErrorHandler(QObject):
    """Route every error to the log and to a non-blocking dialog.

    Attributes
    ----------
    shown : list of (str, str)
        Title and message of every dialog opened, oldest first.
    """

    _arrived = pyqtSignal(str, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parent = parent
        self.shown: list[tuple[str, str]] = []
        self.dialog: QMessageBox | None = None
        self._previous_hooks: tuple[object, object] | None = None
        self._arrived.connect(self._show)

    def install(self) -> None:
        """Make this the handler of uncaught exceptions on every thread."""
        self._previous_hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook

    def uninstall(self) -> None:
        """Give uncaught exceptions back to the handlers there were before."""
        if self._previous_hooks is not None:
            previous, previous_threading = self._previous_hooks
            sys.excepthook, threading.excepthook = previous, previous_threading
            self._previous_hooks = None

    def report(self, title: str, message: str, details: str = "") -> None:
        """Show an error from any thread: `details` is a traceback, if any."""
        if details:
            log.error("%s: %s\n%s", title, message, details)
        else:
            log.warning("%s: %s", title, message)
        self._arrived.emit(title, message, details)

    def _excepthook(
        self,
        kind: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        details = "".join(traceback.format_exception(kind, exc, tb))
        self.report("Unexpected error", f"{kind.__name__}: {exc}", details)

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        details = "".join(
            traceback.format_exception(
                args.exc_type, args.exc_value, args.exc_traceback
            )
        )
        name = args.thread.name if args.thread is not None else "a thread"
        self.report(
            "Unexpected error",
            f"in {name}: {args.exc_type.__name__}: {args.exc_value}",
            details,
        )

    def _show(self, title: str, message: str, details: str) -> None:
        self.shown.append((title, message))
        box = QMessageBox(self._parent)
        box.setIcon(QMessageBox.Icon.Critical if details else QMessageBox.Icon.Warning)
        box.setWindowTitle(title)
        box.setText(f"<b>{title}</b>")
        box.setInformativeText(message[:1].upper() + message[1:])
        if details:
            box.setDetailedText(details)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = box
        box.open()
