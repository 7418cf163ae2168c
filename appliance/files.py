"""Writing files so that a reader never sees half of one: temporary name, fsync, rename.

Every file the appliance writes for keeps (images, calibrations, model bundles,
exports, training checkpoints) goes through `write_atomic`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a new or renamed file's name) to disk."""
    # Limitation: POSIX only; Windows cannot open a directory to fsync it, and the
    # appliance runs on Linux under systemd.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_directory: bool = True) -> None:
    """Write `data` to `path` whole or not at all.

    The bytes go to a temporary name in the same directory (so the rename cannot
    cross file systems), are fsynced, and the file is renamed over `path`; then the
    directory is fsynced so the new name survives a power cut. The parent
    directory must exist.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Created like any new file, so the process umask applies.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync_directory:
        fsync_directory(path.parent)
