"""Online backups: consistent while a writer saves samples, incremental, pruned."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.backup import (
    BackupError,
    latest_backup,
    list_backups,
    take_backup,
)
from appliance.cli import main
from appliance.store import Database, ImageStore, sqlite_url
from tests.appliance.sample_writer import planned_sample, save_planned

#: Samples the writer must have committed before the first backup starts.
COMMITTED_FIRST = 3
BACKUPS_DURING_WRITES = 3


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path]:
    """A migrated SQLite database and its image folder; returns (URL, images)."""
    url = sqlite_url(tmp_path / "data" / "seedqa.db")
    (tmp_path / "data").mkdir()
    Database.open(url).close()
    return url, tmp_path / "data" / "images"


def _rows(database: Path, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute(query).fetchall()


def _save(url: str, images: Path, indices: range) -> None:
    with Database.open(url) as db:
        for index in indices:
            save_planned(db, ImageStore(images), planned_sample(index))


def test_backup_while_writing_holds_every_committed_sample(store, tmp_path):
    url, images = store
    committed: list[tuple[int, int]] = []  # (index, id) once save_sample returned
    lock = threading.Lock()
    stop = threading.Event()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with Database.open(url) as db:
                image_store = ImageStore(images)
                index = 0
                while not stop.is_set():
                    sample_id = save_planned(db, image_store, planned_sample(index))
                    with lock:
                        committed.append((index, sample_id))
                    index += 1
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    backups = []
    try:
        while len(committed) < COMMITTED_FIRST and thread.is_alive():
            stop.wait(0.01)
        for _ in range(BACKUPS_DURING_WRITES):
            with lock:
                before = list(committed)
            info = take_backup(url, images, tmp_path / "backups", keep=10)
            backups.append((before, info))
    finally:
        stop.set()
        thread.join()
    assert not failure, failure
    assert len(committed) > len(backups[0][0])  # the writer went on meanwhile

    for before, info in backups:
        assert info.integrity == "ok"
        assert _rows(info.database, "PRAGMA integrity_check") == [("ok",)]
        stored = dict(_rows(info.database, "SELECT code, id FROM samples"))
        for index, sample_id in before:
            assert stored[planned_sample(index).code] == sample_id
        assert info.samples == len(stored) >= len(before)
        # Every image a row of the copy names is in the mirror, intact.
        shas = [
            row[0] for row in _rows(info.database, "SELECT image_sha256 FROM captures")
        ]
        assert len(shas) == 2 * len(stored)
        mirror = ImageStore(tmp_path / "backups" / "images")
        assert all(mirror.verify(sha) for sha in shas)
        # The copy is one self-contained file, not a WAL database.
        assert _rows(info.database, "PRAGMA journal_mode") == [("delete",)]


def test_second_backup_copies_only_the_new_images(store, tmp_path):
    url, images = store
    dest = tmp_path / "backups"
    _save(url, images, range(2))
    first = take_backup(url, images, dest, keep=5)
    _save(url, images, range(2, 3))
    second = take_backup(url, images, dest, keep=5)

    assert (first.images_total, first.images_copied) == (4, 4)
    assert (second.images_total, second.images_copied) == (6, 2)
    assert (first.samples, second.samples) == (2, 3)
    assert len(list((dest / "images").glob("??/??/*.png"))) == 6
    assert latest_backup(dest) == second


def test_retention_keeps_the_newest_backups(store, tmp_path):
    url, images = store
    dest = tmp_path / "backups"
    start = datetime(2026, 1, 1, 2, 30, tzinfo=UTC)
    made = [
        take_backup(url, images, dest, keep=2, now=start + timedelta(days=day))
        for day in range(4)
    ]

    kept = list_backups(dest)
    assert [b.path for b in kept] == [made[2].path, made[3].path]
    assert not made[0].path.exists() and not made[1].path.exists()


def test_damaged_image_is_not_backed_up(store, tmp_path):
    url, images = store
    _save(url, images, range(1))
    victim = next(images.glob("??/??/*.png"))
    victim.write_bytes(b"not the bytes its name promises")

    info = take_backup(url, images, tmp_path / "backups", keep=1)

    assert (info.images_total, info.images_copied, info.images_damaged) == (2, 1, 1)
    assert not (tmp_path / "backups" / "images" / victim.relative_to(images)).exists()


def test_interrupted_backup_leaves_no_backup_and_is_cleaned_up(store, tmp_path):
    url, images = store
    dest = tmp_path / "backups"
    (dest / ".partial-seedqa-20260101T000000000000Z").mkdir(parents=True)

    take_backup(url, images, dest, keep=3)

    assert len(list_backups(dest)) == 1
    assert not list(dest.glob(".partial-*"))


def test_missing_database_or_other_server_is_refused(tmp_path):
    with pytest.raises(BackupError, match="no database at"):
        take_backup(sqlite_url(tmp_path / "none.db"), tmp_path, tmp_path / "b", keep=1)
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(NotImplementedError, match="pg_dump"):
        take_backup("postgresql://lab/seedqa", tmp_path, tmp_path / "b", keep=1)


@pytest.fixture
def no_settings_file(tmp_path, monkeypatch) -> None:
    """An empty settings file, so the machine's own is never read."""
    (tmp_path / "seedqa.toml").write_text("")
    monkeypatch.setenv("SEEDQA_CONFIG", str(tmp_path / "seedqa.toml"))


def test_backup_command_takes_and_lists_backups(
    store, tmp_path, monkeypatch, capsys, no_settings_file
):
    url, images = store
    monkeypatch.setenv("SEEDQA_DATA_DIR", str(tmp_path / "data"))
    _save(url, images, range(1))

    assert main(["backup", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 samples" in out and "2 new of 2 images" in out
    assert main(["backup", "--dest", str(tmp_path / "elsewhere")]) == 0
    capsys.readouterr()
    assert main(["backup", "--list", "--dest", str(tmp_path / "elsewhere")]) == 0
    assert "integrity ok" in capsys.readouterr().out
    assert len(list_backups(tmp_path / "data" / "backups")) == 1


def test_backup_command_fault_is_one_line(
    tmp_path, monkeypatch, capsys, no_settings_file
):
    monkeypatch.setenv("SEEDQA_DATA_DIR", str(tmp_path / "empty"))

    assert main(["backup"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seedqa: backup failed: no database")
