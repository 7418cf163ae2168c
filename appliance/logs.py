"""One logging set-up for every entry point, journal-aware under systemd.

When systemd connects a service's stderr to the journal it sets
``$JOURNAL_STREAM`` to that stream's ``DEVICE:INODE``. A line that starts with
``<N>`` (a syslog priority, 0 emergency to 7 debug) is then stored at that
priority, so ``journalctl -p warning -u seedqa`` shows warnings and worse. The
journal adds its own timestamp, so the prefix replaces ours.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

#: Syslog priorities (sd-daemon(3)) of the logging levels, highest level first.
SYSLOG_PRIORITIES: tuple[tuple[int, int], ...] = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
    (logging.DEBUG, 7),
)

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

#: Attribute that marks the handler `configure_logging` installed.
_MARK = "_seedqa_configured"


def syslog_priority(levelno: int) -> int:
    """Return the syslog priority of a logging level (a custom level rounds down)."""
    for level, priority in SYSLOG_PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """Format records as ``<N>name: message``, one priority prefix per line.

    The journal reads each line of the stream as its own entry, so a traceback's
    continuation lines carry the prefix too and keep the record's priority.
    """

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's text with every line prefixed by its priority."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Return whether `stream` is the journal stream systemd gave this process.

    The device and inode in ``$JOURNAL_STREAM`` are compared with the stream's own,
    so a child whose stderr was redirected elsewhere does not write ``<N>``
    prefixes into a file or a terminal.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def configure_logging(
    level: int = logging.INFO,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler | None:
    """Send the root logger's records at `level` and above to `stream`.

    Call once, from ``main()``. Under systemd (see `stream_is_journal`) records
    carry syslog priority prefixes; elsewhere they carry a timestamp and level.
    Like `logging.basicConfig`, it leaves alone a root logger that something else
    (a test runner, an embedding app) has already given handlers; a handler
    installed by an earlier call is replaced.

    Parameters
    ----------
    level : int
        The root logger's level, such as `logging.INFO`.
    stream : text stream, optional
        Where records go; `sys.stderr` by default.
    environ : mapping, optional
        Where to read ``JOURNAL_STREAM``; `os.environ` by default.

    Returns
    -------
    logging.Handler or None
        The handler installed on the root logger, or None if it was left alone.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _MARK, False)]
    if len(ours) != len(root.handlers):
        return None
    for old in ours:
        root.removeHandler(old)

    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    setattr(handler, _MARK, True)
    if stream_is_journal(stream, environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
