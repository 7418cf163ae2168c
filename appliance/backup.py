"""Online backups of the inspection database and the image store, with retention.

A backup folder holds a mirror of the image store, shared by every backup, and one
folder per backup with a consistent copy of the database::

    DEST/images/ab/cd/<sha256>.png        content-addressed, only new files copied
    DEST/seedqa-20261203T194512123456Z/   one backup
        seedqa.db                         the database as of the backup's start
        manifest.json                     what was copied, and its integrity check

The database is copied with SQLite's online backup API while the app keeps
writing (WAL readers do not block the writer), never with a file copy, which can
catch a page half written. The copy is taken first and the images after it: the
store writes a sample's images before the rows that name them are committed, so
every image a row in the copy names is already on disk when the images are
mirrored. A backup is built under a hidden name and renamed into place whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url

from appliance.files import fsync_directory

log = logging.getLogger(__name__)

DATABASE_NAME = "seedqa.db"
MANIFEST_NAME = "manifest.json"
IMAGES_NAME = "images"
_PREFIX = "seedqa-"
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_BACKUP_NAME = re.compile(r"seedqa-\d{8}T\d{12}Z")
_PARTIAL_PREFIX = ".partial-"
_IMAGE_NAME = re.compile(r"(?P<sha>[0-9a-f]{64})\.[a-z0-9]{1,10}")
_CHUNK_BYTES = 1 << 20

#: progress(done, total): images examined so far, out of the store's total.
Progress = Callable[[int, int], None]


class BackupError(RuntimeError):
    """A backup cannot be taken or read: no database, a busy or bad destination."""


@dataclass(frozen=True)
class BackupInfo:
    """One backup, as its manifest describes it.

    Attributes
    ----------
    path : Path
        The backup's folder; its database is ``path / "seedqa.db"``.
    created_at : datetime
        When the database copy was taken (UTC).
    samples : int
        Samples in the copied database.
    database_bytes : int
        Size of the database copy.
    images_total, images_copied, images_damaged : int
        Image files in the store, those new to the mirror, and those skipped
        because their content no longer matches their name.
    integrity : str
        The result of ``PRAGMA integrity_check`` on the copy (``"ok"``).
    """

    path: Path
    created_at: datetime
    samples: int
    database_bytes: int
    images_total: int
    images_copied: int
    images_damaged: int
    integrity: str

    @property
    def database(self) -> Path:
        """The backup's copy of the database."""
        return self.path / DATABASE_NAME


def sqlite_database_path(url: str) -> Path:
    """Return the file of a SQLite database URL.

    Raises
    ------
    NotImplementedError
        If the URL names another database server (back that up with its own tool,
        such as ``pg_dump``), or an in-memory database.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise NotImplementedError(
            f"seedqa backup copies SQLite databases only, got a "
            f"{parsed.get_backend_name()} URL; back that server up with its own "
            "tool (pg_dump for PostgreSQL)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise NotImplementedError(
            "seedqa backup needs a SQLite database file; an in-memory database "
            "cannot be backed up"
        )
    return Path(parsed.database).expanduser().resolve()


def copy_database(source: Path, target: Path) -> str:
    """Copy a live SQLite database with the online backup API; check the copy.

    The copy is one step (all pages under one read transaction), so it is the
    database as of one commit even while another process writes. It is switched
    to a rollback journal, so it is one self-contained file, and fsynced.

    Parameters
    ----------
    source : Path
        The database file in use.
    target : Path
        Where the copy goes; must not exist.

    Returns
    -------
    str
        The copy's ``PRAGMA integrity_check`` result, ``"ok"`` when sound.

    Raises
    ------
    BackupError
        If there is no database at `source`, or SQLite cannot read it.
    """
    if not source.is_file():
        raise BackupError(
            f"no database at {source}; check the database_url setting or run a "
            "seedqa command once to create it"
        )

    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30.0)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            rows = dst.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise BackupError(f"cannot copy the database {source}: {exc}") from exc

    with target.open("rb") as fh:
        os.fsync(fh.fileno())
    return "; ".join(str(row[0]) for row in rows)


def _copy_verified(source: Path, target: Path, sha: str) -> bool:
    """Copy `source` to `target` atomically if its bytes hash to `sha`."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    digest = hashlib.sha256()
    try:
        with source.open("rb") as src, temporary.open("xb") as dst:
            while chunk := src.read(_CHUNK_BYTES):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != sha:
            temporary.unlink()
            return False
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True


def _image_files(images_dir: Path) -> list[tuple[Path, str]]:
    """Return the store's image files (``ab/cd/<sha><suffix>``) and their digests."""
    if not images_dir.is_dir():
        return []
    files = []
    for path in sorted(images_dir.glob("??/??/*")):
        match = _IMAGE_NAME.fullmatch(path.name)
        if match and path.is_file():
            files.append((path, match["sha"]))
    return files


