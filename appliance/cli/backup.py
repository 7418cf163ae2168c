"""`seedqa backup`: copy the database and the image store, keep the newest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from appliance.backup import BackupError, list_backups, take_backup
from appliance.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser(
        "backup",
        help="back up the database and the image store",
        description="Copy the live database with SQLite's online backup API (safe "
        "while the app saves samples) and the image files not yet backed up, into "
        "a new dated folder under DEST; then delete all but the KEEP newest "
        "backups. The systemd timer seedqa-backup.timer runs it daily.",
    )
    p.add_argument(
        "--dest",
        type=Path,
        help="backup folder (default: the backup_dir setting, else DATA_DIR/backups)",
    )
    p.add_argument(
        "--keep",
        type=_positive_int,
        help="how many backups to keep, newest first (default: the backup_keep "
        "setting, 14)",
    )
    p.add_argument(
        "--list", action="store_true", help="list the backups in DEST; copy nothing"
    )
    p.set_defaults(run=cmd_backup)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def cmd_backup(args: argparse.Namespace) -> int:
    """Take a backup, or list those there are."""
    settings = Settings.load()
    dest = (args.dest or settings.backups_dir).expanduser().resolve()
    if args.list:
        for info in list_backups(dest):
            print(
                f"{info.path}  {info.created_at:%Y-%m-%d %H:%M:%S} UTC  "
                f"{info.samples} samples  integrity {info.integrity}"
            )
        return 0

    keep = args.keep or settings.backup_keep
    with tqdm(
        desc="backing up images", unit="file", disable=not sys.stderr.isatty()
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            info = take_backup(
                settings.database_url,
                settings.images_dir,
                dest,
                keep=keep,
                progress=progress,
            )
        except BackupError as exc:
            print(f"seedqa: backup failed: {exc}", file=sys.stderr)
            return 1
    print(
        f"backup {info.path}: {info.samples} samples, database "
        f"{info.database_bytes / 2**20:.1f} MiB (integrity {info.integrity}), "
        f"{info.images_copied} new of {info.images_total} images"
        + (
            f", {info.images_damaged} damaged images skipped"
            if info.images_damaged
            else ""
        )
    )
    return 1 if info.images_damaged else 0