def mirror_images(
    images_dir: Path, mirror: Path, *, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Copy the image files the mirror lacks; leave those it has.

    Files are named by the SHA-256 of their content, so a name already in the
    mirror is the same file and is not copied again. Each copied file is hashed on
    the way and placed only if it matches its name.

    Parameters
    ----------
    images_dir : Path
        The image store (`Settings.images_dir`).
    mirror : Path
        The backup's image mirror, laid out like the store.
    progress : callable, optional
        Called as ``progress(done, total)`` after each file.

    Returns
    -------
    total, copied, damaged : int
        Files in the store, files copied now, and files skipped because their
        content does not match their name (each is logged).
    """
    files = _image_files(images_dir)
    copied = damaged = 0
    touched: set[Path] = set()
    for done, (path, sha) in enumerate(files, start=1):
        target = mirror / path.relative_to(images_dir)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if _copy_verified(path, target, sha):
                copied += 1
                touched.add(target.parent)
            else:
                damaged += 1
                log.warning(
                    "image %s does not match its SHA-256 name; not backed up", path
                )
        if progress is not None:
            progress(done, len(files))

    # New files' names, then new directories' names, reach the disk.
    for directory in sorted(touched | {d.parent for d in touched} | {mirror}):
        if directory.is_dir():
            fsync_directory(directory)
    return len(files), copied, damaged


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold the destination's lock, so two backups never write it at once."""
    with (dest / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"another backup is writing to {dest}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def take_backup(
    database_url: str,
    images_dir: Path,
    dest: Path,
    *,
    keep: int,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> BackupInfo:
    """Back up the database and the image store into `dest`; keep `keep` backups.

    Parameters
    ----------
    database_url : str
        The SQLite database's SQLAlchemy URL (`Settings.database_url`).
    images_dir : Path
        The image store (`Settings.images_dir`).
    dest : Path
        The backup folder; created if missing.
    keep : int
        How many backups to keep, this one included; older ones are deleted.
    progress : callable, optional
        ``progress(done, total)`` over the image files.
    now : datetime, optional
        The backup's time (UTC), for its name; the current time by default.

    Returns
    -------
    BackupInfo
        The new backup.

    Raises
    ------
    BackupError
        If the database is missing, unreadable or its copy fails the integrity
        check, or another backup holds `dest`.
    NotImplementedError
        If the database is not a SQLite file.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 backup, got {keep}")
    source = sqlite_database_path(database_url)
    created_at = now or datetime.now(UTC)
    name = _PREFIX + created_at.astimezone(UTC).strftime(_STAMP_FORMAT)
    dest.mkdir(parents=True, exist_ok=True)

    with _locked(dest):
        for stale in dest.glob(_PARTIAL_PREFIX + "*"):
            log.warning("removing %s, left by an interrupted backup", stale)
            shutil.rmtree(stale)
        if (dest / name).exists():
            raise BackupError(f"backup {dest / name} already exists")
        partial = dest / (_PARTIAL_PREFIX + name)
        partial.mkdir()

        integrity = copy_database(source, partial / DATABASE_NAME)
        if integrity != "ok":
            raise BackupError(
                f"the copy of {source} fails PRAGMA integrity_check ({integrity}); "
                "the database itself is damaged: run seedqa doctor, restore the "
                "newest good backup"
            )
        samples = _count_samples(partial / DATABASE_NAME)
        total, copied, damaged = mirror_images(
            images_dir, dest / IMAGES_NAME, progress=progress
        )

        info = BackupInfo(
            path=dest / name,
            created_at=created_at,
            samples=samples,
            database_bytes=(partial / DATABASE_NAME).stat().st_size,
            images_total=total,
            images_copied=copied,
            images_damaged=damaged,
            integrity=integrity,
        )
        _write_manifest(partial / MANIFEST_NAME, info, source, images_dir)
        fsync_directory(partial)
        os.replace(partial, info.path)
        fsync_directory(dest)
        log.info(
            "backup %s: %d samples, %d of %d images new",
            info.path,
            samples,
            copied,
            total,
        )
        prune_backups(dest, keep=keep)
    return info


def _count_samples(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM samples").fetchone()[0])
        except sqlite3.OperationalError:  # a database not yet migrated
            return 0


def _write_manifest(path: Path, info: BackupInfo, source: Path, images: Path) -> None:
    document = {
        "created_at": info.created_at.isoformat(),
        "source_database": str(source),
        "source_images": str(images),
        "database": DATABASE_NAME,
        "database_bytes": info.database_bytes,
        "samples": info.samples,
        "images_total": info.images_total,
        "images_copied": info.images_copied,
        "images_damaged": info.images_damaged,
        "integrity": info.integrity,
    }
    with path.open("w") as fh:
        json.dump(document, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def list_backups(dest: Path) -> list[BackupInfo]:
    """Return the complete backups in `dest`, oldest first.

    A folder without a readable manifest is not a complete backup and is left
    out (and logged).
    """
    if not dest.is_dir():
        return []
    backups = []
    for path in sorted(dest.iterdir()):
        if not (_BACKUP_NAME.fullmatch(path.name) and path.is_dir()):
            continue
        try:
            data = json.loads((path / MANIFEST_NAME).read_text())
            backups.append(
                BackupInfo(
                    path=path,
                    created_at=datetime.fromisoformat(data["created_at"]),
                    samples=int(data["samples"]),
                    database_bytes=int(data["database_bytes"]),
                    images_total=int(data["images_total"]),
                    images_copied=int(data["images_copied"]),
                    images_damaged=int(data["images_damaged"]),
                    integrity=str(data["integrity"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("backup %s has no readable manifest: %s", path, exc)
    return backups


def latest_backup(dest: Path) -> BackupInfo | None:
    """Return the newest complete backup in `dest`, or None if there is none."""
    backups = list_backups(dest)
    return backups[-1] if backups else None


def prune_backups(dest: Path, *, keep: int) -> list[Path]:
    """Delete all but the `keep` newest backups; return the deleted folders.

    The image mirror is kept whole.
    """
    # Limitation: the mirror keeps every image ever backed up; images are never
    # deleted from the store, so it holds nothing the store does not.
    doomed = [info.path for info in list_backups(dest)[:-keep]] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
        log.info("backup %s deleted (keeping the %d newest)", path, keep)
    return doomed
